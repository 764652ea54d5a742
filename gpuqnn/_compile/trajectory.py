"""A noisy program for trajectories: each ``CHANNEL`` op gets an angle slot whose value is a
uniform random number of the row (the branch it takes), fed as an extra parameter column.

The columns come after the network's parameters, one per noise location, so that a
parameter-shift pass copies them into its shifted rows unchanged (common random numbers) and
never differentiates by them. The engine samples the channel per row
(:class:`gpuqnn._sim.kraus.KrausBlock`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from qiskit.circuit import Parameter, ParameterExpression

from .angles import AngleTable, FunctionOutput
from .program import Op, OpKind, Program


def trajectory_program(program: Program) -> tuple[Program, int]:
    """``program`` with a slot for each channel's uniform random number.

    Args:
        program: a noisy program (with ``CHANNEL`` ops) of P parameters.

    Returns:
        The program, whose angle table takes P + L parameter columns (the L channels' uniform
        numbers last, in program order), and L.
    """
    table = program.angles
    exprs: list[ParameterExpression | float | FunctionOutput] = list(table.expressions)
    uniforms: list[Parameter] = []
    ops: list[Op] = []
    for op in program.ops:
        if op.kind is OpKind.CHANNEL:
            uniform = Parameter(f"_gpuqnn_noise_{len(uniforms)}")
            uniforms.append(uniform)
            ops.append(replace(op, slot=len(exprs)))
            exprs.append(uniform)
        else:
            ops.append(op)
    angles = AngleTable(exprs, list(table.parameters) + uniforms)
    slot_ops = list(program.slot_ops) + [i for i, op in enumerate(ops) if op.kind is OpKind.CHANNEL]
    return (
        Program(
            program.num_qubits,
            program.qubit_map,
            tuple(ops),
            angles,
            np.asarray(slot_ops, dtype=np.int64),
            dict(program.measurements),
            program.num_clbits,
        ),
        len(uniforms),
    )

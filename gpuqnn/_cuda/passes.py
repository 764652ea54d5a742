"""The passes a specialised kernel makes over a row's state: a program's ops, reordered so that
diagonal phase ops gather into runs, and each run applied in ONE pass over the state.

A :class:`PhaseRun` is a run of ``PHASE`` ops: every amplitude's phase is the sum of the
angles of the ops that select it, so the run is one ``sincos`` and one complex multiply per
amplitude instead of one pass per op. An op that acts on none of a pending run's qubits is
moved ahead of the run (the two commute), so that e.g. ``h(0) p(0) h(1) p(1)`` becomes
``h(0) h(1) [p(0) p(1)]``. Everything else is one :class:`OpPass` per op, with its constants
as literals in the generated code (:mod:`.codegen`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._compile import Op, OpKind, Program

MIN_RUN = 2
"""Phase ops in a run at least; a lone phase op is applied as an :class:`OpPass`."""


@dataclass(frozen=True)
class OpPass:
    """One op applied on its own.

    Attributes:
        op: the op.
    """

    op: Op

    @property
    def ops(self) -> tuple[Op, ...]:
        return (self.op,)


@dataclass(frozen=True)
class PhaseRun:
    """Consecutive (after reordering) ``PHASE`` ops applied in one pass.

    Attributes:
        ops: the phase ops (they commute with each other).
    """

    ops: tuple[Op, ...]


Pass = OpPass | PhaseRun


def plan_passes(program: Program) -> list[Pass]:
    """The program's ops as passes, in an order equivalent to the program's.

    Args:
        program: the compiled circuit.

    Returns:
        The passes; every op of the program is in exactly one.
    """
    passes: list[Pass] = []
    run: list[Op] = []
    run_qubits: set[int] = set()

    def flush() -> None:
        if len(run) >= MIN_RUN:
            passes.append(PhaseRun(tuple(run)))
        else:
            passes.extend(OpPass(op) for op in run)
        run.clear()
        run_qubits.clear()

    for op in program.ops:
        qubits = {int(q) for q in op.qubits}
        if op.kind is OpKind.PHASE:
            run.append(op)
            run_qubits.update(qubits)
        elif run and not (qubits & run_qubits):
            passes.append(OpPass(op))  # commutes with the whole pending run: apply it first
        else:
            flush()
            passes.append(OpPass(op))
    flush()
    return passes

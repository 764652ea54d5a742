"""A noisy program as a pure one on twice the qubits: the density matrix as a vector.

A density matrix ``rho`` of n qubits is evolved as the 2n-qubit vector
``v[i + 2**n j] = rho[i, j]`` (qubits 0..n-1 index the rows: the "ket" copy; qubits n..2n-1 the
columns: the "bra" copy). Then

- a gate ``U`` (``rho -> U rho U^dagger``) is ``U`` on the ket copy and ``conj(U)`` on the bra
  copy: two ops of the same kind, the bra one with conjugated data on the shifted qubits;
- a channel is its superoperator on its qubits' two copies: one constant ``DENSE`` op, not
  unitary (the block engine's adjoint then keeps the forward sweep's states);
- the initial ``|0><0|`` is the vector's ``|0>``.

Every angle slot k gets a twin slot for its bra op: the same angle for a rotation (its
coefficients are conjugated), the negated angle for a phase (``conj(exp(i theta)) =
exp(-i theta)``). An output depends on each half through one factor ``cos(theta/2),
sin(theta/2)`` (a rotation) or ``1, exp(i theta)`` (a phase), so each half has its own
parameter-shift rule (:data:`HALF_ROTATION`, :data:`HALF_CONTROLLED_ROTATION`, the usual
two-term rule for phases); the chain rule adds the two halves' derivatives. Readouts of a
density program are in :mod:`gpuqnn._sim.density_readout`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from qiskit.circuit import ParameterExpression

from .angles import AngleTable, FunctionOutput
from .program import Op, OpKind, Program

HALF_ROTATION = ((0.5, np.pi),)
"""The rule of one half of ``exp(-i theta/2 G)`` (G involutory): the output is
``a cos(theta/2) + b sin(theta/2)``, so ``f'(theta) = f(theta + pi) / 2``."""

HALF_CONTROLLED_ROTATION = ((0.25, np.pi), (-0.25, -np.pi))
"""The rule of one half of a controlled rotation: ``a + b cos(theta/2) + c sin(theta/2)``, so
``f'(theta) = (f(theta + pi) - f(theta - pi)) / 4``."""


def density_program(program: Program) -> Program:
    """The 2n-qubit pure program that evolves the density matrix of noisy ``program``.

    Args:
        program: a program of n qubits, possibly with ``CHANNEL`` ops.

    Returns:
        The program on 2n qubits (ket copy first), with 2K slots (slot K + k is slot k's twin);
        ``qubit_map``, ``measurements`` and ``num_clbits`` are the n-qubit program's.

    Raises:
        ValueError: a phase's angle is an output of a slot function (which cannot be negated).
    """
    n = program.num_qubits
    table = program.angles
    num_slots = table.num_slots
    exprs: list[ParameterExpression | float | FunctionOutput] = list(table.expressions)
    exprs += [0.0] * num_slots
    ops: list[Op] = []
    for op in fold_into_channels(program.ops):
        if op.kind is OpKind.CHANNEL:
            targets = op.targets + tuple(q + n for q in op.targets)
            ops.append(Op(OpKind.DENSE, targets, data=op.superop))
            continue
        bra_targets = tuple(q + n for q in op.targets)
        bra_controls = tuple(q + n for q in op.controls)
        if op.slot < 0:
            bra = replace(op, targets=bra_targets, controls=bra_controls, data=_conj(op.data))
            ops += [op, bra]
            continue
        expr = table.expressions[op.slot]
        rule: tuple[tuple[float, float], ...]
        if op.kind is OpKind.ROT:
            rule = HALF_CONTROLLED_ROTATION if op.controls else HALF_ROTATION
            twin, data = expr, _conj(op.data)
        else:  # PHASE
            if isinstance(expr, FunctionOutput):
                raise ValueError("a phase whose angle is a slot function cannot be conjugated")
            rule, twin, data = op.shift_rule, -expr, op.data
        exprs[num_slots + op.slot] = twin
        ket = replace(op, rule=rule)
        bra = replace(
            op,
            targets=bra_targets,
            controls=bra_controls,
            data=data,
            slot=num_slots + op.slot,
            rule=rule,
        )
        ops += [ket, bra]
    angles = AngleTable(exprs, table.parameters)
    slot_ops = np.zeros(2 * num_slots, dtype=np.int64)
    for i, op in enumerate(ops):
        if op.slot >= 0:
            slot_ops[op.slot] = i
    return Program(
        2 * n,
        program.qubit_map,
        tuple(ops),
        angles,
        slot_ops,
        dict(program.measurements),
        program.num_clbits,
    )


def fold_into_channels(program_ops: tuple[Op, ...]) -> list[Op]:
    """The ops with each constant gate, and each channel, folded into the channel that follows
    it on a superset of its qubits: ``S_channel (conj(U) x U)`` is one superoperator, where
    ``U`` on the ket copy and ``conj(U)`` on the bra copy would be two more passes over the
    density vector (and an earlier channel one more). An op is folded when only ops on other
    qubits (which commute with both) stand between the two.
    """
    ops = list(program_ops)
    folded: set[int] = set()
    out: dict[int, Op] = {}
    for i, channel in enumerate(ops):
        if channel.kind is not OpKind.CHANNEL:
            continue
        qubits = set(channel.targets)
        superop = channel.superop
        for j in range(i - 1, -1, -1):
            op = ops[j]
            if j in folded or not qubits.intersection(op.qubits):
                continue  # another qubit's op commutes with the channel
            if op.slot >= 0 or not qubits.issuperset(op.qubits):
                break
            if op.kind is OpKind.CHANNEL:  # an earlier channel (with what it folded)
                earlier = out.get(j, op).superop
                superop = superop @ _superop_on(earlier, op.targets, channel.targets)
            else:
                unitary = _unitary_on(op, channel.targets)
                superop = superop @ np.kron(unitary.conj(), unitary)
            folded.add(j)
        out[i] = replace(channel, data=superop)
    return [out.get(i, op) for i, op in enumerate(ops) if i not in folded]


def _superop_on(
    superop: np.ndarray, targets: tuple[int, ...], qubits: tuple[int, ...]
) -> np.ndarray:
    """The (4**k, 4**k) superoperator on the ordered ``qubits`` of a channel ``superop`` on
    ``targets`` (a subset), the identity on the other qubits' ket and bra bits."""
    k, position = len(qubits), {q: t for t, q in enumerate(qubits)}
    size = 2**k
    bits = [position[q] for q in targets]
    others = sum(1 << t for t in range(k)) & ~sum(1 << b for b in bits)
    local = 2 ** len(targets)

    def gather(index: int) -> int:  # the targets' bits of a Q index, in target order
        return sum(((index >> b) & 1) << t for t, b in enumerate(bits))

    result = np.zeros((size * size, size * size), dtype=complex)
    for out_ket in range(size):
        for out_bra in range(size):
            row = gather(out_ket) + local * gather(out_bra)
            for in_ket in range(size):
                if (in_ket ^ out_ket) & others:
                    continue
                for in_bra in range(size):
                    if (in_bra ^ out_bra) & others:
                        continue
                    column = gather(in_ket) + local * gather(in_bra)
                    result[out_ket + size * out_bra, in_ket + size * in_bra] = superop[row, column]
    return result


def _unitary_on(op: Op, qubits: tuple[int, ...]) -> np.ndarray:
    """The (2**k, 2**k) matrix of constant ``op`` on the ordered ``qubits`` (bit t of the
    index is ``qubits[t]``), controls included."""
    position = {q: t for t, q in enumerate(qubits)}
    if op.kind is OpKind.DENSE:
        local = op.matrix
    elif op.kind is OpKind.DIAG:
        local = np.diag(op.diagonal)
    else:  # PERM: out[j] = phases[j] in[source[j]]
        local = np.zeros((len(op.phases), len(op.phases)), dtype=complex)
        local[np.arange(len(op.phases)), op.index_source] = op.phases
    dim = 2 ** len(qubits)
    matrix = np.zeros((dim, dim), dtype=complex)
    target_mask = sum(1 << position[q] for q in op.targets)
    for b in range(dim):
        controlled = all(
            (b >> position[c]) & 1 == (op.ctrl_state >> i) & 1 for i, c in enumerate(op.controls)
        )
        if not controlled:
            matrix[b, b] = 1.0
            continue
        j = sum(((b >> position[q]) & 1) << t for t, q in enumerate(op.targets))
        rest = b & ~target_mask
        for i in range(local.shape[0]):
            out = rest | sum(((i >> t) & 1) << position[q] for t, q in enumerate(op.targets))
            matrix[out, b] += local[i, j]
    return matrix


def _conj(data: np.ndarray | None) -> np.ndarray | None:
    return None if data is None else np.conj(data)

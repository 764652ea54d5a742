"""The passes a specialised kernel makes over a row's state: a program's ops, reordered so that
diagonal phase ops gather into runs, each run applied in ONE pass over the state, and runs of
constant ops on at most three qubits multiplied into one dense op.

A :class:`PhaseRun` is a run of ``PHASE`` ops: every amplitude's phase is the sum of the
angles of the ops that select it, so the run is one ``sincos`` and one complex multiply per
amplitude instead of one pass per op. An op that acts on none of a pending run's qubits is
moved ahead of the run (the two commute), so that e.g. ``h(0) p(0) h(1) p(1)`` becomes
``h(0) h(1) [p(0) p(1)]``. Everything else is one :class:`OpPass` per op, with its constants
as literals in the generated code (:mod:`.codegen`); consecutive constant ops (dense, diagonal,
permutation) whose qubits together number at most :data:`MAX_FUSED_QUBITS` become one dense op
(one pass instead of several; the generated code skips the product's zero entries, so fused
permutations stay moves).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._compile import Op, OpKind, Program

MIN_RUN = 2
"""Phase ops in a run at least; a lone phase op is applied as an :class:`OpPass`."""
MAX_FUSED_QUBITS = 3
"""Most qubits of a product of constant ops (the kernels' largest dense op)."""
_CONSTANT = (OpKind.DENSE, OpKind.DIAG, OpKind.PERM)
MAX_KERNEL_PASSES = 72
"""Most passes one generated kernel sweeps; a deeper program runs as a chain of kernels, each
compiled on its own (:func:`pass_spans`). NVRTC's time grows faster than the passes: compiled
here for sm_90 with CuPy's run-time options on one core (``benchmarks/nvrtc_passes.py``, ZZ
feature map + RealAmplitudes on 8 qubits, complex128, a shared two-core machine), the adjoint
kernel took 4.3 s at 36 passes, 5.2-9.9 s at 60, 7.2-9.1 s at 72, 14-15 s at 84-108 and 80 s at
204 (the forward kernel 1.6 s at 108 passes, 15 s at 396). Per pass, the zz12 adjoint (71
passes, 126 differentiated slots, 17-21 s) costs more than zz8's (48 passes, 7.5 s). 72 passes
keeps both benchmark circuits (zz8: 48 passes, zz12: 71) in ONE kernel each, so that their
backward pass is one launch (a chain is at least three: forward parts, tail, earlier parts),
and their parameter-row kernels (angles computed in the kernel) serve them; the price is the
zz12 adjoint's 17-21 s first compile on one core, once per machine (CuPy's disk cache), taken
out of a timed loop by ``precompile()``. Deeper programs chain at or under about 10 s a kernel."""


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


def build_passes(program: Program) -> list[Pass]:
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
    return _fuse_constants(passes)


def _fuse_constants(passes: list[Pass]) -> list[Pass]:
    """Multiply runs of consecutive constant op passes on at most MAX_FUSED_QUBITS qubits."""
    out: list[Pass] = []
    group: list[Op] = []
    qubits: list[int] = []

    def flush() -> None:
        if len(group) == 1:
            out.append(OpPass(group[0]))
        elif group:
            out.append(OpPass(_product(group, qubits)))
        group.clear()
        qubits.clear()

    for p in passes:
        op = p.ops[0] if isinstance(p, OpPass) else None
        if op is None or op.kind not in _CONSTANT:
            flush()
            out.append(p)
            continue
        union = qubits + [int(q) for q in op.qubits if int(q) not in qubits]
        if len(union) > MAX_FUSED_QUBITS:
            flush()
            union = [int(q) for q in op.qubits]
        group.append(op)
        qubits[:] = union
    flush()
    return out


def _product(ops: list[Op], qubits: list[int]) -> Op:
    """One dense op on ``qubits`` (bit i of its index is ``qubits[i]``): ``ops`` in order."""
    matrix = np.eye(1 << len(qubits), dtype=complex)
    for op in ops:
        matrix = local_matrix(op, qubits) @ matrix
    return Op(OpKind.DENSE, tuple(qubits), (), 0, matrix)


def local_matrix(op: Op, qubits: list[int]) -> np.ndarray:
    """The (2**m, 2**m) matrix of a constant op on ``qubits`` (which hold its targets and
    controls; bit i of an index is ``qubits[i]``)."""
    size = 1 << len(qubits)
    where = {q: i for i, q in enumerate(qubits)}
    matrix = np.zeros((size, size), dtype=complex)
    data = np.asarray(op.data, dtype=complex)
    for x in range(size):
        bits = [(x >> where[int(q)]) & 1 for q in op.qubits]
        targets, controls = bits[: len(op.targets)], bits[len(op.targets) :]
        held = all(c == (op.ctrl_state >> i) & 1 for i, c in enumerate(controls))
        if not held:
            matrix[x, x] = 1.0
            continue
        j = sum(b << t for t, b in enumerate(targets))
        rest = x
        for q in op.targets:
            rest &= ~(1 << where[int(q)])
        for i in range(1 << len(op.targets)):  # output local index i from input j
            if op.kind is OpKind.DENSE:
                value = data[i, j]
            elif op.kind is OpKind.DIAG:
                value = data[j] if i == j else 0.0
            else:  # PERM: out[i] = phases[i] * in[source[i]]
                value = data[i] if int(op.index_source[i]) == j else 0.0
            if value != 0:
                y = rest
                for t, q in enumerate(op.targets):
                    y |= ((i >> t) & 1) << where[int(q)]
                matrix[y, x] += value
    return matrix


def pass_spans(count: int, max_passes: int | None = MAX_KERNEL_PASSES) -> list[tuple[int, int]]:
    """``[start, stop)`` spans covering ``count`` passes in order, at most ``max_passes``
    (default :data:`MAX_KERNEL_PASSES`; None: no cap) each, as nearly equal as can be.

    Raises:
        ValueError: ``max_passes`` is not a positive int.
    """
    if max_passes is None:
        return [(0, count)]
    if isinstance(max_passes, bool) or not isinstance(max_passes, int) or max_passes < 1:
        raise ValueError(f"max_passes must be a positive int or None, got {max_passes!r}")
    parts = max(1, -(-count // max_passes))
    bounds = [count * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))

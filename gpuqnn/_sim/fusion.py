"""Block fusion: a stateless pass that groups a program's ops into blocks the engine runs at once.

Three kinds of block (see :mod:`gpuqnn._sim.blocks` for how each runs):

- ``"phase"``: ops that are diagonal or permutations in the computational basis (p, rz, cz, cp,
  rzz, crz, the parity phases of a ZZ feature map, x, cx, swap, ccx, ... and their controlled
  versions). Together they are one diagonal ``exp(i sum_k theta_k F_k(b))`` times one index
  permutation, whatever their number.
- ``"layer"``: single-qubit ops without controls (rx, ry, h, u, ...): one commuting layer, a
  Kronecker product of per-row 2 x 2 matrices, applied over groups of a few qubits at once.
- ``"gate"``: any other op on its own (rxx, crx, ch, iswap, dense multi-qubit gates, ...), and
  a trajectory program's noise channel (a :class:`~.kraus.KrausBlock`).

Ops are scheduled greedily over their dependency graph (two ops depend on each other when they
share a qubit and are not both diagonal), so a block may take ops from across the circuit as long
as the order of non-commuting ops is kept. At each step the kind that absorbs the most ops wins.
Single-qubit diagonal or permutation ops fit both phase blocks and layers; a layer keeps them only
where a non-diagonal single-qubit op of the layer follows them on their qubit, so that e.g. the
``p(2 x)`` gates of a ZZ feature map land in its phase block and not in the Hadamard layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._compile import Op, OpKind

PHASE, LAYER, GATE = "phase", "layer", "gate"

MAX_PHASE_TABLE_BYTES = 64 << 20
"""Upper bound on a phase block's table of per-slot phase functions (slots x D float64)."""


@dataclass(frozen=True)
class BlockSpec:
    """A fused block: its kind and the indices of its ops in program order of application.

    Attributes:
        kind: ``"phase"``, ``"layer"`` or ``"gate"``.
        ops: indices into the program's ops, in the order they are applied.
    """

    kind: str
    ops: tuple[int, ...]


def is_diagonal(op: Op) -> bool:
    """Whether ``op`` is diagonal in the computational basis."""
    return op.is_diagonal


def is_permutation(op: Op) -> bool:
    """Whether ``op`` maps basis states to basis states (with phases)."""
    return op.kind is OpKind.PERM or op.is_diagonal


def _single_qubit(op: Op) -> bool:
    return len(op.targets) == 1 and not op.controls and op.kind is not OpKind.CHANNEL


def fuse(ops: Sequence[Op], num_qubits: int) -> tuple[BlockSpec, ...]:
    """Group ``ops`` into blocks.

    Args:
        ops: the program's ops in circuit order.
        num_qubits: simulated qubits (bounds the size of a phase block's table).

    Returns:
        The blocks in the order they are applied; every op appears in exactly one block.
    """
    preds, succs = _dependencies(ops)
    waiting = [len(p) for p in preds]
    frontier = {i for i, count in enumerate(waiting) if count == 0}
    max_phase_slots = max(1, MAX_PHASE_TABLE_BYTES // (8 * 2**num_qubits))
    blocks: list[BlockSpec] = []
    while frontier:
        phase = _absorb(
            ops, frontier, waiting, succs, lambda op: is_permutation(op), max_phase_slots
        )
        layer = _trim_layer(ops, _absorb(ops, frontier, waiting, succs, _single_qubit, None), succs)
        if phase or layer:
            kind, chosen = (PHASE, phase) if len(phase) >= len(layer) else (LAYER, layer)
        else:
            kind, chosen = GATE, [min(frontier)]
        for i in chosen:
            _schedule(i, frontier, waiting, succs)
        blocks.append(BlockSpec(kind, tuple(chosen)))
    return tuple(blocks)


def _dependencies(ops: Sequence[Op]) -> tuple[list[set[int]], list[set[int]]]:
    """Direct predecessors and successors: ops on a common qubit that are not both diagonal."""
    preds: list[set[int]] = [set() for _ in ops]
    succs: list[set[int]] = [set() for _ in ops]
    last_other: dict[int, int] = {}
    diagonal_since: dict[int, list[int]] = {}
    for j, op in enumerate(ops):
        diagonal = is_diagonal(op)
        for q in op.qubits:
            if q in last_other:
                preds[j].add(last_other[q])
            if not diagonal:
                preds[j].update(diagonal_since.get(q, ()))
        for q in op.qubits:
            if diagonal:
                diagonal_since.setdefault(q, []).append(j)
            else:
                last_other[q] = j
                diagonal_since[q] = []
        for i in preds[j]:
            succs[i].add(j)
    return preds, succs


def _absorb(
    ops: Sequence[Op],
    frontier: set[int],
    waiting: list[int],
    succs: list[set[int]],
    accepts: Callable[[Op], bool],
    max_slots: int | None,
) -> list[int]:
    """The ops one block of a kind could take now, in a valid order (a dry run)."""
    local_wait: dict[int, int] = {}
    ready = sorted(i for i in frontier if accepts(ops[i]))
    taken: list[int] = []
    slots = 0
    while ready:
        i = ready.pop(0)
        if ops[i].slot >= 0:
            if max_slots is not None and slots >= max_slots:
                continue
            slots += 1
        taken.append(i)
        for j in succs[i]:
            left = local_wait.get(j, waiting[j]) - 1
            local_wait[j] = left
            if left == 0 and accepts(ops[j]):
                ready.append(j)
        ready.sort()
    return taken


def _trim_layer(ops: Sequence[Op], taken: list[int], succs: list[set[int]]) -> list[int]:
    """Drop diagonal/permutation ops from a layer unless a taken non-diagonal op of the layer
    depends on them (they are cheaper in a phase block); a layer of only such ops is empty."""
    kept = list(taken)
    changed = True
    while changed:
        changed = False
        members = set(kept)
        for i in reversed(kept):
            if is_permutation(ops[i]) and not (succs[i] & members):
                kept.remove(i)
                members.discard(i)
                changed = True
    if all(is_permutation(ops[i]) for i in kept):
        return []
    return kept


def _schedule(i: int, frontier: set[int], waiting: list[int], succs: list[set[int]]) -> None:
    frontier.discard(i)
    for j in succs[i]:
        waiting[j] -= 1
        if waiting[j] == 0:
            frontier.add(j)

"""A compiled circuit: a :class:`Program` of native ops and an angle table, made once by
:func:`gpuqnn._compile.compile_circuit`.

Native op kinds (:class:`OpKind`; all act on ``targets``, optionally only where ``controls``
hold ``ctrl_state``):

- ``DENSE``: a constant 2**k x 2**k matrix;
- ``DIAG``: a constant diagonal;
- ``PERM``: a constant permutation with phases (x, cx, swap, ccx, y, ...): index moves only;
- ``ROT``: ``exp(-i theta/2 G)`` for an involutory generator G with one non-zero per row
  (rx, ry, rz, rxx, ryy, rzz, rzx and their controlled versions), angle from one slot;
- ``PHASE``: ``exp(i theta)`` on the sub-blocks its 0/1 mask selects (p, u1, controlled
  phases, and ``cx p cx`` fused into one phase on the parity of two qubits), one slot;
- ``CHANNEL``: a noise channel's superoperator, only in a program compiled with a noise model;
  :func:`gpuqnn._compile.density.density_program` turns it into a ``DENSE`` op on the qubits'
  two copies, so that no engine ever sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum

import numpy as np

from .angles import AngleTable

# Parameter-shift rules: (coefficient, shift) pairs with d f/d theta = sum c * f(theta + shift).
_TWO_TERM = ((0.5, np.pi / 2), (-0.5, -np.pi / 2))
_C1 = (np.sqrt(2) + 1) / (4 * np.sqrt(2))
_C2 = (np.sqrt(2) - 1) / (4 * np.sqrt(2))
# Controlled Pauli rotations have generator eigenvalues {0, +-1/2}: two frequencies.
_FOUR_TERM = ((_C1, np.pi / 2), (-_C1, -np.pi / 2), (-_C2, 3 * np.pi / 2), (_C2, -3 * np.pi / 2))


class OpKind(IntEnum):
    """The native op kinds. The values are the CUDA kernels' codes (``GQ_*`` in
    ``gpuqnn/_cuda/statevector.cuh``)."""

    DENSE = 0
    """A constant 2**k x 2**k matrix (:attr:`Op.matrix`)."""
    DIAG = 1
    """A constant diagonal (:attr:`Op.diagonal`)."""
    PERM = 2
    """A constant permutation with phases (:attr:`Op.source`, :attr:`Op.phases`)."""
    ROT = 3
    """``exp(-i theta/2 G)``, G involutory with one non-zero per row (:attr:`Op.source`,
    :attr:`Op.coefficients`); angle from a slot."""
    PHASE = 4
    """``exp(i theta)`` on the sub-blocks :attr:`Op.mask` selects; angle from a slot."""
    CHANNEL = 5
    """A noise channel's (4**k, 4**k) superoperator (:attr:`Op.superop`), column-stacking
    convention (``vec(rho)[i + 2**k j] = rho[i, j]``); no kernel code, never run as such."""


@dataclass(frozen=True, eq=False)
class Op:
    """One native op of a program. Read its data through the field named for its kind
    (``matrix``, ``diagonal``, ``phases``, ``coefficients``, ``mask``); ``data`` is the same
    array, for code that treats every kind alike (the kernels' encoder).

    Attributes:
        kind: the :class:`OpKind`.
        targets: target qubits; ``targets[t]`` is bit t of the op's matrix index.
        controls: control qubits.
        ctrl_state: required control bits, bit i for ``controls[i]``.
        data: the kind's array (see the named fields).
        source: ``PERM``/``ROT``: (2**k,) int, the index each output amplitude comes from.
        slot: angle slot of ``ROT``/``PHASE`` ops, else -1.
        rule: the slot's parameter-shift rule where it is not the kind's (the halves of a
            density program's rotations), else None.
    """

    kind: OpKind
    targets: tuple[int, ...]
    controls: tuple[int, ...] = ()
    ctrl_state: int = 0
    data: np.ndarray | None = None
    source: np.ndarray | None = None
    slot: int = -1
    rule: tuple[tuple[float, float], ...] | None = None

    def _field(self, kind: OpKind, name: str) -> np.ndarray:
        if self.kind is not kind or self.data is None:
            raise AttributeError(f"a {self.kind.name} op has no {name} (only {kind.name} ops)")
        return self.data

    @property
    def index_source(self) -> np.ndarray:
        """``PERM``/``ROT``: the (2**k,) int index each output amplitude comes from."""
        if self.source is None:
            raise AttributeError(f"a {self.kind.name} op has no source (only PERM and ROT ops)")
        return self.source

    @property
    def matrix(self) -> np.ndarray:
        """``DENSE``: the (2**k, 2**k) complex matrix."""
        return self._field(OpKind.DENSE, "matrix")

    @property
    def diagonal(self) -> np.ndarray:
        """``DIAG``: the (2**k,) complex diagonal."""
        return self._field(OpKind.DIAG, "diagonal")

    @property
    def phases(self) -> np.ndarray:
        """``PERM``: (2**k,) complex phase of each output amplitude (moved from ``source``)."""
        return self._field(OpKind.PERM, "phases")

    @property
    def coefficients(self) -> np.ndarray:
        """``ROT``: (2**k,) complex ``-i G[j, source[j]]``."""
        return self._field(OpKind.ROT, "coefficients")

    @property
    def mask(self) -> np.ndarray:
        """``PHASE``: (2**k,) 0/1 mask of the phased sub-blocks."""
        return self._field(OpKind.PHASE, "mask")

    @property
    def superop(self) -> np.ndarray:
        """``CHANNEL``: the (4**k, 4**k) complex superoperator."""
        return self._field(OpKind.CHANNEL, "superop")

    @property
    def is_diagonal(self) -> bool:
        """Whether the op is diagonal in the computational basis (then it commutes with every
        other diagonal op; see :mod:`gpuqnn._sim.fusion`)."""
        if self.kind in (OpKind.DIAG, OpKind.PHASE):
            return True
        if self.kind is not OpKind.ROT:
            return False
        return bool(np.all(self.index_source == np.arange(len(self.index_source))))

    @property
    def qubits(self) -> tuple[int, ...]:
        """Targets and controls."""
        return self.targets + self.controls

    @property
    def shift_rule(self) -> tuple[tuple[float, float], ...]:
        """The parameter-shift rule for this op's slot."""
        if self.rule is not None:
            return self.rule
        if self.kind is OpKind.ROT and self.controls:
            return _FOUR_TERM
        return _TWO_TERM

    def remap(self, mapping: Sequence[int]) -> Op:
        """The same op on qubits renamed by ``mapping``."""
        return replace(
            self,
            targets=tuple(mapping[q] for q in self.targets),
            controls=tuple(mapping[q] for q in self.controls),
        )


@dataclass
class Program:
    """A compiled circuit.

    Attributes:
        num_qubits: qubits simulated (those some gate touches).
        qubit_map: (circuit qubits,) position of each circuit qubit in the simulated register,
            or -1 for a qubit that no gate touches (it stays in |0>).
        ops: the native ops in order.
        angles: the angle table of the ``rot``/``phase`` slots.
        slot_ops: (K,) index into ``ops`` of each slot's op.
        measurements: clbit index -> circuit qubit index, for the final measurements.
        num_clbits: clbits of the circuit.
    """

    num_qubits: int
    qubit_map: np.ndarray
    ops: tuple[Op, ...]
    angles: AngleTable
    slot_ops: np.ndarray
    measurements: dict[int, int] = field(default_factory=dict)
    num_clbits: int = 0


def unsupported_op(
    program: Program,
    grouped_kinds: Sequence[OpKind],
    max_group_targets: int,
    engine: str,
    plural: bool = False,
) -> str | None:
    """Why a compiled engine cannot run one of ``program``'s ops, or None: a noise channel
    (no compiled engine has a channel op, and none may run one as if it were unitary), or an op
    of ``grouped_kinds`` on more than ``max_group_targets`` targets. ``engine`` names the
    engine in the sentence (``"the kernels"``, ``plural``; ``"the native engine"``)."""
    has, applies = ("have", "apply") if plural else ("has", "applies")
    for i, op in enumerate(program.ops):
        if op.kind is OpKind.CHANNEL:
            return f"op {i} is a noise channel (CHANNEL): {engine} {has} no channel op"
        if op.kind in grouped_kinds and len(op.targets) > max_group_targets:
            return (
                f"op {i} ({op.kind.name}) has {len(op.targets)} targets; {engine} {applies} "
                f"{op.kind.name} ops of at most {max_group_targets} targets"
            )
    return None

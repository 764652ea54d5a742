"""A compiled circuit: a :class:`Program` of native ops and an angle table, made once by
:func:`gpuqnn._compile.compile_circuit`.

Native op kinds (all act on ``targets``, optionally only where ``controls`` hold ``ctrl_state``):

- ``dense``: a constant 2**k x 2**k matrix;
- ``diag``: a constant diagonal;
- ``perm``: a constant permutation with phases (x, cx, swap, ccx, y, ...): index moves only;
- ``rot``: ``exp(-i theta/2 G)`` for an involutory generator G with one non-zero per row
  (rx, ry, rz, rxx, ryy, rzz, rzx and their controlled versions), angle from one slot;
- ``phase``: ``exp(i theta)`` on the sub-blocks its 0/1 mask selects (p, u1, controlled
  phases, and ``cx p cx`` fused into one phase on the parity of two qubits), one slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .angles import AngleTable

# Parameter-shift rules: (coefficient, shift) pairs with d f/d theta = sum c * f(theta + shift).
_TWO_TERM = ((0.5, np.pi / 2), (-0.5, -np.pi / 2))
_C1 = (np.sqrt(2) + 1) / (4 * np.sqrt(2))
_C2 = (np.sqrt(2) - 1) / (4 * np.sqrt(2))
# Controlled Pauli rotations have generator eigenvalues {0, +-1/2}: two frequencies.
_FOUR_TERM = ((_C1, np.pi / 2), (-_C1, -np.pi / 2), (-_C2, 3 * np.pi / 2), (_C2, -3 * np.pi / 2))


@dataclass(frozen=True, eq=False)
class Op:
    """One native op of a program.

    Attributes:
        kind: ``"dense"``, ``"diag"``, ``"perm"``, ``"rot"`` or ``"phase"``.
        targets: target qubits; ``targets[t]`` is bit t of the op's matrix index.
        controls: control qubits.
        ctrl_state: required control bits, bit i for ``controls[i]``.
        matrix: ``dense``: (2**k, 2**k) complex; ``diag``: (2**k,) complex;
            ``perm``: (2**k,) complex phases with ``source``; ``rot``: (2**k,) complex
            ``-i G[j, source[j]]``; ``phase``: (2**k,) 0/1 mask of the phased sub-blocks.
        source: ``perm``/``rot``: (2**k,) int, the index each output amplitude comes from.
        slot: angle slot of ``rot``/``phase`` ops, else -1.
    """

    kind: str
    targets: tuple[int, ...]
    controls: tuple[int, ...] = ()
    ctrl_state: int = 0
    matrix: np.ndarray | None = None
    source: np.ndarray | None = None
    slot: int = -1

    @property
    def diagonal(self) -> bool:
        """Whether the op is diagonal in the computational basis (then it commutes with every
        other diagonal op; see :mod:`gpuqnn._fusion`)."""
        if self.kind in ("diag", "phase"):
            return True
        return self.kind == "rot" and bool(np.all(self.source == np.arange(len(self.source))))

    @property
    def qubits(self) -> tuple[int, ...]:
        """Targets and controls."""
        return self.targets + self.controls

    @property
    def shift_rule(self) -> tuple[tuple[float, float], ...]:
        """The parameter-shift rule for this op's slot."""
        if self.kind == "rot" and self.controls:
            return _FOUR_TERM
        return _TWO_TERM

    def remap(self, mapping: Sequence[int]) -> Op:
        """The same op on qubits renamed by ``mapping``."""
        return Op(
            self.kind,
            tuple(mapping[q] for q in self.targets),
            tuple(mapping[q] for q in self.controls),
            self.ctrl_state,
            self.matrix,
            self.source,
            self.slot,
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

"""The simulator's seams as typed protocols: what a block, a readout, a runner and a gradient
strategy must provide. Implementations: blocks in :mod:`.blocks`, readouts in :mod:`.readout`,
runners in :mod:`.runners` (the block engine) and :mod:`gpuqnn._cuda.select` (the CUDA kernels),
strategies in :mod:`.adjoint` and :mod:`.shift`.

Arrays are the backend's (NumPy, or CuPy on a GPU). Shape letters (see docs/architecture.md):
B samples, R rows (samples x copies), M copies, E extra axes, O outputs, D = 2**n amplitudes,
K angle slots, Kb a block's slots, S differentiated slots, J differentiated parameter columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from .blocks import Shifts
    from .buffers import Buffers
    from .shift import ShiftPlan


class Block(Protocol):
    """A fused run of ops, applied to a batch in one or a few batched calls.

    States are (M, P, *E, D): M copies of P samples, optional extra axes E (one adjoint state per
    output), D amplitudes; per-sample data (from ``prepare``) broadcasts over M and E.
    """

    kind: str
    slots: np.ndarray
    """(Kb,) int64 angle slots of the block, in its local order."""

    @property
    def parametric(self) -> bool:
        """Whether any angle slot is in the block."""

    def cost(self) -> float:
        """Relative cost of applying the block to one row, in passes over the state."""

    def prep_bytes(self) -> tuple[int, int]:
        """Bytes per sample of ``prepare``'s result (kept for the pass) and of its temporaries."""

    def gradient_bytes(self) -> int:
        """Bytes per sample and output of ``gradient``'s temporaries."""

    def prepare(self, angles: Any, work: Buffers | None = None, key: str = "") -> Any:
        """Per-sample data of (P, K) real ``angles``, once per pass."""

    def apply(self, psi: Any, out: Any, scratch: Any, prep: Any, inplace: bool) -> Any:
        """The block on ``psi``; returns the array holding the result (``psi`` or ``out``)."""

    def apply_adjoint(self, psi: Any, out: Any, scratch: Any, prep: Any, inplace: bool) -> Any:
        """The block's inverse, as :meth:`apply`."""

    def plan_shifts(self, entries: Sequence[tuple[int, float]]) -> Shifts:
        """Plan parameter-shift branches for (local slot, shift) ``entries``."""

    def shift_rows(self, rows: Any, shifts: Shifts, prep: Any, base: Any) -> None:
        """Fill (E, P, D) ``rows`` with the (1, P, D) output ``base`` shifted per entry."""

    def gradient(self, lam: Any, phi: Any, prep: Any) -> Any:
        """(M, P, *E, Kb) ``2 Re <lam| d phi / d theta_k>`` at the block's output."""


class Readout(Protocol):
    """Maps final states to real outputs."""

    num_outputs: int

    def __call__(self, psi: Any) -> Any:
        """(R, D) complex states -> (R, O) float64 outputs."""

    def adjoint_states(self, psi: Any) -> Any:
        """(R, D) complex states -> (R, O, D) states ``H_o psi`` whose overlaps give the
        outputs' derivatives (Hermitian part of each observable, or each output's projector)."""


class Runner(Protocol):
    """Executes forward and parameter-shift passes of one chunk of samples: the block engine on
    NumPy/CuPy, or the CUDA kernels.

    Its byte counts size the chunks; its cost lets ``gradient_method="auto"`` compare strategies
    for the runner that will execute them.
    """

    name: str
    """``"engine"``, ``"fused"`` or ``"per_op"``."""

    def row_bytes(self) -> int:
        """Bytes per row of a pass (states and temporaries, or kernel outputs)."""

    def sample_bytes(self) -> int:
        """Bytes per sample held once for all its rows (per-sample block data)."""

    def cost(self, rows_per_block: np.ndarray, rows: int = 1) -> float:
        """Relative cost per sample of a pass of ``rows`` rows per sample (the base row and the
        shifted ones; a forward pass: 1) whose block j sweeps ``rows_per_block[j]`` of them on
        the block engine (a shifted row branches off after its slot's block), in passes over one
        state."""

    def forward(self, angles: Any, buffers: Buffers) -> Any:
        """(B, O) float64 outputs of (B, K) real ``angles``."""

    def shifted(self, angles: Any, plan: ShiftPlan, buffers: Buffers) -> Any:
        """((1 + T) B, O) float64 outputs: the samples, then one block of B rows per planned
        shifted row block."""


class GradientStrategy(Protocol):
    """A way to differentiate the outputs by the angle slots (:class:`~.adjoint.
    AdjointStrategy`, :class:`~.shift.ParameterShiftStrategy`): ``Simulator.method`` compares
    their costs, then runs the cheaper one."""

    name: str

    def cost(self, slots: Sequence[int]) -> float:
        """Relative cost per sample on the runner that executes the strategy, in the block
        engine's units (passes over one state)."""

    def run(
        self,
        params: Any,
        slots: list[int],
        columns: Sequence[int],
        max_memory: int | None,
        grad: Any,
    ) -> None:
        """Add the (B, O, J) derivatives of (B, P) ``params`` by ``columns`` into ``grad``
        (or, given a (B, O) ``cotangent`` keyword, their (B, 1, J) product)."""

"""The simulator's seams as typed protocols: what a block, a readout, a runner and a gradient
strategy provide, and what the coordinator (:class:`~.simulator.Simulator`) calls. mypy checks
every implementation against them (``tests/test_architecture.py`` runs it).

Implementations: blocks in :mod:`.blocks`, readouts in :mod:`.readout`, the block engine's
runner in :mod:`.runners`, strategies in :mod:`.adjoint` and :mod:`.shift`. Other engines (the
CUDA kernels, :mod:`gpuqnn._cuda.runner`) implement :class:`Runner` outside this package and
reach the simulator through a :data:`~.runners.RunnerFactory`; nothing here knows them.

A runner declares what it can do in :attr:`Runner.capabilities`; the coordinator asks for a
capability, never for a runner by name or type.

Arrays are the backend's (NumPy, or CuPy on a GPU). Shape letters (see docs/architecture.md):
B samples, R rows (samples x copies), M copies, E extra axes, O outputs, D = 2**n amplitudes,
K angle slots, Kb a block's slots, S differentiated slots, J differentiated parameter columns.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .blocks import Shifts
from .buffers import Buffers
from .parameters import ParameterRows
from .shift_plan import ShiftPlan
from .sinks import Sink


class Block(Protocol):
    """A fused run of ops, applied to a batch in one or a few batched calls.

    States are (M, P, *E, D): M copies of P samples, optional extra axes E (one adjoint state per
    output), D amplitudes; per-sample data (from ``prepare``) broadcasts over M and E.
    """

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
        """Per-sample data of (P, K) real ``angles`` (None for a block without slots), once per
        pass."""

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
    """Maps final states to real outputs, and gives the adjoint states of their derivatives."""

    num_outputs: int

    def __call__(self, psi: Any) -> Any:
        """(R, D) complex states -> (R, O) float64 outputs."""

    def adjoint_states(self, psi: Any) -> Any:
        """(R, D) complex states -> (R, O, D) states ``H_o psi`` whose overlaps give the
        outputs' derivatives (Hermitian part of each observable, or each output's projector)."""

    def cotangent_state(self, psi: Any, cotangent: Any) -> Any:
        """(R, D) complex states and (R, O) real ``g`` -> (R, D) ``sum_o g_o H_o psi``: ONE
        adjoint state per row for a vector-Jacobian product."""


class Capability(enum.Enum):
    """What a :class:`Runner` can do besides forward passes."""

    SHIFTED = "shifted"
    """Parameter-shift rows in the same pass as the base rows (:meth:`Runner.shifted`)."""
    ADJOINT = "adjoint"
    """Adjoint derivatives of every output (:class:`AdjointRunner`)."""
    VJP = "vjp"
    """Adjoint vector-Jacobian products from one adjoint state per sample
    (:class:`AdjointRunner` with a cotangent)."""
    TAPE = "tape"
    """Keeps a forward sweep for a later reverse sweep (:class:`TapeRunner`)."""
    PRECOMPILE = "precompile"
    """Compiles code on first use and can do it ahead of a pass (:class:`PrecompilingRunner`)."""
    PARAMETERS = "parameters"
    """Takes the (B, P) parameters themselves and evaluates the angle table inside its
    kernels: forward passes and adjoint derivatives by parameter columns, with no (B, K) angle
    or (B, S, J) Jacobian array (:class:`ParameterRunner`)."""


@runtime_checkable
class Runner(Protocol):
    """Executes passes of one chunk of samples on one engine: the block engine on NumPy/CuPy,
    the CUDA kernels, ...

    Its byte counts size the chunks; its cost lets ``gradient_method="auto"`` compare strategies
    on the runner that will execute them.
    """

    description: str
    """What runs the passes, for messages and ``repr`` (e.g. ``"block engine"``)."""
    capabilities: frozenset[Capability]
    """What it can do besides :meth:`forward`."""

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
        shifted row block (:attr:`Capability.SHIFTED`)."""


@runtime_checkable
class AdjointRunner(Runner, Protocol):
    """A runner with :attr:`Capability.ADJOINT` (and :attr:`Capability.VJP` where it takes a
    cotangent): the adjoint method of a chunk, forward sweep and reverse sweep."""

    def adjoint_fits(self, slots: Sequence[int], vjp: bool) -> bool:
        """Whether its adjoint serves a pass by ``slots`` (a product with ``vjp``) at all, e.g.
        the states fit the device's shared memory."""

    def adjoint_cost(self, slots: Sequence[int], vjp: bool) -> float:
        """Relative cost per sample, in the units of :meth:`Runner.cost`."""

    def adjoint_sample_bytes(self, slots: Sequence[int], vjp: bool, checkpoints: bool) -> int:
        """Peak bytes per sample of a pass, with or without checkpoints (each block's output
        kept by the forward sweep); one adjoint state per sample with ``vjp``."""

    def adjoint(
        self,
        angles: Any,
        slots: Sequence[int],
        buffers: Buffers,
        checkpoints: bool,
        cotangent: Any = None,
    ) -> Any:
        """(B, O, S) real derivatives of (B, K) real ``angles`` by ``slots``, or (B, 1, S) for a
        (B, O) real ``cotangent``."""


class Sweep(Protocol):
    """A forward sweep kept for a reverse sweep (what a :class:`TapeRunner` returns)."""

    phi: Any
    """(1, R, D) complex final states."""
    outputs: Any
    """(R, O) float64 outputs computed by the sweep, or None (the readout computes them from
    ``phi``)."""
    work: Buffers
    """The buffers that hold the sweep (given back when the tape is used)."""


@runtime_checkable
class TapeRunner(AdjointRunner, Protocol):
    """A runner with :attr:`Capability.TAPE`: its forward sweep is kept between a training
    step's forward pass and its vector-Jacobian product."""

    def sweep(self, angles: Any, slots: Sequence[int], buffers: Buffers) -> Sweep:
        """Evolve (R, K) real ``angles`` keeping what a reverse sweep by ``slots`` needs (each
        block's output from the first differentiated one on)."""

    def reverse(self, sweep: Sweep, slots: Sequence[int], cotangent: Any) -> Any:
        """(R, 1, S) real vector-Jacobian products by ``slots`` from a kept ``sweep`` and the
        (R, O) real ``cotangent``."""


@runtime_checkable
class PrecompilingRunner(Runner, Protocol):
    """A runner with :attr:`Capability.PRECOMPILE`: its first pass would compile code (the
    CUDA kernels: NVRTC, seconds per kernel), which :meth:`precompile` does ahead."""

    def precompile(
        self,
        slots: Sequence[int] | None,
        vjp: bool,
        columns: Sequence[int] = (),
        shifted: bool = False,
    ) -> int:
        """Compile (or load from a cache) what its forward passes launch (with ``shifted``,
        its parameter-shift passes too), and with ``slots`` what its adjoint pass by them (by
        the parameter ``columns`` whose slots they are) launches (a product with ``vjp``); the
        number of kernels built by this call (0 when all were built before)."""


@runtime_checkable
class ParameterRunner(Runner, Protocol):
    """A runner with :attr:`Capability.PARAMETERS`: it reads parameter rows and evaluates the
    angle table itself."""

    def forward_parameters(self, rows: ParameterRows, buffers: Buffers) -> Any:
        """(B, O) real outputs of the parameter ``rows``."""


@runtime_checkable
class ParameterAdjointRunner(AdjointRunner, ParameterRunner, Protocol):
    """A runner with :attr:`Capability.PARAMETERS` and :attr:`Capability.ADJOINT`: its adjoint
    applies the chain rule to parameter columns itself."""

    def adjoint_parameters(
        self,
        rows: ParameterRows,
        slots: Sequence[int],
        columns: Sequence[int],
        buffers: Buffers,
        cotangent: Any = None,
    ) -> Any:
        """(B, O, J) real derivatives of the outputs by the parameter ``columns`` (whose
        angles are those of ``slots``), or (B, 1, J) for a (B, O) real ``cotangent``."""


_CAPABILITY_PROTOCOLS: dict[Capability, type[Any]] = {
    Capability.ADJOINT: AdjointRunner,
    Capability.VJP: AdjointRunner,
    Capability.TAPE: TapeRunner,
    Capability.PRECOMPILE: PrecompilingRunner,
    Capability.PARAMETERS: ParameterRunner,
}


def check_capabilities(runner: Runner) -> Runner:
    """``runner``, once it is known to have the methods its capabilities name.

    Raises:
        TypeError: it is not a :class:`Runner`, or declares a capability without the methods of
            that capability's protocol (:class:`AdjointRunner`, :class:`TapeRunner`).
    """
    if not isinstance(runner, Runner):
        raise TypeError(
            f"a runner factory returned {type(runner).__name__}, which lacks the Runner methods"
        )
    for capability in runner.capabilities:
        protocol = _CAPABILITY_PROTOCOLS.get(capability)
        if protocol is not None and not isinstance(runner, protocol):
            raise TypeError(
                f"{type(runner).__name__} declares {capability.name} but lacks the methods of "
                f"{protocol.__name__}"
            )
    return runner


class GradientStrategy(Protocol):
    """A way to differentiate the outputs by the angle slots (:class:`~.adjoint.
    AdjointStrategy`, :class:`~.shift.ParameterShiftStrategy`): ``Simulator.method`` asks each
    whether it applies and what it costs, then runs the cheaper one."""

    name: str
    """The ``gradient_method`` value that selects it."""

    def fits(self, slots: Sequence[int], columns: Sequence[int], vjp: bool = False) -> bool:
        """Whether ``gradient_method="auto"`` may choose it for a pass by ``slots``."""

    def cost(self, slots: Sequence[int], vjp: bool = False) -> float:
        """Relative cost per sample on the runner that executes it, in passes over one state."""

    def run(
        self,
        params: Any,
        slots: Sequence[int],
        columns: Sequence[int],
        grad: Sink,
        sample: Callable[[Any], Any] | None = None,
        cotangent: Any = None,
    ) -> None:
        """Add the (B, O, J) derivatives of (B, P) ``params`` by ``columns`` into ``grad``,
        chunk by chunk; with a (B, O) ``cotangent``, their (B, 1, J) vector-Jacobian product.
        ``sample`` maps exact outputs to sampled ones (shots), where the strategy supports
        it."""

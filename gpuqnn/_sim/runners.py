"""The block engine as a :class:`~.protocols.Runner`: forward, parameter-shift and adjoint passes
of a chunk through the fused blocks on the backend's array module (NumPy, or CuPy on a GPU), and
the forward sweep kept for training (a tape).

Other engines implement the same protocol outside this package and reach the simulator through
a :data:`RunnerFactory` (the CUDA kernels: :mod:`gpuqnn._cuda.runner`).

Shapes: B samples, K angle slots, O outputs, S differentiated slots, T shifted row blocks,
D = 2**n amplitudes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._options import SimulatorOptions
from .adjoint import (
    ADJOINT_PER_OUTPUT,
    ADJOINT_STATES,
    BlockSweep,
    adjoint_cost,
    adjoint_gradients,
    adjoint_states,
    forward_sweep,
    reverse_sweep,
)
from .backend import Backend
from .block_circuit import BlockCircuit
from .buffers import Buffers
from .protocols import Capability, Readout, Runner
from .shift_plan import ShiftPlan

RunnerFactory = Callable[[BlockCircuit, Readout, Backend, SimulatorOptions], "Runner | None"]
"""Builds the runner of another engine for (block circuit, readout, backend, options), or
returns None where the block engine serves. The simulator calls it once, with the backend's
device current. The networks' default, :func:`gpuqnn._engines.runner_factory`, is where
engines are registered."""

FORWARD_STATES = 6
"""States per row of a forward or parameter-shift pass at its peak besides the blocks' per-sample
data: the state, its spare and scratch buffers and three for the readout's temporaries (a
gathered copy, its conjugate product and the real/imaginary parts); checked with tracemalloc."""


def state_row_bytes(num_qubits: int, dtype: np.dtype[Any]) -> int:
    """Peak bytes one statevector row needs in a forward pass, temporaries included."""
    return int(2**num_qubits * np.dtype(dtype).itemsize * FORWARD_STATES)


def engine_cost(circuit: BlockCircuit, rows_per_block: np.ndarray) -> float:
    """``rows_per_block @ block costs``: passes over one state per sample on the block
    engine (see :meth:`.protocols.Runner.cost`)."""
    return float(np.asarray(rows_per_block) @ circuit.block_costs())


class BlockRunner:
    """Runs passes through the fused blocks, then the readout: every capability.

    Args:
        circuit: the program fused into blocks.
        readout: the outputs' readout.
    """

    description = "block engine"
    capabilities = frozenset(Capability)

    def __init__(self, circuit: BlockCircuit, readout: Readout) -> None:
        self.circuit = circuit
        self.readout = readout
        preps = [block.prep_bytes() for block in circuit.blocks]
        self._sample_bytes = max((kept + temp for kept, temp in preps), default=0)
        self._row_bytes = state_row_bytes(circuit.program.num_qubits, circuit.backend.dtype)
        self._state_bytes = circuit.dim * circuit.backend.dtype.itemsize
        self._prep_bytes = sum(kept for kept, _temp in preps) + max(
            (temp for _kept, temp in preps), default=0
        )
        self._gradient_bytes = max((block.gradient_bytes() for block in circuit.blocks), default=0)

    def row_bytes(self) -> int:
        """The states and temporaries of one row (:data:`FORWARD_STATES`)."""
        return self._row_bytes

    def sample_bytes(self) -> int:
        """The largest block's per-sample data and its temporaries."""
        return self._sample_bytes

    def cost(self, rows_per_block: np.ndarray, rows: int = 1) -> float:
        """:func:`engine_cost` (``rows`` is implied by ``rows_per_block`` here)."""
        return engine_cost(self.circuit, rows_per_block)

    def forward(self, angles: Any, buffers: Buffers) -> Any:
        """(B, O) float64 outputs of (B, K) real ``angles``."""
        psi = self.circuit.evolve(angles, buffers=buffers)
        return self.readout(psi[: angles.shape[0]])

    def shifted(self, angles: Any, plan: ShiftPlan, buffers: Buffers) -> Any:
        """((1 + T) B, O) float64 outputs of the base rows and the planned branches."""
        psi = self.circuit.evolve(angles, plan.branches, buffers=buffers)
        return self.readout(psi[: angles.shape[0] * plan.rows_per_sample])

    # ---- adjoint --------------------------------------------------------------------------------
    def _first(self, slots: Sequence[int]) -> int:
        return int(self.circuit.slot_block[np.asarray(slots)].min())

    def adjoint_fits(self, slots: Sequence[int], vjp: bool) -> bool:
        """Always: the block engine's sweeps are bounded by the memory budget only."""
        return True

    def adjoint_cost(self, slots: Sequence[int], vjp: bool) -> float:
        """The forward sweep, then the reverse sweep with checkpoints (:func:`.adjoint.
        adjoint_cost`); one adjoint state per sample with ``vjp``."""
        outputs = 1 if vjp else self.readout.num_outputs
        return adjoint_cost(
            self.circuit.block_costs(), self._first(slots), outputs, checkpoints=True
        )

    def adjoint_sample_bytes(self, slots: Sequence[int], vjp: bool, checkpoints: bool) -> int:
        """States (:data:`.adjoint.ADJOINT_STATES`, :data:`.adjoint.ADJOINT_PER_OUTPUT` per
        adjoint state, each kept block output), the blocks' per-sample data and the gradients'
        temporaries."""
        outputs = 1 if vjp else self.readout.num_outputs
        states = ADJOINT_STATES + ADJOINT_PER_OUTPUT * outputs
        if checkpoints or not self.circuit.invertible:
            states += len(self.circuit.blocks) - self._first(slots)
        return int(states * self._state_bytes + self._prep_bytes + self._gradient_bytes * outputs)

    def adjoint(
        self,
        angles: Any,
        slots: Sequence[int],
        buffers: Buffers,
        checkpoints: bool,
        cotangent: Any = None,
    ) -> Any:
        """(B, O, S) derivatives (or (B, 1, S) products with a (B, O) ``cotangent``) of (B, K)
        real ``angles``: a forward sweep and a reverse sweep (:func:`.adjoint.
        adjoint_gradients`); always with checkpoints where a block cannot be un-applied to
        the state (:attr:`.block_circuit.BlockCircuit.invertible`)."""
        checkpoints = checkpoints or not self.circuit.invertible
        return adjoint_gradients(
            self.circuit, self.readout, angles, slots, checkpoints, buffers, cotangent
        )

    # ---- tape -----------------------------------------------------------------------------------
    def sweep(self, angles: Any, slots: Sequence[int], buffers: Buffers) -> BlockSweep:
        """The forward sweep of (R, K) real ``angles`` with every block's output kept from the
        first block of ``slots`` on."""
        return forward_sweep(self.circuit, angles, self._first(slots), True, buffers)

    def reverse(self, sweep: Any, slots: Sequence[int], cotangent: Any) -> Any:
        """(R, 1, S) products by ``slots`` from a kept ``sweep`` and the (R, O) ``cotangent``."""
        lam = adjoint_states(self.readout, sweep.phi, cotangent)
        return reverse_sweep(self.circuit, sweep, slots, lam)

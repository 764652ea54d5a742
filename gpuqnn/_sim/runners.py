"""The block engine as a :class:`~.protocols.Runner`: forward and parameter-shift passes of a
chunk through the fused blocks on the backend's array module (NumPy, or CuPy on a GPU).

The CUDA kernels serve the same protocol on a GPU (:mod:`gpuqnn._cuda.select`).

Shapes: B samples, K angle slots, O outputs, T shifted row blocks, D = 2**n amplitudes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .buffers import Buffers
from .fused import FusedCircuit
from .protocols import Readout
from .shift import ShiftPlan

FORWARD_STATES = 6
"""States per row of a forward or parameter-shift pass at its peak besides the blocks' per-sample
data: the state, its spare and scratch buffers and three for the readout's temporaries (a
gathered copy, its conjugate product and the real/imaginary parts); checked with tracemalloc."""


def state_row_bytes(num_qubits: int, dtype: np.dtype) -> int:
    """Peak bytes one statevector row needs in a forward pass, temporaries included."""
    return 2**num_qubits * np.dtype(dtype).itemsize * FORWARD_STATES


def engine_cost(circuit: FusedCircuit, rows_per_block: np.ndarray) -> float:
    """``rows_per_block @ block costs``: passes over one state per sample on the block
    engine (see :meth:`.protocols.Runner.cost`)."""
    return float(np.asarray(rows_per_block) @ circuit.block_costs())


class BlockRunner:
    """Runs passes through the fused blocks, then the readout.

    Args:
        circuit: the fused program.
        readout: the outputs' readout.
    """

    name = "engine"

    def __init__(self, circuit: FusedCircuit, readout: Readout) -> None:
        self.circuit = circuit
        self.readout = readout
        preps = [block.prep_bytes() for block in circuit.blocks]
        self._sample_bytes = max((kept + temp for kept, temp in preps), default=0)
        self._row_bytes = state_row_bytes(circuit.program.num_qubits, circuit.backend.dtype)

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

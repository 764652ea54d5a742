"""The native engine behind the simulator's :class:`~gpuqnn._sim.protocols.Runner` protocol.

:class:`NativeRunner` runs forward passes, parameter-shift rows, the adjoint method (every
output's derivatives, or a vector-Jacobian product from one cotangent state per row) and keeps
a training step's final states as its tape, each chunk in ONE call into the compiled
interpreter with the GIL released, so that the executor's worker threads run chunks in
parallel. :func:`native_runner` is its :data:`~gpuqnn._sim.runners.RunnerFactory`.

Shapes: B samples (rows), K angle slots, O outputs, S differentiated slots, T shifted row
blocks, D = 2**n amplitudes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._options import SimulatorOptions, check_engine
from .._sim.backend import Backend
from .._sim.block_circuit import BlockCircuit
from .._sim.buffers import Buffers
from .._sim.protocols import Capability, Readout
from .._sim.shift_plan import ShiftPlan
from .load import load_core
from .tables import encode_tables, unsupported_reason

logger = logging.getLogger(__name__)

ENGINE_VARIABLE = "GPUQNN_ENGINE"
"""Environment variable read where ``engine="auto"``: ``numpy`` forces the block engine."""
ISA_VARIABLE = "GPUQNN_NATIVE_ISA"
"""Environment variable choosing the native kernels' instruction set (default ``auto``)."""

_UNSHIFTED = (np.full(1, -1, dtype=np.int32), np.zeros(1))

LANES = 8
"""Rows per group in the kernels (``W`` in ``src/kernels.hpp``)."""
SCRATCH_BYTES = 16 << 20
"""Most bytes of states one call holds per worker thread (a group's state and adjoint states);
a Jacobian of more outputs than fit runs in blocks of outputs, each sweeping forward again."""

AUTO_MAX_QUBITS = 10
"""Most simulated qubits for which ``engine="auto"`` takes the native engine: measured side by
side with the NumPy block engine on one core (ZZFeatureMap + RealAmplitudes, forward and
vector-Jacobian product, both dtypes), the native engine is 1.2-1.8x faster up to 9 qubits, even
at 10 and 0.84-0.94x on gradients at 11 and 12, where the NumPy engine's BLAS-backed blocks win
(benchmarks/README.md). ``engine="native"`` runs it at any size."""


@dataclass
class NativeSweep:
    """A training step's forward pass kept for its reverse sweep: the final states and the
    angles (the reverse sweep un-applies the ops from the final states).

    Attributes:
        phi: (1, R, D) complex final states.
        angles: (R, K) float64 angles.
        outputs: (R, O) float64 outputs (the same as :meth:`NativeRunner.forward`'s).
        work: the buffers that hold them.
    """

    phi: Any
    angles: Any
    outputs: Any
    work: Buffers


class NativeRunner:
    """Every pass of a chunk in one call into the native interpreter.

    Args:
        core: the compiled module (``gpuqnn._native._core``).
        circuit: the program fused into blocks (its program and backend).
        readout: the network's readout (Pauli terms or an index table).
        isa: instruction set of the kernels, ``"auto"`` for the best this CPU runs.
        scratch_bytes: most bytes of states a call holds (:data:`SCRATCH_BYTES`).
    """

    capabilities = frozenset(
        {Capability.SHIFTED, Capability.ADJOINT, Capability.VJP, Capability.TAPE}
    )

    def __init__(
        self,
        core: Any,
        circuit: BlockCircuit,
        readout: Readout,
        isa: str = "auto",
        scratch_bytes: int = SCRATCH_BYTES,
    ):
        tables = encode_tables(circuit.program, readout)
        self.program = core.NativeProgram(
            tables.num_qubits, tables.num_slots, tables.num_outputs, tables.ops, tables.ints,
            tables.cdata, tables.readout, tables.xmask, tables.zmask, tables.term_output,
            tables.coeff, tables.index, isa,
        )  # fmt: skip
        self.isa: str = self.program.isa
        self.description = f"native CPU engine ({self.isa})"
        self.dtype = circuit.backend.dtype
        self.single = self.dtype == np.dtype(np.complex64)
        self.num_ops = len(tables.ops)
        self.num_slots = tables.num_slots
        self.num_outputs = tables.num_outputs
        self.dim = 1 << tables.num_qubits
        self.scratch_bytes = scratch_bytes

    # ---- sizes and costs --------------------------------------------------------------------
    def row_bytes(self) -> int:
        """Bytes per row of a forward pass: its angles, outputs and its share of the call's
        scratch (a group of :data:`LANES` rows' states, real and imaginary parts), so that the
        memory budget bounds the scratch too."""
        return 2 * self.dim * self.dtype.itemsize + 8 * (self.num_slots + self.num_outputs) + 16

    def sample_bytes(self) -> int:
        """Nothing per sample beyond its rows."""
        return 0

    def cost(self, rows_per_block: np.ndarray, rows: int = 1) -> float:
        """Every one of the ``rows`` rows per sample runs every op over its state, then the
        readout (passes over one state)."""
        return float(rows) * (self.num_ops + 1)

    def adjoint_fits(self, slots: Sequence[int], vjp: bool) -> bool:
        """Always: a row's states are the call's scratch."""
        return True

    def adjoint_cost(self, slots: Sequence[int], vjp: bool) -> float:
        """Per block of outputs (one with ``vjp``): the forward sweep, the adjoint states, then
        per op the state and every adjoint state un-applied and each differentiated op's
        overlap (passes over one state)."""
        states = 1 if vjp else self.num_outputs
        blocks = 1 if vjp else -(-self.num_outputs // self._output_block())
        return float(blocks * (2 * self.num_ops + 1) + states * (1 + 2 * self.num_ops))

    def adjoint_sample_bytes(self, slots: Sequence[int], vjp: bool, checkpoints: bool) -> int:
        """Bytes per sample: its derivatives, angles and cotangent, its share of the call's
        scratch (its state and adjoint states); with ``checkpoints`` (a tape) also its final
        state and kept angles."""
        states = 1 if vjp else self.num_outputs
        kept = self.dim * self.dtype.itemsize + 8 * self.num_slots if checkpoints else 0
        held = 1 if vjp else self._output_block()  # adjoint states in the call's scratch
        scratch = 2 * self.dim * self.dtype.itemsize * (1 + held)
        return 8 * (states * len(slots) + self.num_slots + self.num_outputs) + kept + scratch

    # ---- passes -------------------------------------------------------------------------------
    def forward(self, angles: Any, buffers: Buffers) -> Any:
        """(B, O) float64 outputs of (B, K) float64 ``angles``."""
        out = np.empty((angles.shape[0], self.num_outputs))
        self.program.forward(angles, *_UNSHIFTED, out, None, self.single)
        return out

    def shifted(self, angles: Any, plan: ShiftPlan, buffers: Buffers) -> Any:
        """((1 + T) B, O) float64 outputs: the samples, then one block per shifted row block."""
        shift_slot = np.asarray(plan.shift_slot, dtype=np.int32)
        out = np.empty((shift_slot.size * angles.shape[0], self.num_outputs))
        self.program.forward(angles, shift_slot, plan.shift_value, out, None, self.single)
        return out

    def _columns(self, slots: Sequence[int]) -> np.ndarray:
        column = np.full(self.num_slots, -1, dtype=np.int64)
        column[np.asarray(slots, dtype=np.int64)] = np.arange(len(slots))
        return column

    def adjoint(
        self,
        angles: Any,
        slots: Sequence[int],
        buffers: Buffers,
        checkpoints: bool,
        cotangent: Any = None,
    ) -> Any:
        """(B, O, S) float64 slot derivatives of (B, K) float64 ``angles``, or (B, 1, S) for a
        (B, O) float64 ``cotangent``: one call (``checkpoints`` changes nothing)."""
        return self._adjoint(angles, slots, cotangent, None)

    def _output_block(self) -> int:
        """Adjoint states per call: as many outputs as keep a worker's scratch (the state and
        the adjoint states of a group of rows) within ``scratch_bytes``."""
        per_state = self.dim * LANES * self.dtype.itemsize
        return max(1, min(self.num_outputs, self.scratch_bytes // per_state - 1))

    def _adjoint(self, angles: Any, slots: Sequence[int], cotangent: Any, final: Any) -> Any:
        column = self._columns(slots)
        if cotangent is not None:
            out = np.empty((angles.shape[0], 1, len(slots)))
            self.program.adjoint(
                angles, column, len(slots), cotangent, 0, 1, out, final, self.single
            )
            return out
        out = np.empty((angles.shape[0], self.num_outputs, len(slots)))
        block = self._output_block()
        for first in range(0, self.num_outputs, block):  # each block sweeps forward again
            count = min(block, self.num_outputs - first)
            part = np.empty((angles.shape[0], count, len(slots)))
            self.program.adjoint(
                angles, column, len(slots), None, first, count, part, final, self.single
            )
            out[:, first : first + count] = part
        return out

    # ---- tape -------------------------------------------------------------------------------
    def sweep(self, angles: Any, slots: Sequence[int], buffers: Buffers) -> NativeSweep:
        """The forward pass of (R, K) float64 ``angles`` keeping the final states in
        ``buffers`` (a reverse sweep un-applies the ops from them)."""
        rows = angles.shape[0]
        phi = buffers.get("native_final", (1, rows, self.dim), self.dtype)
        kept = buffers.get("native_angles", angles.shape, np.float64)
        kept[...] = angles
        out = buffers.get("native_outputs", (rows, self.num_outputs), np.float64)
        self.program.forward(kept, *_UNSHIFTED, out, phi[0], self.single)
        return NativeSweep(phi, kept, out, buffers)

    def reverse(self, sweep: Any, slots: Sequence[int], cotangent: Any) -> Any:
        """(R, 1, S) float64 products by ``slots`` from a kept ``sweep`` and the (R, O)
        float64 ``cotangent``."""
        return self._adjoint(sweep.angles, slots, cotangent, sweep.phi[0])


def engine_choice(options: SimulatorOptions) -> str:
    """The engine asked for: the ``engine`` option, or where it is ``"auto"`` the
    :data:`ENGINE_VARIABLE` environment variable (checked like the option)."""
    if options.engine != "auto":
        return options.engine
    value = os.environ.get(ENGINE_VARIABLE, "").strip()
    if not value:
        return "auto"
    try:
        return check_engine(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {ENGINE_VARIABLE}: {exc}") from None


def native_runner(
    circuit: BlockCircuit, readout: Readout, backend: Backend, options: SimulatorOptions
) -> NativeRunner | None:
    """The native engine's runner for ``circuit`` with ``readout`` on a CPU ``backend``, or
    None (the block engine serves): on a GPU, with ``engine="numpy"`` (or
    ``GPUQNN_ENGINE=numpy``), where the module is not built or the program is not supported,
    and with ``engine="auto"`` above :data:`AUTO_MAX_QUBITS` simulated qubits.

    Raises:
        ValueError: ``engine="native"`` where the native engine cannot serve.
    """
    if backend.is_gpu:
        return None
    choice = engine_choice(options)
    if choice == "numpy":
        return None
    core = load_core()  # logs once (INFO) where it is not built
    reason = "it is not built" if core is None else unsupported_reason(circuit.program, readout)
    if reason is None and not circuit.invertible:
        # its adjoint un-applies ops: a noisy density program's channels cannot be
        reason = "the program has non-unitary ops (noise channels); the block engine keeps states"
    qubits = circuit.program.num_qubits
    if reason is None and choice == "auto" and qubits > AUTO_MAX_QUBITS:
        reason = (
            f"{qubits} qubits: above {AUTO_MAX_QUBITS} the NumPy block engine is as fast or "
            "faster; engine='native' forces it"
        )
    if reason is not None:
        if choice == "native":
            raise ValueError(f"engine='native' cannot run this network: {reason}")
        if core is not None:
            logger.info("native CPU engine not used (%s); the NumPy block engine runs", reason)
        return None
    isa = os.environ.get(ISA_VARIABLE, "auto").strip() or "auto"
    try:
        return NativeRunner(core, circuit, readout, isa)
    except ValueError as exc:
        raise ValueError(f"environment variable {ISA_VARIABLE}: {exc}") from None

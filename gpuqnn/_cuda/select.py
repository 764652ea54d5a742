"""Which custom CUDA kernels serve a program on a GPU backend, as a simulator
:class:`~gpuqnn._sim.protocols.Runner`.

On a CUDA device, forward passes and parameter-shift backward passes of a program the kernels
support (:func:`gpuqnn._cuda.unsupported_reason`) run through them: the fused kernel (the whole
program and readout of every row in ONE launch, the state in shared memory) when a row fits the
device's shared memory, else the per-op kernels replayed as a CUDA graph. Everything else (the
adjoint method, programs with ops the kernels do not take) runs the block engine on CuPy.

``kernels`` chooses: ``"auto"`` (fused where it fits, else per-op), ``"fused"``, ``"per_op"``
(errors when they cannot serve the program), or ``"none"`` (the block engine only).

A :data:`RunnerFactory` is the seam between the simulator and this module: the default one,
:func:`cuda_runner`, builds CuPy runners; tests pass one that builds the host build's runners
(:mod:`gpuqnn._cuda.host`) to run the whole GPU path on the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._sim.backend import Backend
from .._sim.buffers import Buffers
from .._sim.fused import FusedCircuit
from .._sim.protocols import Readout
from .._sim.readout import PauliReadout, ProbabilityReadout
from .._sim.runners import engine_cost
from .._sim.shift import ShiftPlan

logger = logging.getLogger(__name__)

RunnerFactory = Callable[[FusedCircuit, Readout, Backend, str], "KernelRunner | None"]
"""Builds the kernel runner for (circuit, readout, backend, kernel mode), or returns None
when the block engine serves the circuit."""

_UNSHIFTED = (np.full(1, -1, dtype=np.int32), np.zeros(1))


class KernelRunner:
    """A CUDA runner (fused or per-op; CuPy or the host build) behind the simulator's
    :class:`~gpuqnn._sim.protocols.Runner` protocol.

    Args:
        kernels: a runner with ``run(base_angles (B, K) float64, shift_slot (S,) int32,
            shift_value (S,) float64) -> (S * B, O) float64`` (see :mod:`gpuqnn._cuda`).
        circuit: the fused program (its block costs stand in for the kernels' until the cost
            model is calibrated on a device).
        num_outputs: O.
    """

    def __init__(self, kernels: Any, circuit: FusedCircuit, num_outputs: int) -> None:
        from .plan import FusedRunnerBase  # noqa: PLC0415 - only needed with kernels

        self.kernels = kernels
        self.circuit = circuit
        self.name = "fused" if isinstance(kernels, FusedRunnerBase) else "per_op"
        self.num_outputs = num_outputs
        outputs = 8 * num_outputs + 16
        itemsize = circuit.backend.dtype.itemsize
        state = 2 * 2**circuit.program.num_qubits * itemsize
        factors = 2 * circuit.program.angles.num_slots * itemsize
        self._row_bytes = outputs if self.name == "fused" else state + factors + outputs

    def row_bytes(self) -> int:
        """Device bytes per row: the outputs for the fused kernel; the state, its readout
        partials, its angle factors and the outputs for the per-op kernels."""
        return self._row_bytes

    def sample_bytes(self) -> int:
        """Nothing per sample beyond the rows (the tables are shared)."""
        return 0

    def cost(self, rows_per_block: np.ndarray, rows: int = 1) -> float:
        """Fused: every one of the pass's ``rows`` rows per sample (base and shifted) makes
        every pass of the generated kernel over its state from the start, then the readout
        (:meth:`adjoint_cost`'s units). Per-op: the block engine's model
        (:func:`gpuqnn._sim.runners.engine_cost`), not calibrated for the kernels."""
        if self.name == "fused":
            return float(rows) * (self.kernels.forward_kernel.passes + 1)
        return engine_cost(self.circuit, rows_per_block)

    def fused_adjoint(self, slots: Sequence[int], vjp: bool) -> bool:
        """Whether the fused adjoint kernel serves a backward pass by ``slots`` (a
        vector-Jacobian product with ``vjp``): the runner is fused and a row's state and
        adjoint state(s) fit the device's shared memory."""
        return self.name == "fused" and self.kernels.adjoint_kernel(slots, vjp) is not None

    def adjoint_cost(self, slots: Sequence[int], vjp: bool) -> float:
        """Passes over one state per sample of the fused adjoint kernel (the units of
        :meth:`cost` for the fused runner): the forward sweep, then per output (one with
        ``vjp``) the adjoint state and a backward sweep over two states, and without room to
        keep the final state, a forward sweep again per further output."""
        kernel = self.kernels.adjoint_kernel(slots, vjp)
        outputs = 1 if vjp else self.num_outputs
        passes = kernel.passes
        again = 1 if kernel.keeps_final else passes
        return passes + outputs * (1 + 2 * passes) + (outputs - 1) * again

    def adjoint_row_bytes(self, vjp: bool, num_slots: int) -> int:
        """Device bytes per sample of a fused adjoint launch: its derivatives, angles and
        cotangent."""
        outputs = 1 if vjp else self.num_outputs
        return 8 * (outputs * num_slots + self.circuit.program.angles.num_slots + self.num_outputs)

    def adjoint(self, angles: Any, slots: Sequence[int], cotangent: Any = None) -> Any:
        """(B, O, S) float64 slot derivatives of (B, K) float64 ``angles``, or (B, 1, S) for a
        (B, O) float64 ``cotangent``: one launch of the fused adjoint kernel."""
        return self.kernels.adjoint(angles, slots, cotangent)

    def forward(self, angles: Any, buffers: Buffers) -> Any:
        """(B, O) float64 outputs of (B, K) float64 ``angles``: one unshifted launch."""
        return self.kernels.run(angles, *_UNSHIFTED)

    def shifted(self, angles: Any, plan: ShiftPlan, buffers: Buffers) -> Any:
        """((1 + T) B, O) float64 outputs: the plan's shift tables in one launch (fused)."""
        return self.kernels.run(angles, plan.shift_slot, plan.shift_value)


def cuda_runner(
    circuit: FusedCircuit, readout: Readout, backend: Backend, mode: str
) -> KernelRunner | None:
    """The CuPy runner that serves ``circuit`` with ``readout`` on ``backend``, or None (the
    block engine serves it). See :func:`select_runner`."""
    if mode == "none" or not backend.is_gpu:
        return None
    from . import (  # noqa: PLC0415 - the CUDA package is only needed on a GPU
        FusedRunner,
        PerOpRunner,
        shared_memory_limit,
    )

    device = int(backend.name.split(":")[1])
    return select_runner(
        circuit,
        readout,
        backend,
        mode,
        make_fused=FusedRunner,
        make_per_op=PerOpRunner,
        shared_limit=lambda: shared_memory_limit(device),
    )


def select_runner(
    circuit: FusedCircuit,
    readout: Readout,
    backend: Backend,
    mode: str,
    *,
    make_fused: Callable[[Any, str], Any],
    make_per_op: Callable[[Any, str], Any],
    shared_limit: Callable[[], int],
) -> Any:
    """The kernel runner for ``circuit`` and ``readout``, or None.

    Args:
        circuit: the fused program.
        readout: the network's readout.
        backend: the (GPU) backend; its dtype is the kernels' dtype.
        mode: one of :data:`KERNEL_MODES`.
        make_fused: builds a fused runner from (kernel program, dtype name).
        make_per_op: builds a per-op runner from (kernel program, dtype name).
        shared_limit: the device's shared memory per block, in bytes.

    Raises:
        ValueError: ``mode`` asks for kernels that cannot serve this program.
    """
    if mode == "none":
        return None
    from . import encode_program, unsupported_reason  # noqa: PLC0415 - no CuPy import

    program = circuit.program
    reason = unsupported_reason(program)
    if reason is None and not isinstance(readout, (PauliReadout, ProbabilityReadout)):
        reason = f"the readout {type(readout).__name__} has no kernel"
    if reason is not None:
        if mode != "auto":
            raise ValueError(f"kernels={mode!r} cannot run this circuit: {reason}")
        logger.info("CUDA kernels not used (%s); the block engine runs on CuPy", reason)
        return None
    kernel_program = encode_program(program, readout)
    dtype = backend.dtype.name
    if mode in ("auto", "fused"):
        if kernel_program.fits_fused(dtype, shared_limit()):
            return KernelRunner(make_fused(kernel_program, dtype), circuit, readout.num_outputs)
        if mode == "fused":
            raise ValueError(
                f"kernels='fused': a row of {program.num_qubits} qubits in {dtype} does not fit "
                "the device's shared memory; use kernels='per_op' or 'auto'"
            )
    return KernelRunner(make_per_op(kernel_program, dtype), circuit, readout.num_outputs)

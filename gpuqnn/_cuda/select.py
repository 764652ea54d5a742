"""Which custom CUDA kernels serve a program on a GPU backend.

On a CUDA device, forward passes and parameter-shift backward passes of a program the kernels
support (:func:`gpuqnn._cuda.unsupported_reason`) run through them: the fused kernel (the whole
program and readout of every row in ONE launch, the state in shared memory) when a row fits the
device's shared memory, else the per-op kernels replayed as a CUDA graph. Everything else (the
adjoint method, programs with ops the kernels do not take) runs the block engine on CuPy.

``kernels`` chooses: ``"auto"`` (fused where it fits, else per-op), ``"fused"``, ``"per_op"``
(errors when they cannot serve the program), or ``"none"`` (the block engine only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from .._compile import Program
from .._sim.backend import Backend
from .._sim.readout import PauliReadout, ProbabilityReadout

logger = logging.getLogger(__name__)

KERNEL_MODES = ("auto", "fused", "per_op", "none")

RunnerFactory = Callable[[Program, Any, Backend, str], Any]
"""Builds the runner for (program, readout, backend, mode), or returns None for the engine."""


def check_kernel_mode(mode: str) -> str:
    """Raise ValueError unless ``mode`` is one of :data:`KERNEL_MODES`."""
    if mode not in KERNEL_MODES:
        raise ValueError(f"kernels must be one of {KERNEL_MODES}, got {mode!r}")
    return mode


def cuda_runner(program: Program, readout: Any, backend: Backend, mode: str) -> Any:
    """The CuPy runner that serves ``program`` with ``readout`` on ``backend``, or None (the
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
        program,
        readout,
        backend,
        mode,
        make_fused=FusedRunner,
        make_per_op=PerOpRunner,
        shared_limit=lambda: shared_memory_limit(device),
    )


def select_runner(
    program: Program,
    readout: Any,
    backend: Backend,
    mode: str,
    *,
    make_fused: Callable[[Any, str], Any],
    make_per_op: Callable[[Any, str], Any],
    shared_limit: Callable[[], int],
) -> Any:
    """The kernel runner for ``program`` and ``readout``, or None.

    Args:
        program: the compiled circuit.
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
            return make_fused(kernel_program, dtype)
        if mode == "fused":
            raise ValueError(
                f"kernels='fused': a row of {program.num_qubits} qubits in {dtype} does not fit "
                "the device's shared memory; use kernels='per_op' or 'auto'"
            )
    return make_per_op(kernel_program, dtype)


def runner_row_bytes(runner: Any, program: Program, num_outputs: int, dtype: np.dtype) -> int:
    """Device bytes per row of a runner's pass: the outputs for the fused kernel; the state,
    its readout partials and the outputs for the per-op kernels."""
    from .plan import FusedRunnerBase  # noqa: PLC0415 - only needed with kernels

    outputs = 8 * num_outputs + 16
    if isinstance(runner, FusedRunnerBase):
        return outputs
    return 2 * 2**program.num_qubits * np.dtype(dtype).itemsize + outputs

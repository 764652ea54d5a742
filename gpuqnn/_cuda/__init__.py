"""Custom CUDA kernels for the GPU path: one source, ``statevector.cuh``, built by NVRTC (CuPy)
for the device and by a C++ compiler for the host (tests).

Use from the simulator::

    reason = unsupported_reason(program)          # None: the kernels can run it
    kp = encode_program(program, readout)         # tables, once per program and readout
    runner = (FusedRunner(kp, dtype) if kp.fits_fused(dtype, limit) else PerOpRunner(kp, dtype))
    out = runner.run(base_angles, shift_slot, shift_value)   # (S * B, O) float64 on the device

Importing this package never imports CuPy; the runners import it when constructed.
"""

from __future__ import annotations

from .launch import FusedRunner, KernelModule, PerOpRunner
from .program import (
    DEFAULT_SHARED_LIMIT,
    MAX_GROUP_TARGETS,
    MAX_QUBITS,
    KernelProgram,
    encode_program,
    unsupported_reason,
)
from .source import kernel_source, kernel_source_path, name_expressions

__all__ = [
    "DEFAULT_SHARED_LIMIT",
    "MAX_GROUP_TARGETS",
    "MAX_QUBITS",
    "FusedRunner",
    "KernelModule",
    "KernelProgram",
    "PerOpRunner",
    "encode_program",
    "kernel_source",
    "kernel_source_path",
    "name_expressions",
    "unsupported_reason",
]

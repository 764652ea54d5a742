"""Custom CUDA kernels for the GPU path, built by NVRTC (CuPy) for the device and by a C++
compiler for the host (tests):

- the fused kernels (:mod:`.codegen`): CUDA source generated per program, readout and dtype,
  with the ops as literals; one block per row with the state in shared memory. ``gqs_forward``
  runs forward and parameter-shift passes, ``gqs_adjoint`` a whole backward pass (or a
  vector-Jacobian product) in one launch;
- the per-op kernels (``statevector.cuh``): a (R, D) state tensor in global memory, one launch
  per op, for rows too large for shared memory.

Use from the simulator::

    reason = unsupported_reason(program)          # None: the kernels can run it
    kp = encode_program(program, readout)         # tables, once per program and readout
    if kp.fits_fused(dtype, shared_memory_limit()):
        runner = FusedRunner(kp, dtype)           # one launch per call
    else:
        runner = PerOpRunner(kp, dtype)           # per-op launches, replayed as a CUDA graph
    out = runner.run(base_angles, shift_slot, shift_value)   # (S * B, O) float64 on the device
    grad = runner.adjoint(base_angles, slots)     # FusedRunner: (B, O, len(slots)), one launch

``base_angles`` (B, K) float64 are the samples' angles; row ``s * B + b`` of ``out`` is sample b
with ``shift_value[s]`` added to slot ``shift_slot[s]`` (-1: unshifted). A forward pass is
``shift_slot = [-1]``, ``shift_value = [0.0]``.

Importing this package never imports CuPy; the runners import it when constructed.
"""

from __future__ import annotations

from .launch import FusedRunner, KernelModule, PerOpRunner, shared_memory_limit
from .program import (
    DEFAULT_SHARED_LIMIT,
    MAX_GROUP_TARGETS,
    MAX_QUBITS,
    KernelProgram,
    encode_program,
    unsupported_reason,
)
from .source import kernel_names, kernel_source, kernel_source_path

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
    "kernel_names",
    "shared_memory_limit",
    "unsupported_reason",
]

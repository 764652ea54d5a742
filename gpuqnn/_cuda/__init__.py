"""Custom CUDA kernels for the GPU path, built by NVRTC (CuPy) for the device and by a C++
compiler for the host (tests):

- the fused kernels (:mod:`.codegen`): CUDA source generated per program, readout and dtype,
  with the ops as literals; one block per row with the state in shared memory. ``gqs_forward``
  runs forward and parameter-shift passes, ``gqs_adjoint`` a whole backward pass (or a
  vector-Jacobian product) in one launch;
- the per-op kernels (``statevector.cuh``): a (R, D) state tensor in global memory, one launch
  per op, for rows too large for shared memory.

The simulator reaches them through :mod:`.runner` (the engine's runner and its factory). By hand::

    reason = unsupported_reason(program)          # None: the kernels can run it
    tables = encode_tables(program, readout)      # once per program and readout
    if tables.fits_fused(dtype, shared_memory_limit()):
        launcher = FusedLauncher(tables, dtype)   # one launch per call
    else:
        launcher = PerOpLauncher(tables, dtype)   # per-op launches, replayed as a CUDA graph
    out = launcher.run(base_angles, shift_slot, shift_value)  # (S * B, O) float64 on the device
    grad = launcher.adjoint(base_angles, slots)   # FusedLauncher: (B, O, len(slots)), one launch

``base_angles`` (B, K) float64 are the samples' angles; row ``s * B + b`` of ``out`` is sample b
with ``shift_value[s]`` added to slot ``shift_slot[s]`` (-1: unshifted). A forward pass is
``shift_slot = [-1]``, ``shift_value = [0.0]``.

Importing this package never imports CuPy; the launchers import it when constructed.

Words: *tables* are a program encoded for the kernels (:mod:`.tables`); *passes* the fused
kernels' sweeps over a row (:mod:`.passes`); *layout* their shared memory (:mod:`.layout`); a
*launcher* issues a kernel's launches (:mod:`.launchers`, on CuPy :mod:`.cupy_launchers`, on the
host build :mod:`.host`); the *runner* (:mod:`.runner`) is the engine behind the simulator's
protocol.
"""

from __future__ import annotations

from .cupy_launchers import FusedLauncher, KernelModule, PerOpLauncher, shared_memory_limit
from .source import kernel_names, kernel_source, kernel_source_path
from .tables import (
    DEFAULT_SHARED_LIMIT,
    MAX_GROUP_TARGETS,
    MAX_QUBITS,
    KernelTables,
    encode_tables,
    unsupported_reason,
)

__all__ = [
    "DEFAULT_SHARED_LIMIT",
    "MAX_GROUP_TARGETS",
    "MAX_QUBITS",
    "FusedLauncher",
    "KernelModule",
    "KernelTables",
    "PerOpLauncher",
    "encode_tables",
    "kernel_source",
    "kernel_source_path",
    "kernel_names",
    "shared_memory_limit",
    "unsupported_reason",
]

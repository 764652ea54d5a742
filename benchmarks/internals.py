"""The one door from ``benchmarks/`` into gpuqnn's private names (``gpuqnn._sim``, ``_cuda``,
``_compile``, ``_internals`` and ``distributed``'s actor pool; none needs CuPy, torch or Ray), so
that a rename inside the library is a change of this file only."""

from __future__ import annotations

from gpuqnn._compile import Op, OpKind
from gpuqnn._cuda.angle_code import angle_code
from gpuqnn._cuda.codegen import (
    GeneratedKernel,
    adjoint_chain,
    forward_chain,
    generate_adjoint,
    generate_forward,
)
from gpuqnn._cuda.cupy_launchers import (
    FusedLauncher,
    KernelModule,
    PerOpLauncher,
    shared_memory_limit,
)
from gpuqnn._cuda.host import HostFusedLauncher, HostKernels, HostPerOpLauncher
from gpuqnn._cuda.layout import adjoint_shared_bytes, default_threads
from gpuqnn._cuda.nvrtc import compile_cubin
from gpuqnn._cuda.passes import PhaseRun, build_passes
from gpuqnn._cuda.source import COMPILE_OPTIONS, RUNTIME_OPTIONS, kernel_source, runtime_options
from gpuqnn._cuda.tables import DEFAULT_SHARED_LIMIT, encode_tables
from gpuqnn._internals import simulator_of, use_kernels
from gpuqnn._native.tables import native_ops as _program_native_ops
from gpuqnn._sim.adjoint import adjoint_gradients
from gpuqnn._sim.backend import load_cupy, select_backend
from gpuqnn._sim.block_circuit import BlockCircuit
from gpuqnn._sim.threads import available_cores
from gpuqnn.distributed import _ActorPool as ActorPool
from gpuqnn.distributed import _NoProgress as NoProgress
from gpuqnn.distributed import _Source as Source

__all__ = [
    "ActorPool",
    "NoProgress",
    "Source",
    "DEFAULT_SHARED_LIMIT",
    "BlockCircuit",
    "COMPILE_OPTIONS",
    "GeneratedKernel",
    "FusedLauncher",
    "HostFusedLauncher",
    "HostKernels",
    "HostPerOpLauncher",
    "KernelModule",
    "Op",
    "OpKind",
    "PerOpLauncher",
    "PhaseRun",
    "RUNTIME_OPTIONS",
    "adjoint_chain",
    "adjoint_gradients",
    "angle_code",
    "adjoint_shared_bytes",
    "available_cores",
    "compile_cubin",
    "default_threads",
    "encode_tables",
    "forward_chain",
    "generate_adjoint",
    "generate_forward",
    "kernel_source",
    "load_cupy",
    "runtime_options",
    "build_passes",
    "select_backend",
    "shared_memory_limit",
    "simulator_of",
    "use_kernels",
    "native_ops",
]


def native_ops(network) -> list[Op]:
    """The ops the native engine's interpreter runs for ``network``'s program, in order."""
    return _program_native_ops(simulator_of(network).program)

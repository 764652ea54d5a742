"""The one door from ``benchmarks/`` into gpuqnn's private modules: every name the benchmarks
and the acceptance run take from ``gpuqnn._sim``, ``gpuqnn._cuda`` and ``gpuqnn._compile`` is
imported here (none of these imports needs CuPy), so that a rename inside the library is a
change of this file only."""

from __future__ import annotations

from gpuqnn._compile import Op, OpKind
from gpuqnn._cuda.codegen import (
    adjoint_shared_bytes,
    default_threads,
    generate_adjoint,
    generate_forward,
)
from gpuqnn._cuda.host import HostFusedRunner, HostKernels, HostPerOpRunner
from gpuqnn._cuda.launch import FusedRunner, KernelModule, PerOpRunner, shared_memory_limit
from gpuqnn._cuda.nvrtc import compile_cubin
from gpuqnn._cuda.passes import PhaseRun, plan_passes
from gpuqnn._cuda.program import DEFAULT_SHARED_LIMIT, encode_program
from gpuqnn._internals import simulator_of, use_kernels
from gpuqnn._sim.adjoint import adjoint_gradients
from gpuqnn._sim.backend import load_cupy, select_backend
from gpuqnn._sim.fused import FusedCircuit
from gpuqnn._sim.threads import available_cores

__all__ = [
    "DEFAULT_SHARED_LIMIT",
    "FusedCircuit",
    "FusedRunner",
    "HostFusedRunner",
    "HostKernels",
    "HostPerOpRunner",
    "KernelModule",
    "Op",
    "OpKind",
    "PerOpRunner",
    "PhaseRun",
    "adjoint_gradients",
    "adjoint_shared_bytes",
    "available_cores",
    "compile_cubin",
    "default_threads",
    "encode_program",
    "generate_adjoint",
    "generate_forward",
    "load_cupy",
    "plan_passes",
    "select_backend",
    "shared_memory_limit",
    "simulator_of",
    "use_kernels",
]

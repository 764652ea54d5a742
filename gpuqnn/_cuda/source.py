"""Where the kernel source lives, its entry points (names and parameter kinds) and the state
dtypes it is built for."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from .._options import DTYPES

SOURCE_NAME = "statevector.cuh"
COMPILE_OPTIONS = ("-std=c++17",)
"""The options gpuqnn gives CuPy's ``RawKernel``/``RawModule`` (the launchers) and nvcc; the
architecture is added by the caller (CuPy: the device's)."""

CUPY_ADDED_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")
"""What CuPy 14 adds to :data:`COMPILE_OPTIONS` when a ``RawKernel``/``RawModule`` compiles with
NVRTC, besides ``-arch=sm_XY``: ``-ftz=true`` (``_compile_with_cache_cuda`` in
``cupy/cuda/compiler.py``) and ``--device-as-default-execution-space``
(``_compile_using_nvrtc_no_warning``; ``--pch`` too, only under ``CUPY_NVRTC_USE_PCH=1``).
CuPy also adds include paths (``-I``: its own and CCCL's headers, ``assemble_cupy_compiler_options``
in ``cupy/_core/core.pyx``), which gpuqnn's sources do not include, and ``--std=c++17`` only
where no ``-std`` is given. ``tests/test_cuda_compile.py`` checks this list against the options
the installed CuPy hands NVRTC."""

RUNTIME_OPTIONS = (*COMPILE_OPTIONS, *CUPY_ADDED_OPTIONS)
"""The NVRTC options gpuqnn's kernels are built with at run time, less the architecture: what
:func:`gpuqnn._cuda.nvrtc.compile_cubin` uses by default, so that the register and spill
checks (``tests/test_cuda_compile.py``, the acceptance run's compile stage) measure the code
that runs."""


def runtime_options(arch: str) -> tuple[str, ...]:
    """Every NVRTC option of a CuPy run-time compile of gpuqnn's kernels for ``arch`` (e.g.
    ``"sm_90"``), less CuPy's include paths: :data:`RUNTIME_OPTIONS` and ``-arch=``."""
    return (*RUNTIME_OPTIONS, f"-arch={arch}")


SIGNATURES: dict[str, tuple[str, ...]] = {
    "gq_init": ("ptr", "i32", "i64"),
    "gq_factors": ("ptr", "i64", "i32", "ptr", "ptr", "i64", "ptr"),
    "gq_apply": ("ptr", "ptr", "i32", "ptr", "i32", "i64", "ptr"),
    "gq_pauli_partial": ("ptr", "ptr", "ptr", "i64", "i32", "ptr"),
    "gq_pauli_reduce": ("ptr", "ptr", "i64", "i32", "ptr"),
    "gq_prob_pieces": ("ptr", "ptr", "i64", "ptr"),
    "gq_prob_reduce": ("ptr", "ptr", "i64", "ptr"),
    "gq_prob_direct": ("ptr", "ptr", "i64", "ptr"),
}
"""Each kernel's parameters in order: ``ptr`` (an array), ``i32`` (int), ``i64`` (long long)."""

REAL_TYPES = {"complex64": "float", "complex128": "double"}
"""The kernels' template argument for each state dtype."""


def check_kernel_dtype(dtype: object) -> np.dtype:
    """The complex dtype named by ``dtype`` (the runners' own argument: they are built below
    the networks' boundary, but tests and benchmarks build them directly too).

    Raises:
        ValueError: ``dtype`` is not complex64 or complex128.
    """
    try:
        resolved = np.dtype(dtype)  # type: ignore[call-overload]  # any object is checked here
    except TypeError:
        resolved = None
    if resolved is None or resolved.name not in DTYPES:
        raise ValueError(f"dtype must be complex64 or complex128, got {dtype!r}")
    return resolved


def kernel_source_path() -> Path:
    """The path of ``statevector.cuh`` inside the installed package."""
    return Path(str(resources.files(__package__).joinpath(SOURCE_NAME)))


def kernel_source() -> str:
    """The text of ``statevector.cuh``."""
    return resources.files(__package__).joinpath(SOURCE_NAME).read_text(encoding="utf-8")


def kernel_name(kernel: str, real_type: str) -> str:
    """The entry point of one kernel for one real type, e.g. ``gq_apply_f64`` (the same name in
    the CUDA and the host build)."""
    return f"{kernel}_{'f32' if real_type == 'float' else 'f64'}"


def kernel_names() -> list[str]:
    """Every kernel's entry point for both real types."""
    return [kernel_name(k, t) for k in SIGNATURES for t in REAL_TYPES.values()]

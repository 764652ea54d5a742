"""Where the kernel source lives, its entry points (names and parameter kinds) and the state
dtypes it is built for."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from .._options import DTYPES

SOURCE_NAME = "statevector.cuh"
COMPILE_OPTIONS = ("-std=c++17",)
"""Options for NVRTC and nvcc (the architecture is added by the caller)."""

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

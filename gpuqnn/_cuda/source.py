"""Where the kernel source lives, and the names of its entry points."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SOURCE_NAME = "statevector.cuh"
COMPILE_OPTIONS = ("-std=c++17",)
"""Options for NVRTC and nvcc (the architecture is added by the caller)."""


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
    from .plan import REAL_TYPES, SIGNATURES  # noqa: PLC0415 - plan imports codegen, which imports us

    return [kernel_name(k, t) for k in SIGNATURES for t in REAL_TYPES.values()]

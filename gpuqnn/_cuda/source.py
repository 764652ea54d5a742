"""Where the kernel source lives, and the names of its template instantiations."""

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


def name_expression(kernel: str, real_type: str) -> str:
    """The C++ name of one instantiation, e.g. ``gq_apply<double>``."""
    return f"{kernel}<{real_type}>"


def name_expressions() -> list[str]:
    """Every kernel for both real types, as ``RawModule(name_expressions=...)`` takes them."""
    from .plan import REAL_TYPES, SIGNATURES  # noqa: PLC0415 - plan imports codegen, which imports us

    return [name_expression(k, t) for k in SIGNATURES for t in REAL_TYPES.values()]

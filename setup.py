"""Builds the native CPU engine (``gpuqnn._native._core``), a pybind11 extension, as an
OPTIONAL extension: where no C++ compiler works, ``pip install`` still installs gpuqnn and
everything runs on the NumPy block engine (``gpuqnn._native.load`` logs it once at INFO).

The kernels (``gpuqnn/_native/src/kernels.hpp``) are compiled once per instruction set, each
translation unit with its own flags (:data:`NATIVE_ISAS`); ``module.cpp`` picks the best one
the CPU runs when a program is built (``__builtin_cpu_supports``). Everything else about the
package is in ``pyproject.toml``.
"""

from __future__ import annotations

import os
import platform
import sys
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SRC = os.path.join("gpuqnn", "_native", "src")
X86 = platform.machine().lower() in ("x86_64", "amd64", "x64")
_AVX2 = ["-mavx2", "-mfma", "-mbmi", "-mbmi2", "-mpopcnt", "-mlzcnt", "-mf16c"]
NATIVE_ISAS: dict[str, list[str]] = {"generic": []}
"""Instruction set -> its compiler flags; isa_<name>.cpp includes the kernels for it. On
ARM64, NEON is the baseline, so the generic build vectorises with it."""
if X86:
    NATIVE_ISAS["avx2"] = _AVX2
    NATIVE_ISAS["avx512"] = [
        *_AVX2,
        "-mavx512f",
        "-mavx512dq",
        "-mavx512vl",
        "-mavx512bw",
        "-mavx512cd",
        "-mprefer-vector-width=512",
    ]
COMMON = ["-std=c++17", "-O3", "-fno-math-errno", "-fopenmp-simd", "-fvisibility=hidden"]


class BuildNative(build_ext):
    """build_ext that compiles each instruction set's kernels with its own flags, then links
    them into the extension; a failure of an optional extension is reported and skipped by
    setuptools (``Extension(optional=True)``)."""

    def build_extension(self, ext: Extension) -> None:
        if sys.platform == "win32" or self.compiler.compiler_type == "msvc":
            from distutils.errors import CompileError  # noqa: PLC0415

            raise CompileError("the native engine builds with GCC or Clang only")

        def compile_isa(isa: str) -> list[str]:
            return self.compiler.compile(
                [os.path.join(SRC, f"isa_{isa}.cpp")],
                output_dir=self.build_temp,
                include_dirs=[SRC],
                extra_postargs=[*COMMON, *NATIVE_ISAS[isa]],
                depends=[os.path.join(SRC, "kernels.hpp"), os.path.join(SRC, "program.hpp")],
            )

        # the translation units are independent: compile them side by side (each compiler is
        # its own process)
        with ThreadPoolExecutor(max(1, min(len(NATIVE_ISAS), os.cpu_count() or 1))) as pool:
            objects = [obj for objs in pool.map(compile_isa, NATIVE_ISAS) for obj in objs]
        ext.extra_objects = objects
        super().build_extension(ext)


def _extensions() -> list[Extension]:
    required = os.environ.get("GPUQNN_REQUIRE_NATIVE", "") == "1"
    try:
        from pybind11.setup_helpers import Pybind11Extension  # noqa: PLC0415
    except ImportError:  # a build without isolation in an environment without pybind11
        if required:
            raise
        print("gpuqnn: pybind11 is missing, the native CPU engine is not built", file=sys.stderr)
        return []
    return [
        Pybind11Extension(
            "gpuqnn._native._core",
            [os.path.join(SRC, "module.cpp")],
            include_dirs=[SRC],
            # relink when the kernels change (their objects are compiled in build_extension)
            depends=[
                os.path.join(SRC, name)
                for name in ("kernels.hpp", "program.hpp", *(f"isa_{i}.cpp" for i in NATIVE_ISAS))
            ],
            cxx_std=17,
            extra_compile_args=["-O2", "-fvisibility=hidden"],
            optional=not required,
        )
    ]


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildNative})

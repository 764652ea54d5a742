"""The CUDA kernels compile for the device: with nvcc for sm_80 and sm_90 (every template
instantiation, warnings and register spills as errors) where nvcc is on the machine, and with
NVRTC through CuPy (the RawModule path, without a device) where CuPy and NVRTC are importable.
Each test skips, saying why, when its compiler is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gpuqnn._cuda.plan import REAL_TYPES, SIGNATURES
from gpuqnn._cuda.source import (
    COMPILE_OPTIONS,
    kernel_source,
    kernel_source_path,
    name_expressions,
)

pytestmark = pytest.mark.gpu_logic

ARCHITECTURES = ["80", "90"]


def _instantiations() -> str:
    """A .cu that includes the source and instantiates every kernel for float and double."""
    lines = [f'#include "{kernel_source_path()}"']
    for kernel in SIGNATURES:
        params = f"GQ_{kernel[3:].upper()}_PARAMS"
        for real in REAL_TYPES.values():
            lines.append(f"template __global__ void {kernel}<{real}>({params}({real}));")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=[f"sm_{a}" for a in ARCHITECTURES])
def test_nvcc_compiles_every_kernel(arch: str, tmp_path: Path) -> None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH")
    unit = tmp_path / "kernels.cu"
    unit.write_text(_instantiations())
    cubin = tmp_path / "kernels.cubin"
    command = [
        nvcc,
        "-cubin",
        *COMPILE_OPTIONS,
        f"-arch=sm_{arch}",
        "-Werror",
        "all-warnings",
        "-Xptxas",
        "-warn-spills",
        "-o",
        str(cubin),
        str(unit),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}{result.stderr}"
    binary = cubin.read_bytes()
    for kernel in SIGNATURES:  # both instantiations are in the cubin (mangled names)
        for real in REAL_TYPES.values():
            assert f"_Z{len(kernel)}{kernel}I{real[0]}".encode() in binary, (kernel, real)


def _nvrtc():
    """CuPy's compiler module, or skip when CuPy or the NVRTC library is missing."""
    try:
        from cupy.cuda import compiler  # noqa: PLC0415 - optional dependency
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        pytest.skip(f"CuPy is not importable ({type(exc).__name__}: {exc})")
    try:
        compiler._get_nvrtc_version()
    except Exception as exc:  # the NVRTC shared library is not installed
        pytest.skip(f"NVRTC is not available to CuPy ({type(exc).__name__}: {exc})")
    if not hasattr(compiler, "_NVRTCProgram"):
        pytest.skip("this CuPy has no _NVRTCProgram (the RawModule compile path changed)")
    return compiler


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=[f"sm_{a}" for a in ARCHITECTURES])
def test_nvrtc_compiles_every_kernel(arch: str) -> None:
    """The path ``cupy.RawModule(code=..., options=COMPILE_OPTIONS, name_expressions=...)``
    takes, with the architecture given instead of read from a device: CuPy's NVRTC program
    with the same source, options and name expressions, compiled to a cubin."""
    compiler = _nvrtc()
    names = name_expressions()
    program = compiler._NVRTCProgram(
        kernel_source(), "statevector.cu", (), (), name_expressions=names, method="cubin"
    )
    options = (*COMPILE_OPTIONS, f"-arch=sm_{arch}", "--device-as-default-execution-space")
    cubin, mapping = program.compile(options)
    assert len(cubin) > 10_000
    assert set(mapping) == set(names)
    for name in names:
        kernel, real = name[:-1].split("<")
        assert mapping[name].startswith(f"_Z{len(kernel)}{kernel}I{real[0]}"), name

"""The CUDA kernels compile for the device: with nvcc for sm_80 and sm_90 (every entry point,
warnings and register spills as errors) where nvcc is on the machine, and with
NVRTC through CuPy (the RawModule path and gpuqnn's own wrapper, without a device) where CuPy
and NVRTC are importable. Each test skips, saying why, when its compiler is missing; the NVRTC
ones fail instead in CI, which installs CuPy and NVRTC (the nvrtc13 extra)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gpuqnn._cuda.nvrtc import compile_cubin
from gpuqnn._cuda.source import (
    COMPILE_OPTIONS,
    kernel_names,
    kernel_source,
    kernel_source_path,
)

from conftest import require_nvrtc

pytestmark = pytest.mark.gpu_logic

ARCHITECTURES = ["80", "90"]


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=[f"sm_{a}" for a in ARCHITECTURES])
def test_nvcc_compiles_every_kernel(arch: str, tmp_path: Path) -> None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH")
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
        "-x",
        "cu",
        str(kernel_source_path()),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}{result.stderr}"
    binary = cubin.read_bytes()
    for name in kernel_names():  # every entry point, under its plain extern "C" name
        assert name.encode() + b"\x00" in binary, name


def _nvrtc():
    """CuPy's compiler module; skips (fails in CI) when CuPy or the NVRTC library is missing."""
    require_nvrtc()
    from cupy.cuda import compiler  # noqa: PLC0415 - optional dependency

    if not hasattr(compiler, "_NVRTCProgram"):
        pytest.skip("this CuPy has no _NVRTCProgram (the RawModule compile path changed)")
    return compiler


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=[f"sm_{a}" for a in ARCHITECTURES])
def test_nvrtc_compiles_every_kernel(arch: str) -> None:
    """The path ``cupy.RawModule(code=..., options=COMPILE_OPTIONS)`` takes, with the
    architecture given instead of read from a device: CuPy's NVRTC program with the same source
    and options, compiled to a cubin that holds every entry point by its plain name (no name
    expressions: what lets CuPy cache the module on disk)."""
    compiler = _nvrtc()
    program = compiler._NVRTCProgram(kernel_source(), "statevector.cu", (), (), method="cubin")
    options = (*COMPILE_OPTIONS, f"-arch=sm_{arch}", "--device-as-default-execution-space")
    cubin, _mapping = program.compile(options)
    assert len(cubin) > 10_000
    for name in kernel_names():
        assert name.encode() + b"\x00" in cubin, name


def test_nvrtc_kernels_do_not_spill_on_sm_90() -> None:
    """gpuqnn's NVRTC wrapper on the real source, for sm_90 without a device: every entry
    point is in ptxas's report, none spills registers (what ``-warn-spills`` checks in the nvcc
    test) and none uses static shared memory."""
    require_nvrtc()
    result = compile_cubin(kernel_source(), "sm_90", COMPILE_OPTIONS, "statevector.cu")
    assert result.cubin.startswith(b"\x7fELF")
    assert set(result.resources) == set(kernel_names())
    for name, usage in result.resources.items():
        assert usage.spill_stores == usage.spill_loads == 0, (name, usage, result.log)
        assert 0 < usage.registers <= 255 and usage.shared_static == 0, (name, usage)


def _workload_kernels(num_qubits: int, dtype: str, which: tuple[str, ...]) -> list:
    """The generated kernels of the benchmarks' zz workload (zz_feature_map + real_amplitudes
    reps=3, Z^n): ``forward``, ``jacobian`` (the fused adjoint by every slot), ``vjp``."""
    from benchmarks.workloads import zz_kernel_tables  # noqa: PLC0415
    from gpuqnn._cuda.codegen import generate_adjoint, generate_forward  # noqa: PLC0415
    from gpuqnn._cuda.tables import DEFAULT_SHARED_LIMIT  # noqa: PLC0415

    kp, slots = zz_kernel_tables(num_qubits, dtype)
    make = {
        "forward": lambda: generate_forward(kp, dtype),
        "jacobian": lambda: generate_adjoint(kp, dtype, slots, False, DEFAULT_SHARED_LIMIT),
        "vjp": lambda: generate_adjoint(kp, dtype, slots, True, DEFAULT_SHARED_LIMIT),
    }
    return [make[name]() for name in which]


REGISTER_CASES = [
    pytest.param(8, "complex128", ("forward", "jacobian", "vjp"), id="zz8-complex128"),
    pytest.param(8, "complex64", ("forward", "jacobian", "vjp"), id="zz8-complex64"),
    pytest.param(12, "complex128", ("forward", "jacobian"), id="zz12-complex128"),
    pytest.param(12, "complex64", ("forward", "jacobian"), id="zz12-complex64"),
    pytest.param(12, "complex128", ("vjp",), id="zz12-complex128-vjp", marks=pytest.mark.slow),
    pytest.param(12, "complex64", ("vjp",), id="zz12-complex64-vjp", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("num_qubits", "dtype", "which"), REGISTER_CASES)
def test_generated_kernels_take_64_registers_and_never_spill(
    num_qubits: int, dtype: str, which: tuple[str, ...]
) -> None:
    """Issue 11's bound: the specialised kernels of the 8- and 12-qubit workloads, compiled by
    NVRTC for sm_90 as CuPy compiles them at run time, use at most 64 registers per thread (so
    that a 512-thread block leaves room for a second one per SM) with no spills, no local
    stack frame and no static shared memory."""
    require_nvrtc()
    for kernel in _workload_kernels(num_qubits, dtype, which):
        result = compile_cubin(kernel.source, "sm_90", COMPILE_OPTIONS)
        usage = result.resources[kernel.name]
        assert usage.registers <= 64, (kernel.name, usage)
        assert usage.spill_stores == usage.spill_loads == 0, (kernel.name, usage, result.log)
        assert usage.shared_static == 0, (kernel.name, usage)
        assert "stack frame" not in result.log or " 0 bytes stack frame" in result.log

"""gpuqnn._cuda.nvrtc: NVRTC compiles to a cubin without a device, and ptxas's verbose report
(NVRTC's log and nvcc's ``-Xptxas -v`` output) parses into registers, spills and static shared
memory per kernel. The parser runs on reports captured from real compilers; the compiles need
CuPy and NVRTC (the nvrtc13 extra installs both), and the error paths run on stand-ins."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from gpuqnn._cuda.nvrtc import CompileResult, KernelResources, compile_cubin, kernel_resources

from conftest import require_nvrtc

pytestmark = pytest.mark.gpu_logic

SOURCE = r"""
extern "C" __global__ void axpy(float a, const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += a * x[i];
}

extern "C" __global__ void tile_sum(const double* x, double* out) {
    __shared__ double tile[256];
    tile[threadIdx.x] = x[blockIdx.x * 256 + threadIdx.x];
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0;
        for (int i = 0; i < 256; ++i) s += tile[i];
        out[blockIdx.x] = s;
    }
}

__device__ __noinline__ double horner(const double* c, double x, int n) {
    double r = 0;
    for (int i = n - 1; i >= 0; --i) r = r * x + c[i];
    return r;
}

template <typename T>
__global__ void scale(T* y, T a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = a * y[i];
}
template __global__ void scale<float>(float*, float, int);

// 40 live doubles under __launch_bounds__(1024, 2) (at most 32 registers): spills
extern "C" __global__ void __launch_bounds__(1024, 2)
pressure(const double* x, double* out, int n) {
    double acc[40];
#pragma unroll
    for (int k = 0; k < 40; ++k) acc[k] = x[threadIdx.x + k * n];
    for (int j = 0; j < n; ++j) {
#pragma unroll
        for (int k = 0; k < 40; ++k) acc[k] = acc[k] * acc[(k + 7) % 40] + x[j + k];
    }
    double s = 0;
#pragma unroll
    for (int k = 0; k < 40; ++k) s += acc[k];
    out[threadIdx.x] = s + horner(x, s, n);
}
"""

NVRTC_LOG = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'pressure' for 'sm_90'
ptxas info    : Function properties for pressure
ptxas         .     1272 bytes stack frame, 3716 bytes spill stores, 4404 bytes spill loads
ptxas info    : Used 32 registers, used 0 barriers, 1272 bytes cumulative stack size
ptxas info    : Compile time = 56.673 ms
ptxas info    : Function properties for _Z6hornerPKddi
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function '_Z5scaleIfEvPT_S0_i' for 'sm_90'
ptxas info    : Function properties for _Z5scaleIfEvPT_S0_i
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, used 0 barriers
ptxas info    : Compile time = 1.831 ms
ptxas info    : Compiling entry function 'tile_sum' for 'sm_90'
ptxas info    : Function properties for tile_sum
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 20 registers, used 1 barriers, 2048 bytes smem
ptxas info    : Compile time = 3.450 ms
ptxas info    : Compiling entry function 'axpy' for 'sm_90'
ptxas info    : Function properties for axpy
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 10 registers, used 0 barriers
ptxas info    : Compile time = 1.171 ms
"""
"""NVRTC 13.5's log for SOURCE, ``-arch=sm_90 --ptxas-options=--verbose``."""

NVCC_LOG = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'pressure' for 'sm_90'
ptxas info    : Function properties for pressure
    1272 bytes stack frame, 3716 bytes spill stores, 4404 bytes spill loads
ptxas info    : Used 32 registers, used 0 barriers, 1272 bytes cumulative stack size
ptxas info    : Compile time = 46.786 ms
ptxas info    : Function properties for _Z6hornerPKddi
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function '_Z5scaleIfEvPT_S0_i' for 'sm_90'
ptxas info    : Function properties for _Z5scaleIfEvPT_S0_i
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, used 0 barriers
ptxas info    : Compile time = 1.650 ms
ptxas info    : Compiling entry function 'tile_sum' for 'sm_90'
ptxas info    : Function properties for tile_sum
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 20 registers, used 1 barriers, 2048 bytes smem
ptxas info    : Compile time = 2.892 ms
ptxas info    : Compiling entry function 'axpy' for 'sm_90'
ptxas info    : Function properties for axpy
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 10 registers, used 0 barriers
ptxas info    : Compile time = 0.987 ms
"""
"""nvcc 13.0's stderr for SOURCE, ``nvcc -cubin -arch=sm_90 -Xptxas -v``."""

NVCC_TWO_ARCHS = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'tile_sum' for 'sm_80'
ptxas info    : Function properties for tile_sum
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 24 registers, used 1 barriers, 2048 bytes smem, 368 bytes cmem[0]
ptxas info    : Compile time = 10.066 ms
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'tile_sum' for 'sm_90'
ptxas info    : Function properties for tile_sum
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 20 registers, used 1 barriers, 2048 bytes smem
ptxas info    : Compile time = 4.703 ms
"""
"""nvcc 13.0's stderr for SOURCE's tile_sum alone, ``-gencode`` for sm_80 and sm_90,
``-Xptxas -v``."""

EXPECTED = {
    "pressure": KernelResources(registers=32, spill_stores=3716, spill_loads=4404, shared_static=0),
    "_Z5scaleIfEvPT_S0_i": KernelResources(8, 0, 0, 0),
    "tile_sum": KernelResources(20, 0, 0, 2048),
    "axpy": KernelResources(10, 0, 0, 0),
}


@pytest.mark.parametrize("log", [NVRTC_LOG, NVCC_LOG], ids=["nvrtc", "nvcc"])
def test_kernel_resources_of_captured_reports(log: str) -> None:
    """Entry kernels only (the __noinline__ horner has properties but no entry), keyed by
    symbol: extern "C" names as written, the template instantiation mangled."""
    assert kernel_resources(log) == EXPECTED
    assert kernel_resources(log, arch="sm_90") == EXPECTED
    assert kernel_resources(log, arch="sm_80") == {}


def test_kernel_resources_of_a_build_for_two_architectures() -> None:
    sm_80 = kernel_resources(NVCC_TWO_ARCHS, arch="sm_80")
    assert sm_80 == {"tile_sum": KernelResources(24, 0, 0, 2048)}
    sm_90 = kernel_resources(NVCC_TWO_ARCHS, arch="sm_90")
    assert sm_90 == {"tile_sum": KernelResources(20, 0, 0, 2048)}
    with pytest.raises(ValueError, match="'tile_sum' appears more than once.*arch="):
        kernel_resources(NVCC_TWO_ARCHS)


def test_kernel_resources_of_a_report_without_kernels() -> None:
    assert kernel_resources("") == {}
    assert kernel_resources("ptxas info    : 0 bytes gmem\n") == {}


def test_compile_cubin_without_a_device() -> None:
    """A real NVRTC compile for sm_90 (no GPU or driver here): an ELF cubin, and a report with
    the same kernels and the shapes the captured one has (register counts vary by version)."""
    require_nvrtc()
    result = compile_cubin(SOURCE, arch="sm_90")
    assert isinstance(result, CompileResult) and result.arch == "sm_90"
    assert result.cubin.startswith(b"\x7fELF") and len(result.cubin) > 1000
    assert result.nvrtc_version[0] >= 12
    assert "Compiling entry function 'axpy' for 'sm_90'" in result.log
    assert not result.log.endswith("\x00")
    assert set(result.resources) == set(EXPECTED)
    assert result.resources["tile_sum"].shared_static == 2048
    assert result.resources["pressure"].registers <= 32
    assert result.resources["pressure"].spill_stores > 0
    assert result.resources["pressure"].spill_loads > 0
    for name in ("axpy", "tile_sum", "_Z5scaleIfEvPT_S0_i"):
        usage = result.resources[name]
        assert usage.registers > 0 and usage.spill_stores == usage.spill_loads == 0, name


def test_compile_cubin_takes_options() -> None:
    require_nvrtc()
    source = 'extern "C" __global__ void k(float* y) { y[0] = VALUE; }'
    result = compile_cubin(source, arch="sm_80", options=("-DVALUE=2.0f",))
    assert set(result.resources) == {"k"} and result.arch == "sm_80"


def test_compile_failure_raises_with_the_log() -> None:
    require_nvrtc()
    source = 'extern "C" __global__ void broken() { not_declared(); }'
    with pytest.raises(
        RuntimeError, match=r"(?s)could not compile bad\.cu for sm_90.*not_declared"
    ):
        compile_cubin(source, name="bad.cu")
    with pytest.raises(RuntimeError, match=r"(?s)NVRTC_ERROR_INVALID_OPTION.*--no-such-option"):
        compile_cubin('extern "C" __global__ void k() {}', options=("--no-such-option",))


@pytest.mark.parametrize("arch", ["compute_90", "90", "sm90", ""])
def test_arch_must_be_a_real_architecture(arch: str) -> None:
    with pytest.raises(ValueError, match="real architecture like 'sm_90'"):
        compile_cubin("", arch=arch)


class DynamicLibNotFoundError(RuntimeError):
    """Stands in for cuda-pathfinder's error of that name."""


def _cupy_without_nvrtc(cuda_version: int) -> SimpleNamespace:
    def missing():
        raise DynamicLibNotFoundError('Failure finding "libnvrtc.so.13"')

    runtime = SimpleNamespace(runtimeGetVersion=lambda: cuda_version)
    return SimpleNamespace(
        cuda=SimpleNamespace(nvrtc=SimpleNamespace(getVersion=missing), runtime=runtime)
    )


@pytest.mark.parametrize("major", [12, 13])
def test_missing_nvrtc_names_the_library_and_the_extra(
    monkeypatch: pytest.MonkeyPatch, major: int
) -> None:
    monkeypatch.setitem(sys.modules, "cupy", _cupy_without_nvrtc(major * 1000 + 20))
    with pytest.raises(RuntimeError) as info:
        compile_cubin('extern "C" __global__ void k() {}')
    message = str(info.value)
    assert f"NVRTC (libnvrtc.so.{major}) not found" in message
    assert f'pip install -e ".[cuda{major}]" in the gpuqnn checkout' in message


def test_missing_cupy_names_the_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    hint = r'needs CuPy.*pip install -e "\.\[cuda12\]" in the gpuqnn checkout.*cuda13'
    with pytest.raises(RuntimeError, match=hint):
        compile_cubin('extern "C" __global__ void k() {}')

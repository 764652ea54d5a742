"""Backend selection names what stands between CuPy and a GPU: CuPy itself, NVRTC or cuBLAS
(the CUDA extras bring them), the driver or the device. ``device="gpu"``/``"cuda"``/``"cuda:N"``
raise with it; ``device="auto"`` falls back to NumPy and logs it. Runs on stand-ins for CuPy,
plus the real CuPy of the test extra where no driver is installed (CI)."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from contextlib import nullcontext
from types import SimpleNamespace

import pytest

from gpuqnn._sim import backend
from gpuqnn._sim.backend import load_cupy, select_backend, select_backends

from conftest import cuda_device_available

EXPLICIT = ["gpu", "cuda", "cuda:0"]


class DynamicLibNotFoundError(RuntimeError):
    """Stands in for cuda-pathfinder's error of that name (what CuPy 14 raises for NVRTC)."""


class FakeCupy:
    """The parts of CuPy that backend selection touches, each able to fail."""

    def __init__(
        self,
        cuda: int = 13020,
        driver: int = 13020,
        devices: int = 1,
        nvrtc: Exception | None = None,
        cublas: Exception | None = None,
        compute: Exception | None = None,
    ) -> None:
        self.computed = False

        def device_count() -> int:
            if driver == 0:
                raise RuntimeError("cudaErrorInsufficientDriver")
            return devices

        def nvrtc_version() -> tuple[int, int]:
            if nvrtc is not None:
                raise nvrtc
            return (cuda // 1000, cuda % 1000 // 10)

        class Cuda:
            runtime = SimpleNamespace(
                runtimeGetVersion=lambda: cuda,
                driverGetVersion=lambda: driver,
                getDeviceCount=device_count,
                getDevice=lambda: 0,
            )
            nvrtc = SimpleNamespace(getVersion=nvrtc_version)

            @property
            def cublas(self) -> object:
                if cublas is not None:
                    raise cublas
                return SimpleNamespace()

            @staticmethod
            def Device(index: int) -> nullcontext:  # noqa: N802 - CuPy's name
                return nullcontext()

        self.cuda = Cuda()
        self._compute = compute

    def zeros(self, n: int) -> FakeCupy:
        return self

    def sum(self) -> FakeCupy:
        if self._compute is not None:
            raise self._compute
        self.computed = True
        return self

    def item(self) -> float:
        return 0.0


def use(monkeypatch: pytest.MonkeyPatch, cupy: FakeCupy | None) -> None:
    """Make backend selection find ``cupy`` (None: CuPy not installed); forget past warnings."""

    def import_cupy() -> FakeCupy:
        if cupy is None:
            raise ModuleNotFoundError("No module named 'cupy'")
        return cupy

    monkeypatch.setattr(backend, "_import_cupy", import_cupy)
    monkeypatch.setattr(backend, "_warned", set())


def gpu_error(device: str) -> str:
    with pytest.raises(RuntimeError) as info:
        select_backend(device)
    return str(info.value)


NVRTC_MISSING = DynamicLibNotFoundError('Failure finding "libnvrtc.so.13 or libnvrtc.so.12"')
CUBLAS_MISSING = ImportError('Failure finding "libcublasLt.so.13 or libcublasLt.so.12"')


@pytest.mark.parametrize("device", EXPLICIT)
def test_missing_nvrtc_is_named_not_the_driver(
    monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    use(monkeypatch, FakeCupy(nvrtc=NVRTC_MISSING))
    message = gpu_error(device)
    assert message.startswith(f"device={device!r} needs a CUDA GPU, but ")
    assert (
        "NVRTC (libnvrtc.so.13) not found: install the CUDA extra: "
        'pip install -e ".[cuda13]" in the gpuqnn checkout' in message
    )
    assert "driver" not in message


@pytest.mark.parametrize("device", EXPLICIT)
def test_missing_cublas_is_named(monkeypatch: pytest.MonkeyPatch, device: str) -> None:
    use(monkeypatch, FakeCupy(cublas=CUBLAS_MISSING))
    message = gpu_error(device)
    assert (
        "cuBLAS (libcublas.so.13) not found: install the CUDA extra: "
        'pip install -e ".[cuda13]" in the gpuqnn checkout' in message
    )
    assert "NVRTC" not in message and "driver" not in message


def test_both_libraries_missing_on_cuda_12(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeCupy(cuda=12080, driver=12080, nvrtc=NVRTC_MISSING, cublas=CUBLAS_MISSING))
    assert gpu_error("gpu").endswith(
        "NVRTC (libnvrtc.so.12) and cuBLAS (libcublas.so.12) not found: "
        'install the CUDA extra: pip install -e ".[cuda12]" in the gpuqnn checkout'
    )


def test_a_library_that_loads_but_fails_is_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeCupy(nvrtc=RuntimeError("undefined symbol: nvrtcFoo\nmore")))
    message = gpu_error("gpu")
    assert (
        "NVRTC (libnvrtc.so.13) could not be loaded (RuntimeError: undefined symbol: nvrtcFoo)"
        in message
    )
    assert "not found" not in message and "more" not in message


def test_no_driver_keeps_the_driver_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeCupy(driver=0))
    message = gpu_error("gpu")
    assert "no NVIDIA driver found: check the NVIDIA driver and devices" in message
    assert "not found:" not in message  # NVRTC and cuBLAS are there


def test_no_driver_and_a_missing_library_name_both(monkeypatch: pytest.MonkeyPatch) -> None:
    """CuPy with the test extra's NVRTC but no cuBLAS, on a machine without a GPU (CI)."""
    use(monkeypatch, FakeCupy(driver=0, cublas=CUBLAS_MISSING))
    message = gpu_error("cuda")
    assert "no NVIDIA driver found: check the NVIDIA driver" in message
    assert (
        "cuBLAS (libcublas.so.13) not found: install the CUDA extra: "
        'pip install -e ".[cuda13]" in the gpuqnn checkout' in message
    )


def test_a_driver_older_than_cupys_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeCupy(cuda=13020, driver=12040))
    message = gpu_error("gpu")
    assert "the NVIDIA driver supports CUDA 12.4 but CuPy is built for CUDA 13" in message
    expected = (
        'pip install -e ".[cuda12]" in the gpuqnn checkout (after pip uninstall cupy-cuda13x)'
    )
    assert expected in message


def test_a_device_that_does_not_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeCupy(devices=2))
    assert gpu_error("cuda:3").endswith(
        "CUDA device 3 does not exist (2 device(s) found): use cuda:0 to cuda:1"
    )


def test_a_failing_first_computation(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeCupy(compute=RuntimeError("cudaErrorLaunchFailure")))
    message = gpu_error("gpu")
    assert (
        "CUDA device 0 failed a first computation (RuntimeError: cudaErrorLaunchFailure)" in message
    )
    assert "check the NVIDIA driver" in message


def test_without_cupy_the_extras_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, None)
    message = gpu_error("gpu")
    assert "CuPy is not importable (ModuleNotFoundError" in message
    assert 'pip install -e ".[cuda12]" in the gpuqnn checkout (or .[cuda13]' in message


def test_cuda_all_names_the_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, FakeCupy(nvrtc=NVRTC_MISSING))
    with pytest.raises(
        RuntimeError, match=r"'cuda:all' needs CUDA GPUs.*libnvrtc\.so\.13\) not found"
    ):
        select_backends("cuda:all")


def test_a_working_stand_in_gives_the_gpu_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCupy()
    use(monkeypatch, fake)
    assert select_backend("gpu").name == "cuda:0" and fake.computed
    assert load_cupy(0) == (fake, "")


def auto_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=backend.__name__):
        assert select_backend("auto").name == "cpu"
    return [r for r in caplog.records if "device='auto'" in r.getMessage()]


def test_auto_warns_once_when_a_gpu_is_there_but_nvrtc_is_not(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The silent fallback the CUDA extras fix: a GPU answers, NVRTC is missing. A WARNING
    names the library, once; later networks log it at INFO."""
    use(monkeypatch, FakeCupy(nvrtc=NVRTC_MISSING))
    (first,) = auto_records(caplog)
    assert first.levelno == logging.WARNING
    assert "using NumPy on the CPU because NVRTC (libnvrtc.so.13) not found" in first.getMessage()
    (second,) = auto_records(caplog)
    assert second.levelno == logging.INFO and second.getMessage() == first.getMessage()


def test_auto_warns_when_the_driver_is_too_old(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use(monkeypatch, FakeCupy(cuda=13020, driver=12040))
    (record,) = auto_records(caplog)
    assert record.levelno == logging.WARNING and "supports CUDA 12.4" in record.getMessage()


@pytest.mark.parametrize(
    "cupy",
    [None, FakeCupy(driver=0), FakeCupy(driver=0, cublas=CUBLAS_MISSING), FakeCupy(devices=0)],
    ids=["no-cupy", "no-driver", "no-driver-no-cublas", "no-device"],
)
def test_auto_logs_info_on_a_machine_without_a_gpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, cupy: FakeCupy | None
) -> None:
    """The normal state of a CPU machine, CI's included: no WARNING on every network built."""
    use(monkeypatch, cupy)
    for _ in range(2):
        (record,) = auto_records(caplog)
        assert record.levelno == logging.INFO
        assert "using NumPy on the CPU because" in record.getMessage()


HAS_CUPY = importlib.util.find_spec("cupy") is not None


@pytest.mark.skipif(not HAS_CUPY, reason="CuPy is not installed (the test extra installs it)")
def test_the_installed_cupy_without_a_driver(caplog: pytest.LogCaptureFixture) -> None:
    """The real CuPy on a machine without a driver (CI, with the test extra): importing gpuqnn
    does not import it, "auto" is NumPy with an INFO line, "gpu" raises with the driver hint."""
    if cuda_device_available():
        pytest.skip("a CUDA device answers here")
    code = "import sys, gpuqnn; assert 'cupy' not in sys.modules, 'cupy imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    (record,) = auto_records(caplog)
    assert record.levelno == logging.INFO
    message = gpu_error("gpu")
    assert "check the NVIDIA driver" in message


class _Pool:
    """CuPy's ``MemoryPool`` counters, as the pool of the device current when asked."""

    def __init__(self, current: list[int], free: int, used: int, limit: int) -> None:
        self.current, self.free, self.used, self.limit = current, free, used, limit

    def free_bytes(self) -> int:
        assert self.current == [1], "asked outside the backend's device"
        return self.free

    def used_bytes(self) -> int:
        return self.used

    def get_limit(self) -> int:
        return self.limit


def test_free_device_memory_counts_the_pools_cached_blocks_and_its_limit() -> None:
    """Issue 18, item 9: ``memGetInfo`` counts the blocks CuPy's pool caches as taken, though
    they serve the next allocations; the budget counts them free, within the pool's limit."""
    import numpy as np  # noqa: PLC0415

    gib = 1 << 30
    current: list[int] = []

    class Device:
        def __init__(self, index: int) -> None:
            self.index = index

        def __enter__(self) -> None:
            current.append(self.index)

        def __exit__(self, *exc: object) -> None:
            current.pop()

    pool = _Pool(current, free=3 * gib, used=5 * gib, limit=0)
    xp = SimpleNamespace(
        ndarray=object,
        cuda=SimpleNamespace(
            Device=Device, runtime=SimpleNamespace(memGetInfo=lambda: (1 * gib, 80 * gib))
        ),
        get_default_memory_pool=lambda: pool,
    )
    gpu = backend.Backend(xp, "cuda:1", np.dtype(np.complex128))  # type: ignore[arg-type]
    assert gpu.free_memory() == 4 * gib  # 1 free on the device + 3 cached in the pool
    pool.limit = 6 * gib + gib // 2  # set_limit: what its arrays use counts against it
    assert gpu.free_memory() == 1 * gib + gib // 2
    pool.limit = 4 * gib  # arrays already use more than the limit
    assert gpu.free_memory() == 0
    assert current == []

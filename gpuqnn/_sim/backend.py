"""Array backends: which array module, device and dtype the engine runs with.

The engine is written once against an array module (``numpy`` or ``cupy``). A :class:`Backend`
names that module, the device and the complex dtype; it is the only place where CuPy is imported
(lazily) and where data crosses between host and device.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

from .._devices import env_index, local_rank_device
from .._options import CUDA_DEVICE, DTYPES
from .expi import ExpI

logger = logging.getLogger(__name__)

_EXPI = ExpI()
"""Immutable after construction (a table of roots of unity), so sharing it is safe."""
_FLOAT32_PHASE_LIMIT = float(2**24)
"""Angles beyond this (rad) carry no phase information in float32: reduced in float64 first."""


def extra_command(major: int | str) -> str:
    """The command that installs the CUDA ``major`` extra: gpuqnn is not published on PyPI, so
    from a checkout (``pip install "gpuqnn[cuda13]"`` finds no such package)."""
    return f'pip install -e ".[cuda{major}]" in the gpuqnn checkout'


_INSTALL_HINT = f"install the CUDA extra: {extra_command(12)} (or .[cuda13] for CUDA 13)"
_DRIVER_HINT = "check the NVIDIA driver and devices (nvidia-smi)"


_Method = TypeVar("_Method", bound=Callable[..., Any])


def on_device(backend_attribute: str) -> Callable[[_Method], _Method]:
    """Decorator: run a method with the device of ``getattr(self, backend_attribute)``
    current. CuPy allocates and launches on the current device; without this, the work of a
    ``cuda:1`` simulator or network would land on whichever device the caller has current."""

    def decorate(method: _Method) -> _Method:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with getattr(self, backend_attribute).activate():
                return method(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


@dataclass(frozen=True)
class Backend:
    """The array module, device and dtypes the engine uses.

    Attributes:
        xp: The array module, ``numpy`` or ``cupy``.
        name: ``"cpu"`` or ``"cuda:N"``.
        dtype: Complex dtype of the statevectors (``complex128`` or ``complex64``).
        share: see below.
    """

    xp: ModuleType
    name: str
    dtype: np.dtype
    share: int = 1
    """Processes of this node expected to use the device at once (torchrun's ranks): the
    default memory budget is each one's share of the free memory."""

    @property
    def real_dtype(self) -> np.dtype:
        """The real dtype matching :attr:`dtype` (float64 or float32)."""
        return np.dtype(np.float64 if self.dtype == np.complex128 else np.float32)

    @property
    def work_chunk_bytes(self) -> int | None:
        """Preferred bytes of states per engine call, or None for "as many as memory allows".

        On the CPU, chunks of about 64 MiB (all of a chunk's buffers counted) are fastest:
        measured on the 8- and 12-qubit benchmark networks against 4 to 256 MiB (12-qubit
        adjoint backward: 37 ms at 16 MiB, 23 ms at 64, 24 ms at 128; 8-qubit parameter shift:
        69, 58, 69 ms); smaller chunks pay Python overhead per call, bigger ones leave the
        cache. On a GPU, one big tensor is best.
        """
        return None if self.is_gpu else 64 << 20

    @property
    def is_gpu(self) -> bool:
        """Whether the arrays live on a CUDA device."""
        return self.name != "cpu"

    def is_array(self, value: Any) -> bool:
        """Whether ``value`` is an array of this backend's device (a CuPy array on a GPU);
        always False on the CPU, whose arrays are NumPy's."""
        return self.is_gpu and isinstance(value, self.xp.ndarray)

    def check_device(self, name: str, value: Any) -> None:
        """Refuse an array of another CUDA device: a CuPy array ``value`` must live on this
        backend's device (other values are converted on it by the caller). Nothing is copied
        between devices behind the caller's back, as PyTorch refuses tensors of two devices in
        one operation.

        Raises:
            ValueError: ``value`` is on another device (the message names both and the fix).
        """
        index = getattr(getattr(value, "device", None), "id", None)
        if not self.is_gpu or index is None or not self.is_array(value):
            return
        mine = _device_index(self.name)
        if int(index) != mine:
            raise ValueError(
                f"{name} is on cuda:{index}, but the network runs on {self.name}: move it "
                f"there first (cupy: copy it inside `with cupy.cuda.Device({mine}):`; torch: "
                f"tensor.to('{self.name}')), or build the network with device='cuda:{index}'"
            )

    def activate(self) -> Any:
        """A context in which this backend's device is CuPy's current device (nothing on the
        CPU)."""
        if self.is_gpu:
            return self.xp.cuda.Device(_device_index(self.name))
        return nullcontext()

    def synchronize(self) -> None:
        """Wait until the work the calling thread queued on this backend's device (on CuPy's
        current stream of this thread) is done; nothing on the CPU."""
        if self.is_gpu:
            with self.xp.cuda.Device(_device_index(self.name)):
                self.xp.cuda.get_current_stream().synchronize()

    def asarray(self, array: Any, dtype: Any = None) -> Any:
        """Copy a host array to the backend's device (no copy on the CPU backend)."""
        if self.is_gpu:
            with self.xp.cuda.Device(_device_index(self.name)):
                return self.xp.asarray(array, dtype=dtype)
        return np.asarray(array, dtype=dtype)

    def to_host(self, array: Any) -> np.ndarray:
        """Copy a backend array to a host NumPy array."""
        if self.is_gpu:
            host: np.ndarray = self.xp.asnumpy(array)
            return host
        return np.asarray(array)

    def gather(self, array: Any, index: Any, out: Any) -> Any:
        """``out[..., i] = array[..., index[i]]`` for an in-range (D,) index array.

        NumPy's ``take`` checks bounds and buffers unless ``mode="clip"`` (3x slower measured);
        the indices are valid by construction, so clipping never changes them.
        """
        if self.is_gpu:
            return self.xp.take(array, index, axis=-1, out=out)
        return np.take(array, index, axis=-1, out=out, mode="clip")

    def real_angles(self, angles: Any) -> Any:
        """``angles`` (float64) in the backend's real dtype.

        For float32 (complex64 states), angles beyond 2**24 rad, whose float32 value carries no
        phase information (its spacing is 1 rad and more) and which overflow to inf beyond
        3.4e38, are first reduced modulo 4 pi in float64: a period of every standard gate's
        angle, so the outputs stay physical instead of NaN.
        """
        real = self.real_dtype
        if angles.dtype == real or np.dtype(real).itemsize >= 8:
            return angles.astype(real, copy=False)
        xp = self.xp
        huge = xp.abs(angles) > _FLOAT32_PHASE_LIMIT
        return xp.where(huge, xp.remainder(angles, 4 * np.pi), angles).astype(real)

    def cis(self, phi: Any, out: Any) -> Any:
        """``out = exp(1j * phi)``; ``phi`` (real) may be overwritten.

        float64 on the CPU uses :class:`gpuqnn._sim.expi.ExpI` (NumPy's float64 cos/sin are scalar
        libm calls); float32 and CuPy use their own vectorised cos/sin.
        """
        if not self.is_gpu and phi.dtype == np.float64:
            return _EXPI(phi, out)
        self.xp.cos(phi, out=out.real)
        self.xp.sin(phi, out=out.imag)
        return out

    def free_memory(self) -> int:
        """Bytes of memory currently available to this backend (host RAM or device memory).

        On a GPU, the driver's free memory plus what CuPy's default memory pool holds unused
        (its free blocks serve the next allocations: ``memGetInfo`` counts them as taken, so
        after one large pass the budget would shrink to a fraction), capped by the pool's
        limit (``cupy.get_default_memory_pool().set_limit``, or ``CUPY_GPU_MEMORY_LIMIT``) less
        what its arrays use.
        """
        if self.is_gpu:
            with self.xp.cuda.Device(_device_index(self.name)):
                free, _total = self.xp.cuda.runtime.memGetInfo()
                return pool_available(int(free), self.xp.get_default_memory_pool())
        return host_available_memory()


def pool_available(device_free: int, pool: Any) -> int:
    """Bytes a CuPy memory pool can still hand out on its device: ``device_free`` (the driver's
    free memory) plus the pool's unused cached blocks, at most its limit (0: none) less its
    used bytes. The pool's counters are per device, those of the device current when asked."""
    available = device_free + int(pool.free_bytes())
    limit = int(pool.get_limit())
    if limit > 0:
        available = min(available, max(0, limit - int(pool.used_bytes())))
    return available


def host_available_memory() -> int:
    """Bytes of host memory available now (``MemAvailable``), with a portable fallback."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 * 1024**3


def _device_index(name: str) -> int:
    match = CUDA_DEVICE.match(name)
    return int(match.group(1)) if match and match.group(1) is not None else 0


def _import_cupy() -> ModuleType:
    import cupy  # noqa: PLC0415 - lazy on purpose: import gpuqnn never imports CuPy

    module: ModuleType = cupy
    return module


def cuda_major(cupy: ModuleType) -> int | None:
    """The CUDA major version CuPy was built for (12, 13), read without a driver; None if
    CuPy cannot say."""
    try:
        return int(cupy.cuda.runtime.runtimeGetVersion()) // 1000
    except Exception:  # noqa: BLE001 - a CuPy that cannot say: the hint names both extras
        return None


def install_hint(major: int | None) -> str:
    """What to install for CuPy's CUDA ``major``: the matching extra, or both when unknown."""
    if major in (12, 13):
        return f"install the CUDA extra: {extra_command(major)}"
    return _INSTALL_HINT


_LIBRARIES = {"nvrtc": "NVRTC", "cublas": "cuBLAS"}
"""The CUDA libraries the GPU path loads through CuPy besides the driver: NVRTC compiles every
CuPy and gpuqnn kernel, cuBLAS runs the matmuls. Neither ships in CuPy's own wheel."""


def _load_library(cupy: ModuleType, library: str) -> None:
    """Make CuPy load ``library`` (no device needed); raises what CuPy raises."""
    if library == "nvrtc":
        cupy.cuda.nvrtc.getVersion()
    else:
        cupy.cuda.cublas  # noqa: B018 - CuPy loads libcublas on this first access


def library_problem(cupy: ModuleType, libraries: tuple[str, ...] = tuple(_LIBRARIES)) -> str | None:
    """None when CuPy loads every one of ``libraries`` (keys of ``_LIBRARIES``), else which
    not and what to install, e.g. ``NVRTC (libnvrtc.so.13) not found: install the CUDA extra:
    pip install -e ".[cuda13]" in the gpuqnn checkout``."""
    major = cuda_major(cupy)
    missing, failed = [], []
    for library in libraries:
        try:
            _load_library(cupy, library)
        except Exception as exc:  # cuda-pathfinder's DynamicLibNotFoundError, ImportError...
            soname = f"lib{library}.so" + (f".{major}" if major else "")
            logger.debug("loading %s failed: %s: %s", soname, type(exc).__name__, exc)
            what = f"{_LIBRARIES[library]} ({soname})"
            if isinstance(exc, ImportError | OSError) or "NotFound" in type(exc).__name__:
                missing.append(what)
            else:
                first = (str(exc).strip().splitlines() or [""])[0]
                failed.append(f"{what} could not be loaded ({type(exc).__name__}: {first})")
    if not missing and not failed:
        return None
    found = [" and ".join(missing) + " not found"] if missing else []
    return f"{'; '.join(found + failed)}: {install_hint(major)}"


def _device_problem(cupy: ModuleType, device_index: int | None) -> tuple[str | None, bool]:
    """(None, True) when the driver answers and CUDA device ``device_index`` (or the current
    one) exists, else (what is wrong with a hint, whether a GPU is there all the same: a driver
    too old for CuPy's CUDA)."""
    runtime = cupy.cuda.runtime
    try:
        driver = int(runtime.driverGetVersion())
    except Exception:  # noqa: BLE001 - getDeviceCount below says what is wrong
        driver = -1
    if driver == 0:  # CUDA's answer when no driver library is installed
        return f"no NVIDIA driver found: {_DRIVER_HINT}", False
    major = cuda_major(cupy)
    if 0 < driver and major is not None and driver // 1000 < major:
        supported = f"{driver // 1000}.{driver % 1000 // 10}"
        return (
            f"the NVIDIA driver supports CUDA {supported} but CuPy is built for CUDA {major}: "
            f"update the driver, or install the extra for CUDA {driver // 1000}: "
            f"{extra_command(driver // 1000)} (after pip uninstall cupy-cuda{major}x)"
        ), True
    try:
        count = int(runtime.getDeviceCount())
        index = int(runtime.getDevice()) if device_index is None else device_index
    except Exception as exc:  # CUDARuntimeError: no device, driver too old, ...
        return f"no usable CUDA device ({type(exc).__name__}: {exc}): {_DRIVER_HINT}", False
    if index >= count:
        hint = f"use cuda:0 to cuda:{count - 1}" if count else _DRIVER_HINT
        return f"CUDA device {index} does not exist ({count} device(s) found): {hint}", False
    return None, True


@dataclass(frozen=True)
class CupyProbe:
    """What :func:`probe_cupy` found.

    Attributes:
        cupy: the CuPy module when a device is usable, else None.
        problems: what stands in the way, each with what to do (empty when usable).
        gpu_present: whether an NVIDIA GPU is there: the device answered (only the CUDA
            libraries or the first computation failed), or the driver is too old for CuPy's
            CUDA. Then the install, not the machine, is what is missing.
    """

    cupy: ModuleType | None
    problems: tuple[str, ...]
    gpu_present: bool

    @property
    def reason(self) -> str:
        """The problems in one line."""
        return "; ".join(self.problems)


def probe_cupy(device_index: int | None) -> CupyProbe:
    """Import CuPy, load NVRTC and cuBLAS, and check that CUDA device ``device_index`` (or the
    current one) answers and computes. CuPy may import and still fail on every array
    operation: without a driver, or without NVRTC (every kernel is compiled with it)."""
    try:
        cupy = _import_cupy()
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return CupyProbe(
            None, (f"CuPy is not importable ({type(exc).__name__}: {exc}): {_INSTALL_HINT}",), False
        )
    libraries = library_problem(cupy)
    device, gpu_present = _device_problem(cupy, device_index)
    if device is not None:
        return CupyProbe(None, (device, *filter(None, [libraries])), gpu_present)
    if libraries is not None:
        return CupyProbe(None, (libraries,), True)
    index = int(cupy.cuda.runtime.getDevice()) if device_index is None else device_index
    try:
        with cupy.cuda.Device(index):
            cupy.zeros(1).sum().item()
    except Exception as exc:  # noqa: BLE001 - anything else the first kernel runs into
        problem = f"CUDA device {index} failed a first computation ({type(exc).__name__}: {exc})"
        return CupyProbe(None, (f"{problem}: {_DRIVER_HINT}",), True)
    return CupyProbe(cupy, (), True)


def load_cupy(device_index: int | None) -> tuple[ModuleType | None, str]:
    """(cupy, "") when CUDA device ``device_index`` (or the current one) is usable, else
    (None, what is missing and what to do); see :func:`probe_cupy`."""
    probe = probe_cupy(device_index)
    return probe.cupy, probe.reason


_warned: set[str] = set()


def _log_fallback(probe: CupyProbe) -> None:
    """``device="auto"`` falling back to NumPy: a WARNING (once per reason) when a GPU is there
    but the install cannot use it (a CUDA library missing, a driver too old for CuPy's CUDA),
    which would otherwise run on the CPU unnoticed; else INFO, the normal state of a machine
    without a GPU (CuPy missing, or installed without a driver as in CI), which must not warn on
    every network built."""
    message = "device='auto': using NumPy on the CPU because %s"
    if probe.gpu_present and probe.reason not in _warned:
        _warned.add(probe.reason)
        logger.warning(message, probe.reason)
    else:
        logger.info(message, probe.reason)


def _visible_devices(env: Mapping[str, str]) -> int | None:
    """How many devices ``CUDA_VISIBLE_DEVICES`` names, or None when it is not set."""
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return len([d for d in value.split(",") if d.strip()])


def default_cuda_device(count: int, current: int, env: Mapping[str, str] = os.environ) -> int:
    """The device ``"auto"``/``"gpu"``/``"cuda"`` mean: under ``torchrun`` (``LOCAL_RANK`` set)
    the local rank's device by the one rule of :func:`gpuqnn._devices.local_rank_device` (the
    rule :func:`gpuqnn.distributed.local_device` follows), so that ranks do not all compute on
    one GPU; else the current device.

    Args:
        count: CUDA devices visible to the process.
        current: the current CUDA device.
        env: the environment (``os.environ``).

    Raises:
        RuntimeError: ``LOCAL_RANK`` >= ``count`` > 1 (more ranks per node than devices).
        ValueError: ``LOCAL_RANK`` is not a non-negative integer.
    """
    index = local_rank_device(count, env)
    return current if index is None else index


def processes_per_device(count: int, gpu: bool, env: Mapping[str, str] = os.environ) -> int:
    """How many of this node's processes (``LOCAL_WORLD_SIZE`` under ``torchrun``, else 1)
    share one device: all of them share the host; on GPUs, the ranks spread over the ``count``
    visible devices (one each when ``CUDA_VISIBLE_DEVICES`` narrows every rank to one).

    Raises:
        ValueError: ``LOCAL_WORLD_SIZE`` is not a non-negative integer (read as ``LOCAL_RANK``
            is, by :func:`gpuqnn._devices.env_index`).
    """
    local = env_index("LOCAL_WORLD_SIZE", env) or 1
    if not gpu:
        return local
    if _visible_devices(env) == 1:
        return 1
    return max(1, -(-local // max(1, count)))


def select_backend(device: str = "auto", dtype: str = "complex128") -> Backend:
    """The backend for a checked ``device`` and ``dtype`` (see :mod:`gpuqnn._options`).

    Args:
        device: ``"auto"`` (CuPy on a working CUDA device, else NumPy; a log record says
            why, see :func:`_log_fallback`), ``"cpu"``,
            ``"gpu"`` or ``"cuda"`` (the current CUDA device, or under ``torchrun`` the local
            rank's, see :func:`default_cuda_device`) or ``"cuda:N"``.
        dtype: ``"complex128"`` or ``"complex64"``.

    Returns:
        The backend.

    Raises:
        RuntimeError: a GPU was asked for explicitly but CuPy or a device is missing.
    """
    complex_dtype = DTYPES[dtype]
    cpu = Backend(np, "cpu", complex_dtype, processes_per_device(1, gpu=False))
    if device == "cpu":
        return cpu
    index = _device_index(device) if device.startswith("cuda:") else None
    probe = probe_cupy(index)
    cupy = probe.cupy
    if cupy is None:
        if device == "auto":
            _log_fallback(probe)
            return cpu
        raise _no_gpu(device, probe.reason, "a CUDA GPU")
    count = int(cupy.cuda.runtime.getDeviceCount())
    if index is None:
        index = default_cuda_device(count, int(cupy.cuda.runtime.getDevice()))
    logger.info("using CuPy on cuda:%d", index)
    share = processes_per_device(count, gpu=True)
    return Backend(cupy, f"cuda:{index}", complex_dtype, share)


def _no_gpu(device: Any, reason: str, needed: str) -> RuntimeError:
    """The error for an explicit GPU request without a usable GPU: ``reason`` names what is
    missing (CuPy, a CUDA library, the driver, the device) and what to do."""
    return RuntimeError(f"device={device!r} needs {needed}, but {reason}")


def select_backends(
    device: str | tuple[str, ...] = "auto", dtype: str = "complex128"
) -> tuple[Backend, ...]:
    """The backends of a checked ``device``: one, or one per CUDA device for ``"cuda:all"``
    (every visible device) and for a tuple of ``"cuda:N"``.

    Raises:
        RuntimeError: CUDA devices were asked for but CuPy or a device is missing.
    """
    if isinstance(device, str) and device != "cuda:all":
        return (select_backend(device, dtype),)
    cupy, reason = load_cupy(None)
    if cupy is None:
        raise _no_gpu(device, reason, "CUDA GPUs")
    count = int(cupy.cuda.runtime.getDeviceCount())
    names = [f"cuda:{i}" for i in range(count)] if device == "cuda:all" else list(device)
    return tuple(select_backend(name, dtype) for name in names)

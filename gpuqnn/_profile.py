"""Where a network's time goes: :func:`profile`, a context manager that records every simulator
call made inside it (forward, backward, vector-Jacobian product).

Each :class:`CallRecord` holds the device, the runner and the gradient method of the call, and
what it cost on the host side: kernel launches (each generated or per-op CUDA kernel run, on a
GPU or on the kernels' host build), array-library calls outside the kernels (each NumPy or CuPy
call gpuqnn makes for the call: allocations, copies, the angle table's elementwise functions,
sums; on a GPU each is a CuPy call of several microseconds of host time), bytes copied between
host and device, and seconds spent compiling kernels (NVRTC, or the host compiler).

The profile in effect is held in a :class:`contextvars.ContextVar` (per thread and task, not a
module global); the simulator's worker threads run in a copy of the caller's context. Outside a
profile every counting point is one ``ContextVar.get`` that returns None.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

_CALL: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar(
    "gpuqnn_profile_call", default=None
)
_PROFILE: contextvars.ContextVar[Profile | None] = contextvars.ContextVar(
    "gpuqnn_profile", default=None
)

_T = TypeVar("_T")


@dataclass
class CallRecord:
    """What one simulator call cost.

    Attributes:
        call: ``"forward"``, ``"backward"`` or ``"vjp"``.
        device: the backend's device (``"cpu"``, ``"cuda:0"``, ...).
        runner: the runner that ran it (e.g. ``"fused CUDA kernels"``).
        method: the gradient method (``"adjoint"``, ``"parameter_shift"``), None for forward.
        batch: samples in the call.
        launches: CUDA kernel launches (generated or per-op kernels).
        host_ops: array-library calls outside the kernels.
        host_to_device_bytes: bytes copied from the host to the device.
        device_to_host_bytes: bytes copied from the device to the host.
        compile_seconds: seconds spent compiling kernels during the call.
        seconds: wall-clock seconds of the call.
    """

    call: str
    device: str
    runner: str
    method: str | None
    batch: int
    launches: int = 0
    host_ops: int = 0
    host_to_device_bytes: int = 0
    device_to_host_bytes: int = 0
    compile_seconds: float = 0.0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, amount: float) -> None:
        """Add ``amount`` to the counter ``name`` (threads of one call may add at once)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, Any]:
        """The record as a plain dict (JSON-ready)."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class Profile:
    """The calls recorded inside one :func:`profile` block, in order.

    Attributes:
        calls: one :class:`CallRecord` per simulator call.
    """

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []
        self._lock = threading.Lock()

    def _append(self, record: CallRecord) -> None:
        with self._lock:
            self.calls.append(record)

    def table(self) -> str:
        """The records as a text table, one line per call."""
        head = (
            f"{'call':<9}{'device':<8}{'runner':<26}{'method':<16}{'batch':>7}{'launches':>9}"
            f"{'host ops':>9}{'H2D bytes':>11}{'D2H bytes':>11}{'compile s':>10}{'seconds':>9}"
        )
        lines = [head]
        for r in self.calls:
            lines.append(
                f"{r.call:<9}{r.device:<8}{r.runner[:25]:<26}{r.method or '-':<16}{r.batch:>7}"
                f"{r.launches:>9}{r.host_ops:>9}{r.host_to_device_bytes:>11}"
                f"{r.device_to_host_bytes:>11}{r.compile_seconds:>10.3f}{r.seconds:>9.4f}"
            )
        return "\n".join(lines)


@contextmanager
def profile() -> Iterator[Profile]:
    """Record every simulator call made inside the block (this thread and the simulator's
    worker threads): device, runner, gradient method, kernel launches, array-library calls
    outside kernels, host<->device bytes and kernel compile seconds.

    Example::

        with gpuqnn.profile() as prof:
            qnn.backward(x, w)
        text = prof.table()  # one line per call
        prof.calls[-1].launches

    Yields:
        The :class:`Profile`, filled as calls finish.
    """
    record = Profile()
    token = _PROFILE.set(record)
    try:
        yield record
    finally:
        _PROFILE.reset(token)


@contextmanager
def recording(
    call: str, device: str, runner: str, method: str | None, batch: int
) -> Iterator[CallRecord | None]:
    """Record one call in the profile in effect (nothing outside a profile). A call made
    inside another call's record adds to that one, and fills in what the outer one left empty
    (a network opens the record, its simulator names the device, runner and method)."""
    active = _PROFILE.get()
    outer = _CALL.get()
    if active is None or outer is not None:
        if outer is not None:
            with outer._lock:
                outer.device = outer.device or device
                outer.runner = outer.runner or runner
                outer.method = outer.method or method
                outer.batch = outer.batch or batch
        yield outer
        return
    record = CallRecord(call, device, runner, method, batch)
    token = _CALL.set(record)
    start = time.perf_counter()
    try:
        yield record
    finally:
        record.seconds = time.perf_counter() - start
        _CALL.reset(token)
        active._append(record)


def count(name: str, amount: float = 1) -> None:
    """Add ``amount`` to the current call's counter ``name`` (``launches``, ``host_ops``,
    ``host_to_device_bytes``, ``device_to_host_bytes``, ``compile_seconds``); nothing outside a
    profile."""
    record = _CALL.get()
    if record is not None:
        record.add(name, amount)


def counting() -> bool:
    """Whether a call is being recorded (to skip work done only for the counters)."""
    return _CALL.get() is not None


def in_context(function: Callable[..., _T]) -> Callable[..., _T]:
    """``function`` bound to a copy of the caller's context, for a worker thread to run (so that
    its counts go to the caller's record); ``function`` itself outside a recorded call."""
    if _CALL.get() is None:
        return function
    context = contextvars.copy_context()

    def run(*args: Any) -> _T:
        return context.copy().run(function, *args)

    return run

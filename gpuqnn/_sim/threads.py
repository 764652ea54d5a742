"""The process-wide pieces of the CPU passes, made explicit: one worker pool and one BLAS limit.

NumPy's kernels release the GIL, so chunks of rows run on worker threads in parallel. Two things
are process-wide by nature, and this module is their one home:

- **The worker pool** (:func:`worker_pool`): one ``ThreadPoolExecutor`` for every simulator in
  the process, created on first use. Simulators share it (a primitive may cache 32 of them; one
  pool each would leave hundreds of idle threads). Tasks of two simulators running at once
  interleave on it; each task is independent.
- **The BLAS limit** (:func:`blas_limited`): while our workers run, BLAS (OpenBLAS, MKL) is held
  to one thread per call, because its own spinning threads would take the cores from our
  workers (measured: a 12-qubit backward went from 35 ms to 4.5 s). BLAS thread counts are
  process state, so the limit is reference-counted under a lock: the first pass that needs it
  sets it, the last one to finish restores the user's setting. Two networks in two threads do
  not undo each other's limit midway, and between calls the user's own NumPy/torch work runs
  with its own BLAS threads. The libraries are re-scanned after new imports (SciPy brings a
  second OpenBLAS beside NumPy's).

- **glibc's malloc thresholds** (:func:`malloc_held`), only where the environment sets them
  (``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_MMAP_THRESHOLD_``, as Dask's workers do): then every
  large NumPy temporary of a pass is a fresh ``mmap`` or a trimmed heap page, and a backward
  pass costs 2.4x the CPU time in page faults (measured, 8 qubits). While passes run, the
  thresholds are raised (64 MiB mmap, 1 GiB trim), reference-counted like the BLAS limit, and
  the environment's values are restored when the last pass ends, so memory is returned to the
  system as the user asked at the next ``free``. Without those variables malloc is left alone.

- **The fork gate** (:func:`pass_running`): every pass holds it while it runs, and a
  ``fork()`` waits (in a ``before`` fork handler) until no pass of another thread is running,
  and holds new ones back until it is done. OpenBLAS's own fork handler shuts its thread pool
  down; a BLAS call that another thread had in flight then waits forever for its workers (the
  parent hung, spinning in OpenBLAS, in 2 of 4 runs that forked while a thread ran passes). With
  the gate, no pass's BLAS call is in flight across a fork. A fork taken from inside a pass (in
  its own thread) does not wait for itself.

Both are reset in a ``fork()``ed child (``os.register_at_fork``): the child has none of the
parent's threads, so it gets a fresh pool, fresh locks and no count of the parent's passes.
(A fork taken by another thread while a pass holds the BLAS limit leaves the child's BLAS at
one thread: the limit is process state that the child inherits.)
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

MAX_WORKERS = 8
"""Most worker threads one process uses by default."""

POOL_THREADS = 64
"""Most threads the shared pool ever starts (it starts them only as passes ask for them)."""


def default_threads() -> int:
    """Worker threads when the user sets none: ``OMP_NUM_THREADS`` when it is set to a
    positive int (``torchrun``, Ray and Dask set it to 1 per worker), else
    :func:`available_cores`."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return min(int(value), POOL_THREADS)
    if value and value not in _warned_omp:
        _warned_omp.add(value)
        warnings.warn(
            f"ignoring OMP_NUM_THREADS={value!r}: it must be a positive integer; gpuqnn uses "
            f"the {available_cores()} cores this process may use",
            RuntimeWarning,
            stacklevel=2,
        )
    return available_cores()


_warned_omp: set[str] = set()


def available_cores() -> int:
    """The CPU cores this process may use (its affinity), at most :data:`MAX_WORKERS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


class _Shared:
    """The pool and the BLAS limit's state; one instance per process (see :func:`_reset`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pool: ThreadPoolExecutor | None = None
        self.controller: Any = None  # threadpoolctl.ThreadpoolController, built on first use
        self.modules = 0  # len(sys.modules) when the controller was built
        self.limiter: Any = None
        self.users = 0
        self.malloc: _Malloc | None | bool = False  # False: not looked up yet
        self.malloc_users = 0


_shared = _Shared()


class _ForkGate:
    """Counts running passes; a fork waits for those of other threads (see the module)."""

    def __init__(self) -> None:
        self.condition = threading.Condition(threading.Lock())
        self.running: dict[int, int] = {}  # thread id -> passes it runs now
        self.forking = 0  # forks in progress (their before-handlers ran, not their after-)
        self.forker: int | None = None

    def enter(self) -> None:
        me = threading.get_ident()
        with self.condition:
            while self.forking and self.forker != me and me not in self.running:
                self.condition.wait()
            self.running[me] = self.running.get(me, 0) + 1

    def leave(self) -> None:
        me = threading.get_ident()
        with self.condition:
            self.running[me] -= 1
            if not self.running[me]:
                del self.running[me]
            self.condition.notify_all()

    def before_fork(self) -> None:
        me = threading.get_ident()
        with self.condition:
            self.forking += 1
            self.forker = me
            while any(thread != me for thread in self.running):
                self.condition.wait()

    def after_fork_in_parent(self) -> None:
        with self.condition:
            self.forking -= 1
            if not self.forking:
                self.forker = None
            self.condition.notify_all()


_gate = _ForkGate()


@contextmanager
def pass_running() -> Iterator[None]:
    """Hold the fork gate while a pass runs: no ``fork()`` starts until the block ends."""
    gate = _gate
    gate.enter()
    try:
        yield
    finally:
        gate.leave()


class ForkSafeLock:
    """A mutex that a ``fork()``ed child gets back unlocked.

    A child has only the thread that forked; a lock another thread held at that instant would
    stay held forever in the child. The simulators' own locks (buffers, tapes) are of this kind.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        _fork_safe_locks.add(self)

    def __enter__(self) -> ForkSafeLock:
        self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


_fork_safe_locks: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()


def _reset() -> None:
    """In a forked child: forget the parent's pool, locks and count of running passes, and
    give every :class:`ForkSafeLock` a fresh lock. Nothing else is called here (a fork handler
    must not start threads or take locks)."""
    global _shared, _gate
    _shared = _Shared()
    _gate = _ForkGate()
    for lock in list(_fork_safe_locks):
        lock._lock = threading.Lock()


def _before_fork() -> None:
    _gate.before_fork()


def _after_fork_in_parent() -> None:
    _gate.after_fork_in_parent()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_reset
    )


def _controller(shared: _Shared) -> Any:
    """threadpoolctl's controller of the BLAS libraries loaded now (rebuilt after imports,
    which may load another BLAS, e.g. SciPy's beside NumPy's); call under ``shared.lock``."""
    if shared.controller is None or shared.modules != len(sys.modules):
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415 - scans libraries

        shared.controller = ThreadpoolController()
        shared.modules = len(sys.modules)
    return shared.controller


def worker_pool() -> ThreadPoolExecutor:
    """The process's worker pool (created on first use; threads start as passes need them,
    up to :data:`POOL_THREADS`)."""
    shared = _shared
    with shared.lock:
        if shared.pool is None:
            shared.pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="gpuqnn")
        return shared.pool


@contextmanager
def blas_limited() -> Iterator[None]:
    """Hold BLAS to one thread while the block runs; the user's setting is back once the last
    concurrent holder leaves."""
    shared = _shared
    with shared.lock:
        if shared.users == 0:
            shared.limiter = _controller(shared).limit(limits=1, user_api="blas")
        shared.users += 1
    try:
        yield
    finally:
        with shared.lock:
            shared.users -= 1
            if shared.users == 0 and shared.limiter is not None:
                shared.limiter.restore_original_limits()
                shared.limiter = None


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024
_PASS_MMAP_THRESHOLD = 64 << 20
_PASS_TRIM_THRESHOLD = 1 << 30


class _Malloc:
    """glibc's ``mallopt`` and the thresholds the environment asked for."""

    def __init__(self, mallopt: Any, trim: int, mmap: int) -> None:
        self.mallopt = mallopt
        self.trim = trim
        self.mmap = mmap

    @classmethod
    def from_environment(cls) -> _Malloc | None:
        """The thresholds to restore, or None where the environment sets none (or the C
        library is not glibc)."""
        values = {}
        for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
            value = os.environ.get(name, "").strip()
            if value.isdigit():
                values[name] = int(value)
        if not values or not sys.platform.startswith("linux"):
            return None
        try:
            import ctypes  # noqa: PLC0415 - only where the variables are set
            import ctypes.util  # noqa: PLC0415

            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            return None
        return cls(
            mallopt,
            values.get("MALLOC_TRIM_THRESHOLD_", _GLIBC_DEFAULT_THRESHOLD),
            values.get("MALLOC_MMAP_THRESHOLD_", _GLIBC_DEFAULT_THRESHOLD),
        )


@contextmanager
def malloc_held() -> Iterator[None]:
    """Keep a pass's temporaries in the heap where the environment set malloc thresholds (see
    the module's notes); the environment's values are back once the last concurrent pass
    leaves. Does nothing where they are not set."""
    shared = _shared
    with shared.lock:
        if shared.malloc is False:
            shared.malloc = _Malloc.from_environment()
        malloc = shared.malloc if isinstance(shared.malloc, _Malloc) else None
        if malloc is None:
            held = False
        else:
            if shared.malloc_users == 0:
                malloc.mallopt(_M_MMAP_THRESHOLD, _PASS_MMAP_THRESHOLD)
                malloc.mallopt(_M_TRIM_THRESHOLD, _PASS_TRIM_THRESHOLD)
            shared.malloc_users += 1
            held = True
    try:
        yield
    finally:
        if held and malloc is not None:
            with shared.lock:
                shared.malloc_users -= 1
                if shared.malloc_users == 0:
                    malloc.mallopt(_M_TRIM_THRESHOLD, malloc.trim)
                    malloc.mallopt(_M_MMAP_THRESHOLD, malloc.mmap)


@contextmanager
def pass_limits() -> Iterator[None]:
    """What a pass worth it holds while it runs: the BLAS limit and the malloc thresholds."""
    with blas_limited(), malloc_held():
        yield

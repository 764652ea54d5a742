"""The chunk executor: how many rows a pass takes at once, on how many worker threads, with
which buffers.

A pass over B samples is split into chunks whose bytes fit the memory budget (``max_memory``,
or half of the free memory; the executor owns it) with every worker holding one chunk; chunks
run on the shared worker pool (:mod:`.threads`) under the BLAS limit, each worker thread with
its own reusable :class:`~.buffers.Buffers`. Nothing here knows what a row is: the strategies
say how many bytes one costs.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from typing import NamedTuple

from .._profile import in_context
from .backend import Backend
from .buffers import Buffers
from .threads import ForkSafeLock, default_threads, pass_limits, pass_running, worker_pool

MARGIN = 0.8
"""Share of the memory budget the chunks are sized for, leaving room for what the byte models
do not count."""

RETAIN_BYTES = 64 << 20
"""A thread's buffers are kept between calls up to this size, released above it."""

WORKER_STATE_BYTES = 512 << 10
"""Bytes of statevectors each worker should get at least: below it, Python between NumPy's
calls takes the time (measured: two workers slow a 6-qubit pass at batch 256 down by 20-70% and
speed an 8-qubit one up by 20%)."""


class Sizing(NamedTuple):
    """Rows (or samples) per chunk, the worker threads that run chunks at once, and whether
    the pass is big enough for :func:`.threads.pass_limits` (every pass that parallelises,
    and every pass with at least :data:`WORKER_STATE_BYTES` of states: BLAS's own threads
    would compete with ours, or oversubscribe a process pinned to fewer cores; malloc's
    thresholds set by the environment would page-fault its temporaries)."""

    chunk: int
    workers: int
    limit_blas: bool = False


class ChunkExecutor:
    """Sizes and runs the chunks of a pass within the memory budget it owns.

    Args:
        backend: where the states live (its preferred chunk bytes and worker count).
        num_qubits: simulated qubits (for the messages of errors and the thread rule).
        workers: most worker threads on the CPU (default: :func:`.threads.default_threads`);
            one on a GPU, which one stream feeds.
        max_memory: the bound in bytes on every pass's peak memory, or None (half of the free
            memory at call time, shared with the node's other processes on the device).
    """

    def __init__(
        self,
        backend: Backend,
        num_qubits: int,
        workers: int | None = None,
        max_memory: int | None = None,
    ) -> None:
        self.backend = backend
        self.num_qubits = num_qubits
        self.max_memory = max_memory
        self.state_bytes = int(2**num_qubits * backend.dtype.itemsize)
        if backend.is_gpu:
            self.workers = 1
        else:
            self.workers = default_threads() if workers is None else workers
        self._local = threading.local()
        self._all_buffers: weakref.WeakSet[Buffers] = weakref.WeakSet()  # die with threads
        self._lock = ForkSafeLock()

    def buffers(self) -> Buffers:
        """This thread's reusable buffers (a thread never shares them with another)."""
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = Buffers(self.backend.xp)
            with self._lock:
                self._all_buffers.add(buffers)
        return buffers

    def release(self) -> None:
        """After a call: with an explicit ``max_memory`` drop every buffer (the bound covers
        whatever the process holds during the next call); else drop those grown past
        :data:`RETAIN_BYTES` (after a big batch, e.g. on a GPU)."""
        with self._lock:
            for buffers in self._all_buffers:
                if self.max_memory is not None or buffers.nbytes > RETAIN_BYTES:
                    buffers.clear()

    def budget(self) -> int:
        """Bytes the chunks are sized for: :data:`MARGIN` of ``max_memory``, or of half the
        free memory divided among the node's processes that share the device
        (:attr:`~.backend.Backend.share`)."""
        if self.max_memory is not None:
            limit = self.max_memory
        else:
            limit = self.backend.free_memory() // (2 * max(1, self.backend.share))
        return int(limit * MARGIN)

    def sizing(self, per_row: int, what: str, total: int, states: int = 1) -> Sizing:
        """Rows of ``per_row`` bytes per chunk, and the workers that hold one each: what fits
        the budget with every worker holding a chunk, capped by the backend's preferred chunk,
        and small enough that ``total`` rows give every worker some.

        Args:
            per_row: bytes one row (a state, or a sample with all its states) needs.
            what: what a row is, for the error message.
            total: rows in the pass.
            states: statevectors one row sweeps (a sample's shifted copies, or its adjoint
                states), which decides how many workers pay.

        Raises:
            ValueError: not even one row fits the budget.
        """
        limit = self.budget()
        rows = limit // per_row
        if rows < 1:
            budget = (
                f"max_memory={self.max_memory} bytes"
                if self.max_memory is not None
                else (
                    f"half of the free memory ({limit / MARGIN:.0f} bytes; set max_memory to "
                    "choose)"
                )
            )
            raise ValueError(
                f"{budget} is too small: {what} of {self.num_qubits} qubits needs "
                f"about {per_row} bytes, and chunks are sized for {MARGIN:.0%} of the bound"
            )
        workers = self._workers_for(total * states, rows)
        rows = max(1, rows // workers)
        preferred = self.backend.work_chunk_bytes
        if preferred is not None:
            rows = min(rows, max(1, preferred // per_row))
        big = workers > 1 or total * states * self.state_bytes >= WORKER_STATE_BYTES
        chunk = int(min(rows, max(1, -(-total // workers))))
        return Sizing(chunk, workers, big and not self.backend.is_gpu)

    def _workers_for(self, states: int, fit: int) -> int:
        """Workers worth using for a pass that sweeps ``states`` statevectors when ``fit``
        rows fit the budget: each gets at least :data:`WORKER_STATE_BYTES` of states and a row
        of its own within the budget."""
        return max(1, min(self.workers, states * self.state_bytes // WORKER_STATE_BYTES, fit))

    def run(
        self,
        task: Callable[[int, int], None],
        total: int,
        sizing: Sizing,
    ) -> None:
        """Run ``task(start, stop)`` over ``range(0, total, sizing.chunk)``, chunks on
        ``sizing.workers`` threads of the shared pool (every ``workers``-th chunk in one
        thread, so each thread reuses its buffers); release buffers after."""
        chunk, workers, limit_blas = sizing
        starts = range(0, total, chunk)  # a range, not a list: nothing grows with the batch
        try:
            with pass_running(), pass_limits() if limit_blas else nullcontext():
                if len(starts) <= 1 or workers == 1:
                    for start in starts:
                        task(start, min(start + chunk, total))
                    return

                def share(first: int) -> None:
                    for start in starts[first::workers]:
                        task(start, min(start + chunk, total))

                pool = worker_pool()
                shared = in_context(share)  # a profile's counts follow the chunks to the pool
                futures = [pool.submit(shared, first) for first in range(min(workers, len(starts)))]
                for future in futures:
                    future.result()
        finally:
            self.release()

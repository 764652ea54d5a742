"""A forward pass kept for the reverse sweep of training.

A training step is a forward pass, then a vector-Jacobian product. Without a tape the product
sweeps forward again; with one (:meth:`~.simulator.Simulator.forward_taped`) the forward pass of
the adjoint method keeps each block's output and per-sample data, and the product is one
reverse sweep. The tape holds the whole batch's checkpoints until it is used, so it is kept only
when they fit the memory budget. Its buffers go back to the simulator's pool when the reverse
sweep has run, so the next step's forward pass reuses them instead of paying fresh page faults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .buffers import Buffers
from .executor import RETAIN_BYTES, Sizing
from .protocols import Sweep, TapeRunner
from .threads import ForkSafeLock


class BufferPool:
    """Buffers lent to tapes and returned after their reverse sweep.

    Args:
        xp: the array module of the buffers.
    """

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self._free: list[Buffers] = []
        self._lock = ForkSafeLock()

    def take(self) -> Buffers:
        """Buffers for one chunk of a tape (reused ones when any are free)."""
        with self._lock:
            if self._free:
                return self._free.pop()
        return Buffers(self.xp)

    def give(self, buffers: Sequence[Buffers], keep: bool) -> None:
        """Return a tape's buffers: kept for the next tape up to :data:`RETAIN_BYTES` each,
        as the executor keeps its own, or all released (``keep=False``, when an explicit
        ``max_memory`` bounds what stays allocated between calls)."""
        kept = []
        for item in buffers:
            if keep and item.nbytes <= RETAIN_BYTES:
                kept.append(item)
            else:
                item.clear()
        with self._lock:
            self._free.extend(kept)


class Tape:
    """The forward sweeps of one pass, per chunk, for one reverse sweep by ``columns``.

    Args:
        runner: the runner that swept forward and will sweep back.
        columns: the parameter columns the pass will be differentiated by.
        slots: the slots those columns reach.
        batch: B, the samples of the pass.
        sizing: the chunks the forward pass ran in (the reverse sweep runs in the same).
    """

    def __init__(
        self,
        runner: TapeRunner,
        columns: Sequence[int],
        slots: Sequence[int],
        batch: int,
        sizing: Sizing,
    ) -> None:
        self.runner = runner
        self.ticket: TapeTicket | None = None
        self.columns = tuple(columns)
        self.slots = list(slots)
        self.batch = batch
        self.sizing = sizing
        self.sweeps: dict[int, Sweep] = {}
        self._lock = ForkSafeLock()

    def add(self, start: int, sweep: Sweep) -> None:
        """Keep the sweep of the chunk that starts at sample ``start``."""
        with self._lock:
            self.sweeps[start] = sweep

    def serves(self, columns: Sequence[int], batch: int) -> bool:
        """Whether this tape, not yet used, records a pass of ``batch`` samples for
        ``columns``."""
        return bool(self.sweeps) and self.columns == tuple(columns) and self.batch == batch

    def take(self) -> list[Buffers]:
        """Mark the tape used and hand back its buffers (and its bytes to the budget)."""
        with self._lock:
            buffers = [sweep.work for sweep in self.sweeps.values()]
            self.sweeps = {}
        if self.ticket is not None:
            self.ticket.release()
        return buffers


class TapeLedger:
    """The bytes that a simulator's live tapes hold, so that together they stay within the
    memory budget (gradient accumulation keeps several forward passes before one backward)."""

    def __init__(self) -> None:
        self.held = 0
        self._lock = ForkSafeLock()

    def reserve(self, nbytes: int, budget: int) -> TapeTicket | None:
        """A ticket for ``nbytes`` more, or None when they would exceed ``budget``."""
        with self._lock:
            if self.held + nbytes > budget:
                return None
            self.held += nbytes
        return TapeTicket(self, nbytes)

    def _free(self, nbytes: int) -> None:
        with self._lock:
            self.held -= nbytes


class TapeTicket:
    """Bytes reserved for one tape, given back once: when the tape is used, or when it is
    dropped unused (a finalizer)."""

    def __init__(self, ledger: TapeLedger, nbytes: int) -> None:
        self._ledger: TapeLedger | None = ledger
        self.nbytes = nbytes

    def release(self) -> None:
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            ledger._free(self.nbytes)

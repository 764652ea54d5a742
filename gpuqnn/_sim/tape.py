"""A forward pass kept for the reverse sweep of training.

A training step is a forward pass, then a vector-Jacobian product. Without a tape the product
sweeps forward again; with one (:meth:`~.simulator.Simulator.forward_taped`) the forward pass of
the adjoint method keeps each block's output and per-sample data, and the product is one
reverse sweep. The tape holds the whole batch's checkpoints until it is used, so it is kept only
when they fit the memory budget. Its buffers go back to the simulator's pool when the reverse
sweep has run, so the next step's forward pass reuses them instead of paying fresh page faults.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from .adjoint import Sweep
from .buffers import Buffers
from .executor import Sizing


class BufferPool:
    """Buffers lent to tapes and returned after their reverse sweep.

    Args:
        xp: the array module of the buffers.
    """

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self._free: list[Buffers] = []
        self._lock = threading.Lock()

    def take(self) -> Buffers:
        """Buffers for one chunk of a tape (reused ones when any are free)."""
        with self._lock:
            if self._free:
                return self._free.pop()
        return Buffers(self.xp)

    def give(self, buffers: Sequence[Buffers], keep: bool) -> None:
        """Return a tape's buffers: kept for the next tape, or released (``keep=False``, when
        an explicit ``max_memory`` bounds what stays allocated between calls)."""
        if not keep:
            for item in buffers:
                item.clear()
            return
        with self._lock:
            self._free.extend(buffers)


class Tape:
    """The forward sweeps of one pass, per chunk, for one reverse sweep by ``columns``.

    Args:
        columns: the parameter columns the pass will be differentiated by.
        slots: the slots those columns reach.
        batch: B, the samples of the pass.
        sizing: the chunks the forward pass ran in (the reverse sweep runs in the same).
    """

    def __init__(self, columns: Sequence[int], slots: Sequence[int], batch: int, sizing: Sizing):
        self.columns = tuple(columns)
        self.slots = list(slots)
        self.batch = batch
        self.sizing = sizing
        self.sweeps: dict[int, Sweep] = {}
        self._lock = threading.Lock()

    def add(self, start: int, sweep: Sweep) -> None:
        """Keep the sweep of the chunk that starts at sample ``start``."""
        with self._lock:
            self.sweeps[start] = sweep

    def serves(self, columns: Sequence[int], batch: int) -> bool:
        """Whether this tape, not yet used, records a pass of ``batch`` samples for
        ``columns``."""
        return bool(self.sweeps) and self.columns == tuple(columns) and self.batch == batch

    def take(self) -> list[Buffers]:
        """Mark the tape used and hand back its buffers."""
        with self._lock:
            buffers = [sweep.work for sweep in self.sweeps.values()]
            self.sweeps = {}
        return buffers

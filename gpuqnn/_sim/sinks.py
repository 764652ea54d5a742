"""Where a gradient strategy adds each chunk's derivatives: a dense (B, O, J) array for
``backward``, or a vector-Jacobian product that keeps per sample only the columns that are per
sample (the inputs') and sums the others (the weights', which every sample shares) chunk by
chunk, so that no (B, J) array grows with the batch beside the result.

Shapes: B samples, O outputs, J differentiated columns, nb a chunk's samples.
"""

from __future__ import annotations

from typing import Any, Protocol

from .. import _profile
from .threads import ForkSafeLock


class Sink(Protocol):
    """What a :class:`~.protocols.GradientStrategy` adds its chunks' derivatives into."""

    def add(self, start: int, stop: int, values: Any) -> None:
        """Add the (nb, O, J) derivatives of samples ``start:stop``."""


class DenseSink:
    """Every sample's derivatives, in one (B, O, J) array.

    Args:
        array: the (B, O, J) float64 backend array added into.
    """

    def __init__(self, array: Any) -> None:
        self.array = array

    def add(self, start: int, stop: int, values: Any) -> None:
        _profile.count("host_ops", 3)  # the slice, the add, the store
        self.array[start:stop] += values


class ProductSink:
    """A (B, 1, J) vector-Jacobian product whose first ``kept`` columns stay per sample and
    whose other columns are summed over the samples.

    Chunks may arrive from several threads in any order; their sums are folded in order of
    their rows (a chunk that arrives early waits for those before it), so that the total does
    not depend on the threads' timing. A pass that runs the batch again (parameter shift's
    groups of slots) starts over at row 0.

    Args:
        xp: the backend's array module.
        batch: B.
        columns: J.
        kept: the leading columns kept per sample.
    """

    def __init__(self, xp: Any, batch: int, columns: int, kept: int) -> None:
        self.kept = kept
        _profile.count("host_ops", 2)
        self.per_sample = xp.zeros((batch, kept), dtype="float64")
        self.total = xp.zeros(columns - kept, dtype="float64")
        self._batch = batch
        self._next = 0
        self._waiting: dict[int, tuple[int, Any]] = {}
        self._lock = ForkSafeLock()

    def add(self, start: int, stop: int, values: Any) -> None:
        # slices of values and per_sample, the add, the store; a slice and its sum; the total
        _profile.count("host_ops", 7)
        self.per_sample[start:stop] += values[:, 0, : self.kept]
        part = values[:, 0, self.kept :].sum(axis=0)
        with self._lock:
            self._waiting[start] = (stop, part)
            while self._next in self._waiting:
                self._next, part = self._waiting.pop(self._next)
                self.total += part
                if self._next >= self._batch:
                    self._next = 0

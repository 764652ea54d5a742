"""One network on several devices: each pass's samples split into contiguous shards, one
simulator per device, the shards run at once (one thread per device, which feeds the device's
stream), the results gathered in order on the first ("home") device.

Samples never communicate, so a sharded pass gives the same values as one device's (each
shard is a chunk like any other). ``max_memory`` bounds each device's pass. Shards of a CuPy
pass are copied to their devices from the home device and their results copied back through
the host (peer-to-peer copies are not used). Shots are not sampled across devices: a network
with shots runs on one device.

Shapes: B samples, P parameters, O outputs, J differentiated columns.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import Backend
from .parameters import SampleRows
from .simulator import Simulator
from .tape import Tape


class ShardedTape:
    """The tapes of a sharded forward pass, one per shard (None where a shard kept none)."""

    def __init__(self, bounds: Sequence[int], tapes: Sequence[Tape | None]) -> None:
        self.bounds = tuple(bounds)
        self.tapes = list(tapes)


def shard_bounds(total: int, shards: int) -> list[int]:
    """Contiguous, nearly equal shard boundaries: ``[0, ..., total]`` with ``shards + 1``
    entries."""
    return [int(b) for b in np.linspace(0, total, shards + 1).round()]


class ShardedSimulator:
    """The :class:`~.simulator.Simulator` interface over one simulator per device.

    Args:
        simulators: one per device, built alike; the first one's backend is home.
    """

    def __init__(self, simulators: Sequence[Simulator]) -> None:
        if len(simulators) < 2:
            raise ValueError(f"sharding needs at least 2 simulators, got {len(simulators)}")
        self.simulators = list(simulators)
        first = self.simulators[0]
        self.backend: Backend = first.backend
        self.program = first.program
        self.readout = first.readout
        self.options = first.options
        self.num_outputs = first.num_outputs
        self.circuit = first.circuit
        self.runner = first.runner
        self.executor = first.executor
        self.row_bytes = first.row_bytes

    @property
    def max_memory(self) -> int | None:
        """The memory bound of each device's pass."""
        return self.options.max_memory

    def differentiated_slots(self, columns: Sequence[int]) -> list[int]:
        return self.simulators[0].differentiated_slots(columns)

    def method(self, columns: Sequence[int], shots: bool = False, vjp: bool = False) -> str:
        return self.simulators[0].method(columns, shots, vjp)

    def precompile(self, columns: Sequence[int] | None, vjps: bool, shots: bool = False) -> int:
        """:meth:`~.simulator.Simulator.precompile` on every device; the kernels built."""
        return sum(sim.precompile(columns, vjps, shots) for sim in self.simulators)

    # ---- passes -------------------------------------------------------------------------------
    def _gather(self, shape_tail: tuple[int, ...], batch: int, run: Any) -> Any:
        """Run ``run(simulator, start, stop, shard)`` on every non-empty shard at once (one
        thread per device, with that device current) and gather the (shard rows, *shape_tail)
        results on the home backend, in order."""
        bounds = shard_bounds(batch, len(self.simulators))
        jobs = [
            (sim, bounds[i], bounds[i + 1], i)
            for i, sim in enumerate(self.simulators)
            if bounds[i + 1] > bounds[i]
        ]
        if not jobs:  # an empty batch: no shard to run
            return self.backend.xp.empty((0, *shape_tail), dtype="float64")
        results: list[Any] = [None] * len(jobs)
        errors: list[BaseException] = []

        def shard(k: int) -> None:
            sim, start, stop, i = jobs[k]
            try:
                with sim.backend.activate():
                    results[k] = self._home(sim, run(sim, start, stop, i))
                if k:  # a worker's streams are not the caller's: finish the copy here
                    self.backend.synchronize()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                errors.append(exc)

        threads = [threading.Thread(target=shard, args=(k,)) for k in range(1, len(jobs))]
        for thread in threads:
            thread.start()
        shard(0)  # the calling thread takes the first shard
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        out = self.backend.xp.empty((batch, *shape_tail), dtype="float64")
        for (_sim, start, stop, _i), values in zip(jobs, results, strict=True):
            out[start:stop] = values
        return out

    def _rows(self, simulator: Simulator, params: Any, start: int, stop: int) -> Any:
        """Rows ``start:stop`` of (B, P) ``params`` (an array or SampleRows) for a shard:
        host arrays as they are (the shard's simulator copies them to its device); arrays of
        the home device copied to the shard's, through the host."""
        moves = (
            simulator.backend.is_gpu
            and simulator.backend is not self.backend
            and (
                params.xp is not np
                if isinstance(params, SampleRows)
                else self.backend.is_array(params)
            )
        )

        def place(array: Any) -> Any:
            return simulator.backend.asarray(self.backend.to_host(array)) if moves else array

        if isinstance(params, SampleRows):
            xp = simulator.backend.xp if moves else params.xp
            return SampleRows(place(params.inputs[start:stop]), place(params.weights), xp)
        return place(params[start:stop])

    def _home(self, simulator: Simulator, values: Any) -> Any:
        """A shard's result as an array of the home backend. Called in the shard's thread with
        its device current: the copy to the host runs on the stream the shard's work ran on
        (CuPy's current stream is per thread, and per-thread default streams are not ordered
        with each other), and :meth:`~.backend.Backend.synchronize` then finishes the copy to
        the home device before the calling thread reads it."""
        if simulator.backend is self.backend:
            return values
        if not simulator.backend.is_gpu:
            return self.backend.asarray(values)
        return self.backend.asarray(simulator.backend.to_host(values))

    def forward(self, params: Any) -> Any:
        """(B, O) float64 outputs on the home backend of (B, P) float64 ``params``."""
        return self._gather(
            (self.num_outputs,),
            params.shape[0],
            lambda sim, a, b, _i: sim.forward(self._rows(sim, params, a, b)),
        )

    def backward(self, params: Any, columns: Sequence[int], sample: Any = None) -> Any:
        """(B, O, J) float64 derivatives on the home backend.

        Raises:
            ValueError: ``sample`` is given (shots are sampled on one device).
        """
        if sample is not None:
            raise ValueError("shots are sampled on one device: build the network with one")
        return self._gather(
            (self.num_outputs, len(columns)),
            params.shape[0],
            lambda sim, a, b, _i: sim.backward(self._rows(sim, params, a, b), columns),
        )

    def forward_taped(self, params: Any, columns: Sequence[int]) -> tuple[Any, ShardedTape]:
        """(B, O) outputs, keeping each shard's forward sweep for :meth:`vjp`."""
        batch = params.shape[0]
        tapes: list[Tape | None] = [None] * len(self.simulators)

        def run(sim: Simulator, a: int, b: int, i: int) -> Any:
            out, tapes[i] = sim.forward_taped(self._rows(sim, params, a, b), columns)
            return out

        out = self._gather((self.num_outputs,), batch, run)
        return out, ShardedTape(shard_bounds(batch, len(self.simulators)), tapes)

    def vjp(
        self,
        params: Any,
        columns: Sequence[int],
        cotangent: Any,
        tape: Any = None,
        sample: Any = None,
        summed: int = 0,
    ) -> tuple[Any, Any]:
        """Vector-Jacobian products on the home backend, as
        :meth:`~.simulator.Simulator.vjp`: (B, J - summed) per sample and the (summed,) sums
        over the samples (each shard's sum, added in shard order).

        Raises:
            ValueError: ``sample`` is given (shots are sampled on one device).
        """
        if sample is not None:
            raise ValueError("shots are sampled on one device: build the network with one")
        batch = params.shape[0]
        bounds = shard_bounds(batch, len(self.simulators))
        tapes = (
            tape.tapes
            if isinstance(tape, ShardedTape) and tape.bounds == tuple(bounds)
            else [None] * len(self.simulators)
        )
        cotangent = self.backend.to_host(cotangent) if self.backend.is_gpu else cotangent
        totals: list[Any] = [None] * len(self.simulators)

        def run(sim: Simulator, a: int, b: int, i: int) -> Any:
            rows = self._rows(sim, params, a, b)
            per_sample, totals[i] = sim.vjp(rows, columns, cotangent[a:b], tapes[i], None, summed)
            totals[i] = self._home(sim, totals[i])
            return per_sample

        per_sample = self._gather((len(columns) - summed,), batch, run)
        total = self.backend.xp.zeros(summed, dtype="float64")
        for part in totals:
            if part is not None:
                total += part
        return per_sample, total

"""The memory-bandwidth bound of a parameter-shift pass on the CPU engine (README, "Memory-bandwidth
bound of parameter shift"): every block reads and writes every row it is applied to at least
once, counted from the recorded ``BlockCircuit.evolve`` calls of one backward pass, over the
``np.copyto`` bandwidth at the engine's state size with as many threads as it ran chunks on."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.internals import simulator_of


@dataclass(frozen=True)
class EvolveCall:
    """One recorded ``evolve`` call: its samples (base rows) and, per block index, the shifted
    row blocks that branch after it."""

    samples: int
    branches: dict[int, int]


@contextlib.contextmanager
def recorded_evolve(network: Any) -> Iterator[list[EvolveCall]]:
    """Record every ``evolve`` call of a gpuqnn network's engine inside the block (yields the
    list they are appended to)."""
    engine = simulator_of(network).circuit
    calls: list[EvolveCall] = []
    original = engine.evolve

    def recording(angles: Any, branches: Any = None, buffers: Any = None) -> Any:
        planned = branches or {}  # block -> gpuqnn._sim.blocks.Shifts
        calls.append(
            EvolveCall(int(angles.shape[0]), {j: len(v.entries) for j, v in planned.items()})
        )
        return original(angles, branches, buffers)

    engine.evolve = recording  # an instance attribute: shadows the method until deleted
    try:
        yield calls
    finally:
        del engine.evolve


@dataclass(frozen=True)
class Traffic:
    """The engine's minimum traffic over recorded calls: bytes read and written, rows times
    blocks applied, the largest state tensor's bytes and the number of calls (chunks)."""

    bytes: int
    row_blocks: int
    state_bytes: int
    calls: int


def traffic(num_blocks: int, dim: int, itemsize: int, calls: list[EvolveCall]) -> Traffic:
    """The minimum traffic of ``calls`` on an engine of ``num_blocks`` blocks, ``dim``
    amplitudes per row and ``itemsize`` bytes per amplitude."""
    row_blocks, largest = 0, 0
    for call in calls:
        active = call.samples
        for j in range(num_blocks):
            row_blocks += active
            active += call.samples * call.branches.get(j, 0)
        largest = max(largest, active)
    row_bytes = dim * itemsize
    return Traffic(2 * row_blocks * row_bytes, row_blocks, largest * row_bytes, len(calls))


def engine_traffic(network: Any, calls: list[EvolveCall]) -> Traffic:
    """:func:`traffic` of a gpuqnn network's engine for its recorded ``calls``."""
    simulator = simulator_of(network)
    return traffic(
        len(simulator.circuit.blocks),
        simulator.circuit.dim,
        np.dtype(simulator.backend.dtype).itemsize,
        calls,
    )


def copy_bandwidth(
    nbytes: int, threads: int = 1, min_seconds: float = 0.1, trials: int = 3
) -> float:
    """Bytes per second (read plus written) that ``np.copyto`` moves between two buffers of
    ``nbytes``, with ``threads`` threads copying their own buffers at once; best of
    ``trials``."""
    size = max(1, nbytes // 8)
    buffers = [(np.ones(size), np.empty(size)) for _ in range(threads)]
    for src, dst in buffers:
        np.copyto(dst, src)  # first touch
    repeats = max(1, int(min_seconds * 10e9 / max(1, 2 * nbytes * threads)))

    def work(pair: tuple[np.ndarray, np.ndarray]) -> None:
        src, dst = pair
        for _ in range(repeats):
            np.copyto(dst, src)

    best = 0.0
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(trials):
            start = time.perf_counter()
            list(pool.map(work, buffers))
            elapsed = time.perf_counter() - start
            best = max(best, threads * repeats * 2 * size * 8 / elapsed)
    return best


@dataclass(frozen=True)
class Bound:
    """A memory-bandwidth bound: the traffic over the copy bandwidth (bytes per second)
    measured with ``threads`` threads."""

    traffic: Traffic
    threads: int
    bandwidth: float

    @property
    def seconds(self) -> float:
        """The bound: bytes over bandwidth."""
        return self.traffic.bytes / self.bandwidth


def shift_bound(
    network: Any, inputs: np.ndarray, weights: np.ndarray, input_gradients: bool
) -> Bound:
    """The bound of one backward pass of ``network`` (a gpuqnn network on the CPU; its
    gradient method should be ``parameter_shift``): runs the pass once to record its rows,
    then measures the copy bandwidth at the engine's state size."""
    network.input_gradients = input_gradients
    with recorded_evolve(network) as calls:
        network.backward(inputs, weights)
    if not calls:
        raise ValueError(
            "shift_bound models the block engine's passes; this network's passes ran on "
            f"{simulator_of(network).runner.description} (build it with engine='numpy')"
        )
    counted = engine_traffic(network, calls)
    threads = max(1, min(simulator_of(network).executor.workers, counted.calls))
    return Bound(counted, threads, copy_bandwidth(counted.state_bytes, threads))

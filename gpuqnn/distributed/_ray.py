"""The Ray half of :mod:`gpuqnn.distributed`: :func:`predict`, batch inference on a pool of Ray
actors, in input order and in bounded memory.

Imports no Ray at module level: :func:`predict` imports it when it runs.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("gpuqnn.distributed")

_RAY_EXTRA = 'pip install "gpuqnn[ray]"'


@dataclass
class _Source:
    """Rows of x, read block by block.

    Attributes:
        num_rows: N, the number of samples.
        num_columns: the number of features per sample.
        blocks: ``blocks(batch_size)`` yields ``(start, block)`` with block (b, num_columns)
            float64, in order.
    """

    num_rows: int
    num_columns: int
    array: Any = None
    parquet: Any = None
    columns: Sequence[str] | None = None

    def blocks(self, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
        if self.array is not None:
            for start in range(0, self.num_rows, batch_size):
                block = self.array[start : start + batch_size]
                yield start, np.ascontiguousarray(block, dtype=np.float64)
            return
        start = 0
        for batch in self.parquet.iter_batches(batch_size=batch_size, columns=self.columns):
            block = np.empty((batch.num_rows, self.num_columns), dtype=np.float64)
            for j, column in enumerate(batch.columns):
                block[:, j] = column.to_numpy(zero_copy_only=False)
            yield start, block
            start += batch.num_rows


def _open_source(x: Any, columns: Sequence[str] | None) -> _Source:
    """x as a block reader: an array (N, I), a ``.npy`` path (memory-mapped) or a ``.parquet``
    path (one numeric column per input)."""
    if isinstance(x, (str, os.PathLike)):
        path = Path(x)
        if not path.is_file():
            raise FileNotFoundError(f"x: no file {str(path)!r}")
        if path.suffix == ".npy":
            x = np.load(path, mmap_mode="r")
        elif path.suffix in (".parquet", ".pq"):
            try:
                import pyarrow as pa  # noqa: PLC0415 - optional, comes with ray[data]
                import pyarrow.parquet as pq  # noqa: PLC0415
            except ImportError as exc:
                raise ImportError(
                    f"reading Parquet needs pyarrow: {_RAY_EXTRA} installs it"
                ) from exc
            parquet = pq.ParquetFile(path)
            schema = parquet.schema_arrow
            names = list(schema.names) if columns is None else list(columns)
            for name in names:
                if name not in schema.names:
                    raise ValueError(f"x: {str(path)!r} has no column {name!r}")
                kind = schema.field(name).type
                if not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
                    raise ValueError(f"x: column {name!r} of {str(path)!r} is {kind}, not numeric")
            return _Source(parquet.metadata.num_rows, len(names), parquet=parquet, columns=names)
        else:
            raise ValueError(f"x: a path must name a .npy or .parquet file, got {str(path)!r}")
    elif columns is not None:
        raise ValueError("columns selects Parquet columns; x is not a Parquet path")
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = np.asarray(x)
    if len(x.shape) != 2:
        raise ValueError(f"x must have shape (N, num_inputs), got shape {tuple(x.shape)}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"x must hold real numbers, got dtype {x.dtype}")
    return _Source(int(x.shape[0]), int(x.shape[1]), array=x)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class _PredictWorker:
    """One Ray actor of :func:`predict`: holds the network, built once, and evaluates blocks.

    The network arrives in :meth:`setup` after the actor has been pinned to its cores, so that
    gpuqnn's worker threads start on those cores only.
    """

    def __init__(self) -> None:
        self.network: Any = None
        self.weights: np.ndarray | None = None

    def placement(self) -> tuple[str, list[int]]:
        """This actor's Ray node id and the cores it may use."""
        import ray  # noqa: PLC0415 - runs inside a Ray actor

        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        return ray.get_runtime_context().get_node_id(), cores

    def setup(self, boxed: list[Any], cores: list[int]) -> str:
        """Pin to ``cores`` (empty: leave as is), then load the network and weights from the
        object store (``boxed``: their two object refs, boxed so Ray does not resolve them
        before the pinning). Returns the network's device."""
        import ray  # noqa: PLC0415 - runs inside a Ray actor

        if cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(cores))
        self.network, self.weights = ray.get(boxed)
        return str(getattr(self.network, "device", "cpu"))

    def forward(self, start: int, block: np.ndarray) -> tuple[int, np.ndarray, float]:
        """(start, outputs (b, *output_shape) float64, CPU seconds this call took)."""
        cpu = time.process_time()
        values = self.network.forward(block, self.weights)
        if hasattr(values, "todense"):  # a sparse network's output
            values = values.todense()
        if hasattr(values, "get"):  # a CuPy array from a network on a GPU
            values = values.get()
        return start, np.asarray(values, dtype=np.float64), time.process_time() - cpu


def _progress(total: int, enabled: bool) -> Any:
    """A progress bar over ``total`` rows on stderr: tqdm where installed, else gpuqnn's own
    one-line bar; a no-op when disabled."""
    if not enabled:
        return _NoProgress()
    try:
        from tqdm.auto import tqdm  # noqa: PLC0415 - optional

        return tqdm(total=total, desc="gpuqnn predict", unit="row", file=sys.stderr)
    except ImportError:
        from .._progress import ProgressBar  # noqa: PLC0415

        return ProgressBar(total, "gpuqnn predict", sys.stderr)


class _NoProgress:
    def update(self, steps: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class _ActorPool:
    """Ray actors holding one network each (pickled once, built once per actor).

    Used by :func:`predict`; ``benchmarks/bench_scale.py`` keeps one across timing rounds.

    Args:
        network: the network (pickled once into Ray's object store).
        weights: (W,) float64 weights.
        num_actors: actors to start.
        num_gpus_per_actor: GPUs Ray reserves for each actor (Ray narrows the actor's
            ``CUDA_VISIBLE_DEVICES`` to them).
        cpus_per_actor: CPU cores Ray reserves for each actor; each actor is pinned to that
            many cores of its node, disjoint from the other actors of :func:`predict` there.
    """

    def __init__(
        self,
        network: Any,
        weights: np.ndarray,
        num_actors: int,
        num_gpus_per_actor: float,
        cpus_per_actor: int,
    ) -> None:
        import ray  # noqa: PLC0415 - checked by the caller

        self._ray = ray
        # Ray's actor handles are typed loosely: its own stubs cannot follow .remote()
        options = ray.remote(num_cpus=cpus_per_actor, num_gpus=num_gpus_per_actor)
        remote: Any = options(_PredictWorker)
        self.actors: list[Any] = [remote.remote() for _ in range(num_actors)]
        try:
            placements = ray.get([a.placement.remote() for a in self.actors])
            boxed = [ray.put(network), ray.put(weights)]  # pickled once for every actor
            seen: dict[str, int] = {}
            setups = []
            for actor, (node, cores) in zip(self.actors, placements, strict=True):
                index = seen.get(node, 0)
                seen[node] = index + 1
                share = cores[index * cpus_per_actor : (index + 1) * cpus_per_actor]
                setups.append(actor.setup.remote(boxed, share))
            self.devices = ray.get(setups)
        except BaseException:
            self.close()
            raise

    def run(self, source: _Source, out: np.ndarray, batch_size: int, progress: Any) -> float:
        """Evaluate every block of ``source`` into ``out`` (N, *output_shape) float64, at most
        two blocks in flight per actor. Returns the actors' CPU seconds."""
        ray = self._ray
        blocks = source.blocks(batch_size)
        pending: dict[Any, Any] = {}
        cpu = 0.0

        def submit(actor: Any) -> bool:
            item = next(blocks, None)
            if item is None:
                return False
            start, block = item
            pending[actor.forward.remote(start, block)] = actor
            return True

        for _ in range(2):
            for actor in self.actors:
                submit(actor)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(done[0])
            start, values, seconds = ray.get(done[0])
            out[start : start + len(values)] = values.reshape(len(values), *out.shape[1:])
            cpu += seconds
            progress.update(len(values))
            submit(actor)
        return cpu

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []


def _check_predict_args(
    network: Any,
    source: _Source,
    weights: Any,
    batch_size: Any,
    num_actors: Any,
    num_gpus_per_actor: Any,
    cpus_per_actor: Any,
    out: Any,
) -> tuple[np.ndarray, np.ndarray | None, int, int | None, float, int]:
    for attribute in ("forward", "num_inputs", "num_weights", "output_shape"):
        if not hasattr(network, attribute):
            raise TypeError(
                f"network must be a qiskit-machine-learning network (EstimatorQNN, SamplerQNN), "
                f"got {type(network).__name__} without {attribute!r}"
            )
    if source.num_columns != network.num_inputs:
        raise ValueError(
            f"x must have shape (N, num_inputs={network.num_inputs}), got "
            f"{source.num_columns} columns"
        )
    w = np.asarray([] if weights is None else weights, dtype=np.float64).reshape(-1)
    if w.size != network.num_weights:
        raise ValueError(
            f"weights must hold num_weights={network.num_weights} values, got {w.size}"
        )
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite")
    batch = _positive_int("batch_size", batch_size)
    actors = None if num_actors is None else _positive_int("num_actors", num_actors)
    if (
        isinstance(num_gpus_per_actor, bool)
        or not isinstance(num_gpus_per_actor, (int, float, np.integer, np.floating))
        or not num_gpus_per_actor >= 0
    ):
        raise ValueError(f"num_gpus_per_actor must be a number >= 0, got {num_gpus_per_actor!r}")
    cpus = _positive_int("cpus_per_actor", cpus_per_actor)
    shape = (source.num_rows, *network.output_shape)
    if out is not None:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a NumPy array or np.memmap, got {type(out).__name__}")
        if out.shape != shape or out.dtype != np.float64 or not out.flags.writeable:
            raise ValueError(
                f"out must be a writeable float64 array of shape {shape}, got "
                f"{'a read-only ' if not out.flags.writeable else ''}{out.dtype} array of shape "
                f"{out.shape}"
            )
    return w, out, batch, actors, float(num_gpus_per_actor), cpus


def predict(
    network: Any,
    x: Any,
    weights: Any,
    *,
    batch_size: int = 4096,
    num_actors: int | None = None,
    num_gpus_per_actor: float = 0,
    cpus_per_actor: int = 1,
    out: np.ndarray | None = None,
    columns: Sequence[str] | None = None,
    progress: bool = True,
) -> np.ndarray:
    """``network.forward(x, weights)`` for a large ``x``, on a pool of Ray actors.

    The network is pickled once into Ray's object store and built once in each actor (the
    networks rebuild their simulator on unpickling, on the device their ``device`` option
    names: build it with ``device="auto"`` or ``"gpu"`` for GPU actors, since Ray narrows each
    actor's ``CUDA_VISIBLE_DEVICES`` to its own GPU). The driver reads x block by block (a
    memmap or a Parquet file is never loaded whole), keeps at most two blocks in flight per
    actor, and writes each result into its rows of the output, so the outputs come back in
    input order and the driver holds no more than the output array and those blocks. The
    actors are stopped before it returns.

    Uses the running Ray (``ray.init(address=...)`` first for a cluster); where none runs, it
    starts a local one as any Ray call does, and leaves it running for later calls
    (``ray.shutdown()`` ends it).

    Args:
        network: an ``EstimatorQNN`` or ``SamplerQNN`` (gpuqnn's, or any picklable
            qiskit-machine-learning network).
        x: (N, num_inputs) real array (a NumPy array or ``np.memmap``), a path to a ``.npy``
            file (memory-mapped) or a path to a ``.parquet`` file (one numeric column per input,
            in ``columns`` order, else in file order).
        weights: (num_weights,) float64 weights.
        batch_size: rows per block sent to an actor.
        num_actors: actors to start; None: as many as the cluster has CPUs (GPUs divided by
            ``num_gpus_per_actor`` when that is positive), never more than there are blocks.
        num_gpus_per_actor: GPUs reserved per actor (1 for one GPU each; 0 for CPU actors).
        cpus_per_actor: CPU cores reserved per actor; each actor is pinned to that many cores
            of its node, so gpuqnn starts that many worker threads in it.
        out: where to write the outputs: a writeable (N, *output_shape) float64 array, such as
            an ``np.memmap`` opened with ``mode="w+"`` for outputs larger than memory.
        columns: Parquet columns to read as the inputs (only for a Parquet ``x``).
        progress: show a progress bar over the rows on stderr (tqdm where installed).

    Returns:
        (N, *output_shape) float64 outputs in x's row order: ``out`` when given.

    Raises:
        ValueError: x not (N, num_inputs), weights of the wrong size or not finite,
            ``batch_size``/``num_actors``/``cpus_per_actor`` not positive ints,
            ``num_gpus_per_actor`` negative, ``out`` of the wrong shape or dtype, an unknown
            or non-numeric Parquet column. All are checked before Ray starts.
        ImportError: Ray is not installed (``pip install "gpuqnn[ray]"``).
    """
    source = _open_source(x, columns)
    w, out, batch, actors, gpus, cpus = _check_predict_args(
        network, source, weights, batch_size, num_actors, num_gpus_per_actor, cpus_per_actor, out
    )
    if out is None:
        out = np.empty((source.num_rows, *network.output_shape), dtype=np.float64)
    if source.num_rows == 0:
        return out
    try:
        import ray  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        raise ImportError(f"gpuqnn.distributed.predict needs Ray: {_RAY_EXTRA}") from exc
    if not ray.is_initialized():
        ray.init()
    if actors is None:
        resources = ray.cluster_resources()
        free = resources.get("GPU", 0) / gpus if gpus > 0 else resources.get("CPU", 1) / cpus
        actors = max(1, int(free))
    actors = min(actors, math.ceil(source.num_rows / batch))
    total = ray.cluster_resources()
    wanted = {"CPU": actors * cpus, "GPU": actors * gpus}
    short = [f"{wanted[k]:g} {k}s" for k in wanted if wanted[k] > total.get(k, 0)]
    if short:
        warnings.warn(
            f"predict: {actors} actor(s) need {' and '.join(short)}, more than this Ray cluster "
            f"has ({total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs): Ray waits until "
            "an autoscaler adds nodes, else forever. Ask for fewer num_actors.",
            UserWarning,
            stacklevel=2,
        )
    started = time.perf_counter()
    pool = _ActorPool(network, w, actors, gpus, cpus)
    bar = _progress(source.num_rows, progress)
    try:
        cpu = pool.run(source, out, batch, bar)
    finally:
        bar.close()
        pool.close()
    logger.info(
        "predict: %d rows on %d actor(s) (devices %s) in %.2f s, %.2f CPU s in the actors",
        source.num_rows,
        actors,
        sorted(set(pool.devices)),
        time.perf_counter() - started,
        cpu,
    )
    return out

"""Batch inference of a million samples on Ray actors, memmap in and memmap out.

Writes ``--samples`` rows of random inputs to ``DIR/x.npy``, evaluates the network on them with
``gpuqnn.distributed.predict`` into ``DIR/y.npy`` (an ``np.memmap`` given as ``out``), prints the
time, the rate, the driver's peak memory, and the largest difference from ``network.forward``
on 1000 rows taken across the file::

    python examples/ray_predict.py --samples 1000000 --actors 2
    python examples/ray_predict.py --gpus-per-actor 1        # one GPU per actor
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gpuqnn import EstimatorQNN
from gpuqnn.distributed import predict
from gpuqnn.examples import zz_real_amplitudes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--qubits", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--gpus-per-actor", type=float, default=0)
    parser.add_argument("--dir", default="", help="where x.npy and y.npy go (default: a temp dir)")
    args = parser.parse_args(argv)

    import ray  # noqa: PLC0415 - after argparse, so that --help is quick

    directory = Path(args.dir or tempfile.mkdtemp(prefix="gpuqnn-predict-"))
    circuit, feature_map, ansatz = zz_real_amplitudes(args.qubits, reps=1)
    qnn = EstimatorQNN(
        circuit=circuit, input_params=feature_map.parameters, weight_params=ansatz.parameters
    )
    rng = np.random.default_rng(0)
    weights = rng.uniform(-1, 1, qnn.num_weights)
    shape = (args.samples, qnn.num_inputs)
    x = np.lib.format.open_memmap(directory / "x.npy", mode="w+", dtype=np.float64, shape=shape)
    for start in range(0, args.samples, 1 << 16):  # written in blocks, never whole in memory
        stop = min(start + (1 << 16), args.samples)
        x[start:stop] = rng.uniform(0, np.pi, (stop - start, qnn.num_inputs))
    x.flush()
    del x
    out = np.lib.format.open_memmap(
        directory / "y.npy", mode="w+", dtype=np.float64, shape=(args.samples, 1)
    )
    ray.init(num_cpus=args.actors, include_dashboard=False, log_to_driver=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    predict(
        qnn,
        directory / "x.npy",
        weights,
        batch_size=args.batch_size,
        num_actors=args.actors,
        num_gpus_per_actor=args.gpus_per_actor,
        out=out,
    )
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ray.shutdown()
    out.flush()

    x = np.load(directory / "x.npy", mmap_mode="r")
    rows = np.sort(rng.choice(args.samples, size=min(1000, args.samples), replace=False))
    difference = np.abs(qnn.forward(np.asarray(x[rows]), weights) - out[rows]).max()
    print(
        f"{args.samples} rows, {args.qubits} qubits, {args.actors} actor(s), batch "
        f"{args.batch_size}: {seconds:.1f} s including actor start, "
        f"{args.samples / seconds:.0f} rows/s"
    )
    print(
        f"driver peak RSS {peak / 1024:.0f} MiB ({before / 1024:.0f} MiB before predict); "
        f"x and y are {(x.nbytes + out.nbytes) / 2**20:.0f} MiB on disk"
    )
    print(f"max |difference| {difference:.3g} from network.forward on {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scaling over processes: training steps under DDP and inference on Ray actors, against one
process, in samples/s and CPU-µs per sample (README, "bench_scale.py"; docs/distributed.md).

On the CPU every worker process or actor is pinned to ONE core with one thread
(``OMP_NUM_THREADS=1``, one torch thread), so 1 and 2 workers compare like for like; ``1 proc
x2 threads`` is one process on two cores for reference. ``--gpus N`` measures 1..N GPUs and adds
the scaling efficiency ``rate(K) / (K * rate(1))`` (``--device cpu``: a dry run of that path).
Per qubit count the rounds are interleaved (every side once per round); each side's best round
is reported. CPU time: the workers' (Ray: the actors' time in ``forward`` plus the driver's).
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    import _as_script  # type: ignore[import-not-found]  # noqa: F401

import argparse
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.threads import cores as available

THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Side:
    """One measured configuration: ``kind`` train or infer, ``engine`` proc (processes, DDP when
    several) or ray, K ``workers`` with a device each and their cores (None: any)."""

    name: str
    kind: str
    engine: str
    workers: int
    devices: tuple[str, ...]
    cores: tuple[tuple[int, ...], ...] | None


@dataclass
class Result:
    """A side's best round: rate, CPU time per sample and its workers' thread note."""

    samples_per_s: float = 0.0
    cpu_us_per_sample: float = float("nan")
    threads: str = ""


def _network(qubits: int, device: str) -> Any:
    from benchmarks.workloads import zz_estimator
    from gpuqnn import EstimatorQNN

    spec = zz_estimator(qubits)
    return EstimatorQNN(**spec.qiskit_kwargs(), input_gradients=True, device=device)


def _model(qubits: int, device: str) -> Any:
    import torch

    from gpuqnn import TorchConnector

    qnn = _network(qubits, device)
    torch.manual_seed(0)
    initial = np.random.default_rng(0).uniform(-1, 1, qnn.num_weights)
    model = torch.nn.Sequential(
        torch.nn.Linear(qubits, qubits),
        TorchConnector(qnn, initial_weights=initial, dtype="input"),
        torch.nn.Linear(1, 1),
    )
    return model.double().to(device)


def _worker(
    rank: int, world: int, device: str, cores: Sequence[int] | None, init: str, conn: Any
) -> None:
    """A benchmark process: pinned, one rank of a group of ``world``; answers commands
    ``(kind, qubits, rows, batch, steps)`` with ``(wall s, cpu s, threads note)`` until None."""
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cores))
    import torch
    import torch.distributed as dist

    torch.set_num_threads(len(cores) if cores else torch.get_num_threads())
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    if world > 1:
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, init_method=f"file://{init}", rank=rank, world_size=world)
    threads = f"cores {len(available())}, torch {torch.get_num_threads()}, "
    threads += f"OMP {os.environ.get('OMP_NUM_THREADS', '-')}"
    cache: dict[tuple, Any] = {}
    while True:
        command = conn.recv()
        if command is None:
            break
        kind, qubits, rows, batch, steps = command
        rng = np.random.default_rng(rank)
        if kind == "train":
            if ("train", qubits) not in cache:
                ddp = _model(qubits, device)
                if world > 1:
                    ids = [torch.device(device).index] if device != "cpu" else None
                    ddp = torch.nn.parallel.DistributedDataParallel(ddp, device_ids=ids)
                cache["train", qubits] = ddp, torch.optim.Adam(ddp.parameters(), lr=0.01)
            ddp, optimizer = cache["train", qubits]
            local = batch // world
            x = torch.tensor(rng.uniform(0, np.pi, (local, qubits)), device=device)
            y = torch.tensor(rng.integers(0, 2, local), dtype=torch.float64, device=device)

            def step(ddp: Any = ddp, x: Any = x, y: Any = y, optimizer: Any = optimizer) -> None:
                optimizer.zero_grad()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(ddp(x).squeeze(-1), y)
                loss.backward()
                optimizer.step()

            step()  # warm-up
            if world > 1:
                dist.barrier()
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if world > 1:
                dist.barrier()
            conn.send((time.perf_counter() - wall, time.process_time() - cpu, threads))
        else:
            if ("infer", qubits) not in cache:
                qnn = _network(qubits, device)
                cache["infer", qubits] = qnn, rng.uniform(-1, 1, qnn.num_weights)
            qnn, w = cache["infer", qubits]
            x = np.random.default_rng(0).uniform(0, np.pi, (rows, qubits))
            qnn.forward(x[:batch], w)  # warm-up
            wall, cpu = time.perf_counter(), time.process_time()
            for start in range(0, rows, batch):
                qnn.forward(x[start : start + batch], w)
            conn.send((time.perf_counter() - wall, time.process_time() - cpu, threads))
    if world > 1:
        dist.destroy_process_group()


class ProcessGroup:
    """``side.workers`` benchmark processes (spawned), one rank each."""

    def __init__(self, side: Side, directory: str) -> None:
        context = mp.get_context("spawn")
        init = tempfile.mktemp(prefix="init-", dir=directory)  # a rendezvous file name
        self.conns, self.procs = [], []
        for rank in range(side.workers):
            parent, child = context.Pipe()
            cores = side.cores[rank] if side.cores else None
            proc = context.Process(
                target=_worker,
                args=(rank, side.workers, side.devices[rank], cores, init, child),
                daemon=True,
            )
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    def run(self, command: tuple) -> tuple[float, float, str]:
        for conn in self.conns:
            conn.send(command)
        answers = [conn.recv() for conn in self.conns]
        return max(a[0] for a in answers), sum(a[1] for a in answers), answers[0][2]

    def release(self) -> None:
        """Nothing to free between network sizes: the processes cache one model per size."""

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(timeout=30)


class RayPool:
    """gpuqnn.distributed's actor pool over ``side.workers`` actors, one network per qubit
    count (built on first use, kept across rounds)."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.pools: dict[int, Any] = {}

    def run(self, command: tuple) -> tuple[float, float, str]:
        from benchmarks.internals import ActorPool, NoProgress, Source

        _kind, qubits, rows, batch, _steps = command
        gpus = 1 if self.side.devices[0].startswith("cuda") else 0
        if qubits not in self.pools:
            self.release()  # the cluster has room for one pool of these actors
            device = "auto" if gpus else "cpu"
            qnn = _network(qubits, device)
            w = np.random.default_rng(0).uniform(-1, 1, qnn.num_weights)
            self.pools[qubits] = ActorPool(qnn, w, self.side.workers, gpus, 1), qnn
        pool, qnn = self.pools[qubits]
        x = np.random.default_rng(0).uniform(0, np.pi, (rows, qubits))
        out = np.empty((rows, *qnn.output_shape))
        pool.run(Source(batch, qubits, array=x[:batch]), out[:batch], batch, NoProgress())
        wall, cpu = time.perf_counter(), time.process_time()
        actor_cpu = pool.run(Source(rows, qubits, array=x), out, batch, NoProgress())
        threads = f"actors pinned to {self.side.cores and len(self.side.cores[0])} core(s), OMP 1"
        return time.perf_counter() - wall, actor_cpu + time.process_time() - cpu, threads

    def release(self) -> None:
        """Stop the actors (they hold one network size)."""
        for pool, _ in self.pools.values():
            pool.close()
        self.pools = {}

    def close(self) -> None:
        self.release()


def plan(args: argparse.Namespace) -> list[Side]:
    """The sides to measure: CPU workers 1 and 2 (and 1 process on 2 cores), or 1..N GPUs."""
    sides: list[Side] = []
    kinds = [("train", "proc"), ("infer", "proc")] + ([] if args.no_ray else [("infer", "ray")])
    if args.gpus:
        device = "cpu" if args.device == "cpu" else "cuda"
        for kind, engine in kinds:
            for k in range(1, args.gpus + 1):
                devices = tuple("cpu" if device == "cpu" else f"cuda:{i}" for i in range(k))
                label = "DDP" if kind == "train" else ("Ray" if engine == "ray" else "proc")
                if engine == "proc" and kind == "infer" and k > 1:
                    continue  # inference over several GPUs is Ray's
                sides.append(Side(f"{kind} {label} x{k} GPU", kind, engine, k, devices, None))
        return sides
    cores = available()
    one = ((cores[0],),)
    two = ((cores[0],), (cores[1 % len(cores)],))
    both = (tuple(cores[:2]),)
    for kind, engine in kinds:
        if engine == "ray":
            sides.append(Side("infer Ray x2", kind, "ray", 2, ("cpu",) * 2, two))
            continue
        sides.append(Side(f"{kind} 1 proc", kind, "proc", 1, ("cpu",), one))
        multi = "DDP x2" if kind == "train" else None
        if multi:
            sides.append(Side(f"{kind} {multi}", kind, "proc", 2, ("cpu",) * 2, two))
        if not args.quick:
            sides.append(Side(f"{kind} 1 proc x2 threads", kind, "proc", 1, ("cpu",), both))
    return sides


def measure(args: argparse.Namespace, sides: list[Side]) -> dict[tuple[str, int], Result]:
    """Interleaved rounds over every side and qubit count; the best round of each."""
    results: dict[tuple[str, int], Result] = {}
    directory = tempfile.mkdtemp(prefix="gpuqnn-scale-")
    runners: dict[str, Any] = {}
    try:
        groups: dict[tuple, Any] = {}  # sides on the same workers share their processes
        for side in sides:
            key = (side.engine, side.kind if side.engine == "ray" else "", side.devices, side.cores)
            if key not in groups:
                groups[key] = (
                    RayPool(side) if side.engine == "ray" else ProcessGroup(side, directory)
                )
            runners[side.name] = groups[key]
        for qubits in args.qubits:  # one network size at a time: a Ray pool holds one network
            for round_index in range(args.rounds):
                for side in sides:
                    rows = (
                        args.train_batch * args.steps if side.kind == "train" else args.infer_rows
                    )
                    batch = args.train_batch if side.kind == "train" else args.infer_batch
                    command = (side.kind, qubits, args.infer_rows, batch, args.steps)
                    wall, cpu, threads = runners[side.name].run(command)
                    result = results.setdefault((side.name, qubits), Result())
                    rate = rows / wall
                    if rate > result.samples_per_s:
                        result.samples_per_s = rate
                        result.cpu_us_per_sample = cpu / rows * 1e6
                    result.threads = threads
                print(f"{qubits} qubits: round {round_index + 1}/{args.rounds}", file=sys.stderr)
            for runner in runners.values():
                runner.release()
    finally:
        for runner in {id(r): r for r in runners.values()}.values():
            runner.close()
    return results


def table(sides: list[Side], results: dict, qubits: Sequence[int], gpus: bool) -> str:
    lines = [
        f"{'side':28} {'qubits':>6} {'samples/s':>11} {'CPU-µs/sample':>14} "
        f"{'vs 1 worker':>11}{'  efficiency' if gpus else ''}  threads per worker"
    ]
    for q in qubits:
        for side in sides:
            result = results[side.name, q]
            base = next(
                (results[s.name, q] for s in sides if s.kind == side.kind and s.workers == 1),
                result,
            )
            speedup = result.samples_per_s / base.samples_per_s
            efficiency = f"  {speedup / side.workers:10.0%}" if gpus else ""
            lines.append(
                f"{side.name:28} {q:6d} {result.samples_per_s:11.0f} "
                f"{result.cpu_us_per_sample:14.1f} {speedup:10.2f}x{efficiency}  {result.threads}"
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qubits", type=int, nargs="+", default=[8, 10])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per round")
    parser.add_argument("--train-batch", type=int, default=256, help="global batch per step")
    parser.add_argument("--infer-rows", type=int, default=16384)
    parser.add_argument("--infer-batch", type=int, default=1024)
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray sides")
    parser.add_argument("--gpus", type=int, default=0, help="measure 1..N GPUs")
    parser.add_argument(
        "--device", choices=["cuda", "cpu"], default="cuda", help="cpu: dry run of --gpus"
    )
    parser.add_argument(
        "--quick", action="store_true", help="seconds, for testing: 4 qubits, no x2-thread sides"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.qubits, args.rounds, args.steps = [4], 1, 1
        args.train_batch, args.infer_rows, args.infer_batch = 16, 64, 32
    if args.train_batch % 2 or (args.gpus and args.train_batch % args.gpus):
        parser.error("--train-batch must divide among the workers")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(THREAD_ENV)  # inherited by every spawned worker and Ray actor
    if not args.no_ray:
        try:
            import ray
        except ImportError:
            print("Ray is not installed: the Ray sides are left out", file=sys.stderr)
            args.no_ray = True
    if args.gpus and args.device == "cuda":
        import torch

        found = torch.cuda.device_count()
        if found < args.gpus:
            print(f"--gpus {args.gpus}: only {found} CUDA device(s) here", file=sys.stderr)
            return 0
    sides = plan(args)
    started_ray = False
    if not args.no_ray and not ray.is_initialized():
        ray.init(num_cpus=max(2, len(available())), include_dashboard=False, log_to_driver=False)
        started_ray = True
    try:
        results = measure(args, sides)
    finally:
        if started_ray:
            ray.shutdown()
    load = f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"  # other jobs
    print(
        f"bench_scale: {platform.processor() or platform.machine()}, {len(available())} "
        f"cores, load {load}, "
        f"best of {args.rounds} interleaved round(s); train: {args.steps} steps of "
        f"{args.train_batch} rows (global); infer: {args.infer_rows} rows in blocks of "
        f"{args.infer_batch}; zz_real_amplitudes(n, reps=3); env {THREAD_ENV}"
    )
    print(table(sides, results, args.qubits, bool(args.gpus)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

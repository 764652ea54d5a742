"""Time gpuqnn on a CUDA GPU: its CuPy variants against NumPy and the GPU peers, in one table.

gpuqnn variants (all built with ``device="gpu"`` except ``numpy``; kernels chosen with
``gpuqnn._internals.use_kernels``):

- ``gpu-auto``: what a user gets (kernels ``auto``, gradient method ``auto``): the headline;
- ``fused-shift``: the fused CUDA kernel (a row's whole program in one launch, the state in
  shared memory), forced parameter shift, which the kernels serve;
- ``per-op-shift``: the per-op CUDA kernels (CUDA graph), forced parameter shift;
- ``engine-auto``: the block engine on CuPy (no custom kernels), gradient method ``auto``;
- ``numpy-auto``: the NumPy engine on the host CPU.

Peers: ``qiskit-aer-gpu`` (qiskit-machine-learning's EstimatorQNN on Aer's GPU statevector
EstimatorV2), ``pennylane-backprop`` on ``torch.device("cuda")`` and ``qiskit-ml`` (default
primitives, CPU, scaled); each only where installed and a device answers.

Timing: every call is bracketed by a device synchronisation (CuPy / torch), after a full-batch
warm-up call (the first call compiles the kernels). Where no CUDA device answers, the script says
so and exits 0. ``--device cpu`` is a dry run of the same code on the CPU (every variant on NumPy,
peers on their CPU devices): for testing the script, not for numbers.

Usage::

    python -m benchmarks.bench_gpu
    python -m benchmarks.bench_gpu --workloads zz8-estimator --peers qiskit-aer-gpu
    python -m benchmarks.bench_gpu --device cpu --quick      # dry run without a GPU
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

from benchmarks.cli import (
    add_common_arguments,
    check_counts,
    exit_status,
    print_main_table,
    run_workloads,
)
from benchmarks.implementations import Options, Variant
from benchmarks.measure import BACKWARD_PASSES, QUICK_BATCH, Row
from benchmarks.peers import GPU_PEERS, Peer, available_peers
from benchmarks.report import (
    Target,
    environment_line,
    find_row,
    ratio_target,
    targets_table,
)
from benchmarks.workloads import GPU_WORKLOADS, Workload, by_name

HEADLINE_WORKLOAD = ("zz8-estimator", 4096)
"""Issue 4's workload: the 8-qubit estimator at batch 4096."""


QUICK_DRY_RUN_QUBITS = 12
"""Widest workload a quick dry run on the CPU takes by default: 16 qubits' qiskit-ml reference
alone took 9 minutes."""


def workloads_left_default(args: argparse.Namespace) -> bool:
    """Whether ``--workloads`` was left at its default (every GPU workload)."""
    return list(args.workloads) == [w.name for w in GPU_WORKLOADS]


def gpu_variants(dtype: str = "complex128", device: str = "gpu") -> list[Variant]:
    """The GPU table's gpuqnn variants, headline first; ``device="cpu"`` gives the dry run's
    (same names and kernel choices, all on NumPy)."""
    variants = [
        Variant("gpu-auto", "auto", dtype, "gpu", "auto"),
        Variant("fused-shift", "parameter_shift", dtype, "gpu", "fused"),
        Variant("per-op-shift", "parameter_shift", dtype, "gpu", "per_op"),
        Variant("engine-auto", "auto", dtype, "gpu", "none"),
        Variant("numpy-auto", "auto", dtype, "cpu", "auto"),
    ]
    return variants if device == "gpu" else [replace(v, device="cpu") for v in variants]


def gpu_unavailable() -> str | None:
    """Why gpuqnn has no CUDA device here, or None when one answers."""
    from benchmarks.internals import select_backend  # noqa: PLC0415 - documented internal API

    try:
        select_backend("gpu")
    except RuntimeError as exc:
        return str(exc)
    return None


def gpu_name() -> str:
    """The CUDA device 0's name, as CuPy reports it."""
    import cupy  # noqa: PLC0415 - only with a GPU

    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return f"cuda:0 ({name.decode() if isinstance(name, bytes) else name}), CuPy {cupy.__version__}"


def gpu_targets(rows: Sequence[Row], headline: str, peers: Sequence[str]) -> list[Target]:
    """Issue 4's targets, evaluated on this run."""
    workload, batch = HEADLINE_WORKLOAD
    targets = []
    for pass_name in BACKWARD_PASSES:
        row = find_row(rows, workload, pass_name)
        text = f"{workload} {pass_name} (batch {batch}) under 50 ms"
        seconds = None if row is None or row.batch != batch else row.seconds(headline)
        if seconds is None:
            targets.append(Target(text, "not run at this batch", None))
        else:
            targets.append(Target(text, f"{seconds * 1e3:.1f} ms", seconds < 0.050))
        for peer, minimum in (
            ("qiskit-ml", 1000),
            ("qiskit-aer-gpu", 20),
            ("pennylane-backprop", 3),
        ):
            if peer in peers:
                targets.append(
                    ratio_target(rows, workload, pass_name, headline, [peer], minimum, batch)
                )
    return targets


def plan_lines(
    workloads: Sequence[str], variants: Sequence[Variant], peers: Sequence[str], quick: bool
) -> list[str]:
    """What a run does, one line per workload: batch, variants and peers."""
    lines = []
    for workload in by_name(GPU_WORKLOADS, list(workloads)):
        batch = min(workload.batch, QUICK_BATCH) if quick else workload.batch
        lines.append(
            f"plan {workload.name} at batch {batch}: "
            + ", ".join(
                f"{v.name} ({v.device}, kernels {v.kernels}, {v.gradient_method})" for v in variants
            )
            + (f"; peers {', '.join(peers)}" if peers else "; no peers")
        )
    return lines


def measure(
    args: argparse.Namespace, workloads: Sequence[Workload]
) -> tuple[list[Row], list[Variant], list[Peer]]:
    """Check and time ``workloads`` as ``args`` (of :func:`parse_args`) say; prints the plan
    and the check lines. Returns the rows, the variants (headline first) and the peers run."""
    variants = gpu_variants(args.dtype, args.device)
    options = Options(args.device)
    peers = available_peers(args.peers, options)
    for line in plan_lines(
        [w.name for w in workloads], variants, [p.name for p in peers], args.quick
    ):
        print(line)
    return run_workloads(workloads, args, variants, peers, options), variants, peers


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, GPU_WORKLOADS, GPU_PEERS, repeat=5)
    parser.add_argument("--dtype", default="complex128", choices=["complex128", "complex64"])
    parser.add_argument(
        "--device",
        default="gpu",
        choices=["gpu", "cpu"],
        help="gpu (default), or cpu for a dry run of the script without a GPU",
    )
    parser.add_argument("--plan", action="store_true", help="print the plan and stop")
    args = parser.parse_args(argv)
    check_counts(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the GPU benchmark and print its table.

    Returns:
        0 (also when no CUDA device answers), or 1 when an implementation disagreed with the
        headline.
    """
    args = parse_args(argv)
    variants = gpu_variants(args.dtype, args.device)
    workloads = by_name(GPU_WORKLOADS, args.workloads)
    if args.quick and args.device == "cpu" and workloads_left_default(args):
        for workload in workloads:
            if workload.build().num_qubits > QUICK_DRY_RUN_QUBITS:
                print(
                    f"skip {workload.name} in the quick dry run: its qiskit-machine-learning "
                    "reference takes minutes on a CPU (name it with --workloads to run it)"
                )
        workloads = [w for w in workloads if w.build().num_qubits <= QUICK_DRY_RUN_QUBITS]
    if args.plan:  # the plan needs no device: print it wherever the script runs
        options = Options(args.device)
        names = [p.name for p in available_peers(args.peers, options)]
        for line in plan_lines([w.name for w in workloads], variants, names, args.quick):
            print(line)
        if args.device == "gpu" and (reason := gpu_unavailable()) is not None:
            print(f"(no CUDA device answers here: {reason}; the run itself would be skipped)")
        return 0
    if args.device == "gpu":
        reason = gpu_unavailable()
        if reason is not None:
            print(f"GPU benchmark skipped: no CUDA device answers ({reason}).")
            return 0
        print(environment_line(gpu_name()))
    else:
        print(
            "DRY RUN on the CPU: every gpuqnn variant runs NumPy and the peers run on the "
            "CPU; these are not GPU numbers."
        )
        print(environment_line("cpu (dry run)"))
    rows, variants, peers = measure(args, workloads)
    print_main_table(rows, variants, peers)
    print(
        "\nTargets (issue 4"
        + (", DRY RUN: not GPU numbers" if args.device == "cpu" else "")
        + "):\n"
    )
    print(targets_table(gpu_targets(rows, variants[0].name, [p.name for p in peers])))
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())

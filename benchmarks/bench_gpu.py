"""Time gpuqnn on a CUDA GPU: its CuPy variants against NumPy and the GPU peers, in one table.

Variants (README, "The GPU table"): ``gpu-auto`` (the headline), ``fused-shift`` and
``per-op-shift`` (the fused / per-op CUDA kernels, forced parameter shift), ``engine-auto`` (the
block engine on CuPy) and ``numpy-auto`` (the host). Peers: ``qiskit-aer-gpu``,
``pennylane-backprop`` on CUDA and ``qiskit-ml`` (CPU, scaled). Every timed call is bracketed by
a device synchronisation, after a full-batch warm-up. Without a CUDA device it says so and exits
0; ``--device cpu`` is a dry run of the same code on the CPU (not GPU numbers).
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    import _as_script  # type: ignore[import-not-found]  # noqa: F401

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

from benchmarks import cli
from benchmarks.implementations import Options, Variant
from benchmarks.measure import BACKWARD_PASSES, Row
from benchmarks.peers import GPU_PEERS, Peer, available_peers
from benchmarks.report import Target, environment_line, ratio_target, seconds_target, targets_table
from benchmarks.workloads import GPU_WORKLOADS, Workload, by_name

HEADLINE_WORKLOAD = ("zz8-estimator", 4096)  # issue 4's
QUICK_DRY_RUN_QUBITS = 12
"""Widest workload of a quick dry run by default: 16 qubits' qiskit-ml reference took 9 min."""
PEER_TARGETS = (("qiskit-ml", 1000), ("qiskit-aer-gpu", 20), ("pennylane-backprop", 3))


def gpu_variants(dtype: str = "complex128", device: str = "gpu") -> list[Variant]:
    """The GPU table's gpuqnn variants, headline first; ``device="cpu"`` gives the dry run's
    (same names and kernel choices, all on NumPy)."""
    variants = [
        Variant("gpu-auto", "auto", dtype, "gpu", "auto"),
        Variant("fused-shift", "parameter_shift", dtype, "gpu", "fused"),
        Variant("per-op-shift", "parameter_shift", dtype, "gpu", "per_op"),
        Variant("engine-auto", "auto", dtype, "gpu", "none"),
        Variant("numpy-auto", "auto", dtype, "cpu", "auto", engine="numpy"),
    ]
    return (
        variants
        if device == "gpu"
        else [replace(v, device="cpu", engine="numpy") for v in variants]
    )


def gpu_unavailable() -> str | None:
    """Why gpuqnn has no CUDA device here, or None when one answers."""
    from benchmarks.internals import select_backend

    try:
        select_backend("gpu")
    except RuntimeError as exc:
        return str(exc)
    return None


def gpu_name() -> str:
    """The CUDA device 0's name, as CuPy reports it."""
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return f"cuda:0 ({name.decode() if isinstance(name, bytes) else name}), CuPy {cupy.__version__}"


def gpu_targets(rows: Sequence[Row], headline: str, peers: Sequence[str]) -> list[Target]:
    """Issue 4's targets, evaluated on this run."""
    workload, batch = HEADLINE_WORKLOAD
    targets = []
    for pass_name in BACKWARD_PASSES:
        targets.append(seconds_target(rows, workload, pass_name, headline, 0.050, batch))
        targets += [
            ratio_target(rows, workload, pass_name, headline, [peer], minimum, batch)
            for peer, minimum in PEER_TARGETS
            if peer in peers
        ]
    return targets


def print_plan(
    workloads: Sequence[Workload], variants: Sequence[Variant], peers: Sequence[str], quick: bool
) -> None:
    """What a run does, one line per workload: batch, variants and peers."""
    runs = ", ".join(
        f"{v.name} ({v.device}, kernels {v.kernels}, {v.gradient_method})" for v in variants
    )
    for workload in workloads:
        batch = cli.quick_batch(workload, quick)
        print(
            f"plan {workload.name} at batch {batch}: {runs}; "
            + (f"peers {', '.join(peers)}" if peers else "no peers")
        )


def measure(
    args: argparse.Namespace, workloads: Sequence[Workload]
) -> tuple[list[Row], list[Variant], list[Peer]]:
    """Check and time ``workloads`` as ``args`` (of :func:`parse_args`) say; prints the plan
    and the check lines. Returns the rows, the variants (headline first) and the peers run."""
    variants = gpu_variants(args.dtype, args.device)
    options = Options(args.device)
    peers = available_peers(args.peers, options)
    print_plan(workloads, variants, [p.name for p in peers], args.quick)
    return cli.run_workloads(workloads, args, variants, peers, options), variants, peers


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = cli.common_parser(__doc__, GPU_WORKLOADS, GPU_PEERS, repeat=5)
    parser.add_argument("--dtype", default="complex128", choices=["complex128", "complex64"])
    parser.add_argument(
        "--device",
        default="gpu",
        choices=["gpu", "cpu"],
        help="gpu (default), or cpu for a dry run of the script without a GPU",
    )
    parser.add_argument("--plan", action="store_true", help="print the plan and stop")
    return cli.parse_checked(parser, argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the GPU benchmark and print its table; 0 (also when no CUDA device answers), or 1
    when an implementation disagreed with the headline."""
    args = parse_args(argv)
    workloads = by_name(GPU_WORKLOADS, args.workloads)
    if args.quick and args.device == "cpu" and args.workloads == [w.name for w in GPU_WORKLOADS]:
        for workload in workloads:
            if workload.build().num_qubits > QUICK_DRY_RUN_QUBITS:
                print(
                    f"skip {workload.name} in the quick dry run: its qiskit-machine-learning "
                    "reference takes minutes on a CPU (name it with --workloads to run it)"
                )
        workloads = [w for w in workloads if w.build().num_qubits <= QUICK_DRY_RUN_QUBITS]
    reason = gpu_unavailable() if args.device == "gpu" else None
    if args.plan:  # the plan needs no device: print it wherever the script runs
        names = [p.name for p in available_peers(args.peers, Options(args.device))]
        print_plan(workloads, gpu_variants(args.dtype, args.device), names, args.quick)
        if reason is not None:
            print(f"(no CUDA device answers here: {reason}; the run itself would be skipped)")
        return 0
    if reason is not None:
        print(f"GPU benchmark skipped: no CUDA device answers ({reason}).")
        return 0
    if args.device == "gpu":
        print(environment_line(gpu_name()))
    else:
        print(
            "DRY RUN on the CPU: every gpuqnn variant runs NumPy and the peers run on the "
            "CPU; these are not GPU numbers."
        )
        print(environment_line("cpu (dry run)"))
    rows, variants, peers = measure(args, workloads)
    cli.print_main_table(rows, variants, peers)
    dry = ", DRY RUN: not GPU numbers" if args.device == "cpu" else ""
    print(f"\nTargets (issue 4{dry}):\n")
    print(targets_table(gpu_targets(rows, variants[0].name, [p.name for p in peers])))
    return cli.exit_status(all(row.agrees for row in rows))


if __name__ == "__main__":
    sys.exit(main())

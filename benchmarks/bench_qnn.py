"""Time gpuqnn's EstimatorQNN / SamplerQNN on the CPU against its peers, side by side in one run.

Every workload is timed for three passes: ``forward``, ``backward`` (weight gradients only) and
``backward+input_grads``, for each gpuqnn variant (gradient method x dtype; the first is the
headline) and each peer (qiskit-machine-learning's default networks, PennyLane default.qubit +
torch backprop, PennyLane-Lightning adjoint; see ``benchmarks/peers.py``). Before it is timed,
everything is checked against the headline on the samples it runs. One markdown table of
seconds and ratios follows, then the issues' targets with a verdict each.

Options add the memory-bandwidth bound of the parameter-shift passes (on by default), the
100,000-sample memory check (``--memory``) and the scaling plots (``--plots``).

Usage::

    python -m benchmarks.bench_qnn --quick
    python -m benchmarks.bench_qnn --memory --plots
    python -m benchmarks.bench_qnn --workloads zz8-estimator --peers pennylane-backprop
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.bandwidth import shift_bound
from benchmarks.cli import (
    add_common_arguments,
    check_counts,
    exit_status,
    print_main_table,
    run_workloads,
)
from benchmarks.implementations import Options, Variant
from benchmarks.measure import BACKWARD_PASSES, Row
from benchmarks.memory_check import MAX_MEMORY, SAMPLES, memory_table
from benchmarks.memory_check import run_in_subprocess as memory_figures
from benchmarks.peers import CPU_PEERS, available_peers
from benchmarks.report import (
    Target,
    environment_line,
    ratio_target,
    render,
    seconds_text,
    targets_table,
)
from benchmarks.threads import fix_threads
from benchmarks.workloads import WORKLOADS, by_name

DEFAULT_VARIANTS = ("auto/c128", "adjoint/c128", "shift/c128", "auto/c64")
"""Headline first: what a user gets by default (auto method, complex128)."""

PENNYLANE_PEERS = ("pennylane-backprop", "lightning-adjoint")
"""The peers of issue 5's 5x target."""

SPEED_ROWS = (("zz8-estimator", 256), ("zz8-sampler-parity", 256), ("zz12-estimator", 64))
"""Issue 5's backward workloads and batches."""


def bandwidth_table(
    rows: Sequence[Row], variants: Sequence[Variant], seed: int, max_memory: int | None
) -> tuple[str, list[float]]:
    """The parameter-shift variants' backward times against their memory-bandwidth bounds, on
    the ZZ workloads of :data:`SPEED_ROWS` (the tutorial networks' states are a few bytes).

    Returns:
        The markdown table and the measured/bound ratios.
    """
    shift = [v for v in variants if v.gradient_method == "parameter_shift"]
    lines, ratios = [], []
    workloads = {w.name: w for w in WORKLOADS}
    bound_workloads = {name for name, _batch in SPEED_ROWS}
    for row in rows:
        if row.pass_name not in BACKWARD_PASSES or row.workload not in bound_workloads:
            continue
        spec = workloads[row.workload].build()
        inputs, weights = spec.random_data(row.batch, seed)
        for variant in shift:
            measured = row.seconds(variant.name)
            if measured is None:
                continue
            network = variant.build(spec, max_memory).network
            bound = shift_bound(
                network, inputs, weights, input_gradients=row.pass_name == "backward+input_grads"
            )
            ratio = measured / bound.seconds
            ratios.append(ratio)
            lines.append(
                [
                    row.workload,
                    row.pass_name,
                    variant.name,
                    str(row.batch),
                    f"{bound.traffic.row_blocks:,}",
                    f"{bound.traffic.bytes / 2**20:,.0f}",
                    f"{bound.traffic.state_bytes / 2**20:.2f}",
                    str(bound.threads),
                    f"{bound.bandwidth / 1e9:.1f}",
                    seconds_text(bound.seconds),
                    seconds_text(measured),
                    f"{ratio:.1f}x",
                ]
            )
    header = [
        "workload",
        "pass",
        "variant",
        "batch",
        "row-blocks",
        "MiB moved",
        "state MiB",
        "threads",
        "copy GB/s",
        "bound s",
        "measured s",
        "measured/bound",
    ]
    return render(header, lines, numeric=list(range(3, 12))), ratios


def cpu_targets(
    rows: Sequence[Row],
    headline: str,
    peers: Sequence[str],
    shift_ratios: Sequence[float],
    memory: dict | None,
) -> list[Target]:
    """Issue 5's targets, evaluated on this run."""
    fast = [p for p in PENNYLANE_PEERS if p in peers]
    targets = []
    for workload, batch in SPEED_ROWS:
        for pass_name in BACKWARD_PASSES:
            targets.append(ratio_target(rows, workload, pass_name, headline, fast, 5, batch))
    if "qiskit-ml" in peers:
        targets.append(
            ratio_target(
                rows, "zz8-estimator", "backward+input_grads", headline, ["qiskit-ml"], 1000, 256
            )
        )
    worst = max(shift_ratios, default=None)
    targets.append(
        Target(
            "parameter shift (forced) within 2x of the memory-bandwidth bound",
            "not measured" if worst is None else f"worst {worst:.1f}x",
            None if worst is None else worst <= 2,
        )
    )
    if memory is None:
        targets.append(
            Target(
                f"{SAMPLES:,} samples, 8 qubits: peak within max_memory",
                "not measured (--memory)",
                None,
            )
        )
    else:
        peak = max(p["peak_bytes"] for p in memory["passes"])
        targets.append(
            Target(
                f"{memory['samples']:,} samples, 8 qubits: peak within max_memory",
                f"{peak / 2**20:.1f} MiB of {memory['max_memory'] / 2**20:.0f} MiB",
                peak <= memory["max_memory"],
            )
        )
    return targets


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, WORKLOADS, CPU_PEERS, repeat=3)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(DEFAULT_VARIANTS),
        metavar="METHOD/DTYPE",
        help="gpuqnn variants, the headline first: METHOD auto|adjoint|shift, "
        f"DTYPE c128|c64 (default: {' '.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads for every side: CPU affinity, XLA and torch (default 0: each side's "
        "default on all cores)",
    )
    parser.add_argument(
        "--no-bound", action="store_true", help="skip the parameter-shift memory-bandwidth bound"
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help=f"also run the {SAMPLES:,}-sample memory check (8 qubits, "
        f"max_memory {MAX_MEMORY >> 20} MiB), in a fresh process",
    )
    parser.add_argument(
        "--plots",
        nargs="?",
        const="benchmarks/results",
        default=None,
        metavar="DIR",
        help="also sweep batch size and qubit count and write "
        "log-log PNGs to DIR (default benchmarks/results)",
    )
    args = parser.parse_args(argv)
    check_counts(parser, args)
    try:
        args.variants = [Variant.parse(v) for v in args.variants]
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the tables.

    Returns:
        0, or 1 when an implementation disagreed with the headline on some workload.
    """
    args = parse_args(argv)
    try:
        threads_line = fix_threads(args.threads or None)
    except ValueError as exc:
        print(exc)
        return 2
    options = Options("cpu")
    variants = args.variants
    print(environment_line("cpu, gpuqnn NumPy engine"))
    print(threads_line)
    peers = available_peers(args.peers, options)
    peer_names = [p.name for p in peers]

    rows = run_workloads(by_name(WORKLOADS, args.workloads), args, variants, peers, options)
    print_main_table(rows, variants, peers)

    ratios: list[float] = []
    if not args.no_bound:
        table, ratios = bandwidth_table(rows, variants, args.seed, None)
        if ratios:
            print(
                "\nParameter shift against the memory-bandwidth bound (bytes every block must "
                "read and write / measured copy bandwidth):\n"
            )
            print(table)

    memory = None
    if args.memory:
        samples = 2_000 if args.quick else SAMPLES
        memory = memory_figures(samples, MAX_MEMORY)
        print(
            f"\nMemory: {samples:,} samples under max_memory (tracemalloc peak beyond the "
            "returned arrays; fresh process):\n"
        )
        print(memory_table(memory))

    if args.plots:
        from benchmarks.plots import write_plots  # noqa: PLC0415 - needs matplotlib

        print()
        write_plots(
            Path(args.plots),
            variants,
            peers,
            options,
            quick=args.quick,
            repeat=args.repeat,
            seed=args.seed,
        )

    print("\nTargets (issue 5):\n")
    print(targets_table(cpu_targets(rows, variants[0].name, peer_names, ratios, memory)))
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())

"""Time gpuqnn's EstimatorQNN / SamplerQNN on the CPU against its peers, side by side in one run.

Forward, backward and backward with input gradients of every workload, for each gpuqnn variant
(the first is the headline everything is checked against) and each peer; then the
parameter-shift memory-bandwidth bound, the optional 100,000-sample memory check and plots, and
issue 5's targets (README, "The CPU table").
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    import _as_script  # type: ignore[import-not-found]  # noqa: F401

import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import cli
from benchmarks.bandwidth import shift_bound
from benchmarks.implementations import Options, Variant
from benchmarks.measure import BACKWARD_PASSES, Row
from benchmarks.memory_check import MAX_MEMORY, SAMPLES, memory_table, run_in_subprocess
from benchmarks.peers import CPU_PEERS, available_peers
from benchmarks.report import (
    Target,
    environment_line,
    ratio_target,
    render,
    seconds_text,
    targets_table,
)
from benchmarks.workloads import WORKLOADS, by_name

DEFAULT_VARIANTS = ("auto/c128", "adjoint/c128", "shift/c128/numpy", "auto/c64")
"""The headline (what ``auto`` runs: the native engine where it is built), the block engine's
parameter shift (whose memory-bandwidth bound the bound table checks), complex64."""
PENNYLANE_PEERS = ("pennylane-backprop", "lightning-adjoint")  # issue 5's 5x target
SPEED_ROWS = (("zz8-estimator", 256), ("zz8-sampler-parity", 256), ("zz12-estimator", 64))
BOUND_HEADER = ["workload", "pass", "variant", "batch", "row-blocks", "MiB moved", "state MiB"]
BOUND_HEADER += ["threads", "copy GB/s", "bound s", "measured s", "measured/bound"]


def bandwidth_table(
    rows: Sequence[Row], variants: Sequence[Variant], seed: int
) -> tuple[str, list[float]]:
    """The parameter-shift variants' backward times against their memory-bandwidth bounds on
    the ZZ workloads of :data:`SPEED_ROWS`: the table and the measured/bound ratios. The bound
    models the block engine's passes, so only variants on it (``ENGINE`` ``numpy``) count."""
    shift = [v for v in variants if v.gradient_method == "parameter_shift" and v.engine == "numpy"]
    lines, ratios = [], []
    workloads = {w.name: w for w in WORKLOADS}
    for row in rows:
        if row.pass_name not in BACKWARD_PASSES or row.workload not in dict(SPEED_ROWS):
            continue
        spec = workloads[row.workload].build()
        inputs, weights = spec.random_data(row.batch, seed)
        for variant in shift:
            if (measured := row.seconds(variant.name)) is None:
                continue
            network = variant.build(spec).network
            with_inputs = row.pass_name == "backward+input_grads"
            bound = shift_bound(network, inputs, weights, input_gradients=with_inputs)
            ratios.append(measured / bound.seconds)
            moved = bound.traffic
            lines.append(
                [row.workload, row.pass_name, variant.name, str(row.batch), f"{moved.row_blocks:,}"]
                + [f"{moved.bytes / 2**20:,.0f}", f"{moved.state_bytes / 2**20:.2f}"]
                + [str(bound.threads), f"{bound.bandwidth / 1e9:.1f}", seconds_text(bound.seconds)]
                + [seconds_text(measured), f"{ratios[-1]:.1f}x"]
            )
    return render(BOUND_HEADER, lines, numeric=list(range(3, 12))), ratios


def cpu_targets(
    rows: Sequence[Row],
    headline: str,
    peers: Sequence[str],
    shift_ratios: Sequence[float],
    memory: dict | None,
) -> list[Target]:
    """Issue 5's targets, evaluated on this run."""
    fast = [p for p in PENNYLANE_PEERS if p in peers]
    targets = [
        ratio_target(rows, workload, pass_name, headline, fast, 5, batch)
        for workload, batch in SPEED_ROWS
        for pass_name in BACKWARD_PASSES
    ]
    if "qiskit-ml" in peers:
        workload, pass_name = "zz8-estimator", "backward+input_grads"
        targets.append(ratio_target(rows, workload, pass_name, headline, ["qiskit-ml"], 1000, 256))
    worst = max(shift_ratios, default=None)
    text = "parameter shift (forced) within 2x of the memory-bandwidth bound"
    if worst is None:
        targets.append(Target(text, "not measured", None))
    else:
        targets.append(Target(text, f"worst {worst:.1f}x", worst <= 2))
    if memory is None:
        text = f"{SAMPLES:,} samples, 8 qubits: peak within max_memory"
        targets.append(Target(text, "not measured (--memory)", None))
    else:
        peak, limit = max(p["peak_bytes"] for p in memory["passes"]), memory["max_memory"]
        text = f"{memory['samples']:,} samples, 8 qubits: peak within max_memory"
        targets.append(
            Target(text, f"{peak / 2**20:.1f} MiB of {limit / 2**20:.0f} MiB", peak <= limit)
        )
    return targets


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the tables; 0, 1 when an implementation disagreed with the
    headline, 2 for a refused ``--threads``."""
    parser = cli.common_parser(__doc__, WORKLOADS, CPU_PEERS, repeat=3, threads=0)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(DEFAULT_VARIANTS),
        metavar="METHOD/DTYPE[/ENGINE]",
        help="gpuqnn variants, the headline first: METHOD auto|adjoint|shift, "
        f"DTYPE c128|c64, ENGINE auto|native|numpy (default: {' '.join(DEFAULT_VARIANTS)})",
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
    args = cli.parse_checked(parser, argv)
    try:
        variants = [Variant.parse(v) for v in args.variants]
    except ValueError as exc:
        parser.error(str(exc))
    if (threads := cli.threads_line(args)) is None:
        return 2
    options = Options("cpu")
    print(environment_line("cpu, gpuqnn NumPy engine"))
    print(threads)
    peers = available_peers(args.peers, options)
    rows = cli.run_workloads(by_name(WORKLOADS, args.workloads), args, variants, peers, options)
    cli.print_main_table(rows, variants, peers)

    ratios: list[float] = []
    if not args.no_bound:
        table, ratios = bandwidth_table(rows, variants, args.seed)
        if ratios:
            print(
                "\nParameter shift against the memory-bandwidth bound (bytes every block must "
                f"read and write / measured copy bandwidth):\n\n{table}"
            )
    memory = None
    if args.memory:
        samples = 2_000 if args.quick else SAMPLES
        memory = run_in_subprocess(samples, MAX_MEMORY)
        print(
            f"\nMemory: {samples:,} samples under max_memory (tracemalloc peak beyond the "
            f"returned arrays; fresh process):\n\n{memory_table(memory)}"
        )
    if args.plots:
        from benchmarks.plots import write_plots  # needs matplotlib

        print()
        write_plots(Path(args.plots), variants, peers, options, args.quick, args.repeat, args.seed)
    print("\nTargets (issue 5):\n")
    names = [p.name for p in peers]
    print(targets_table(cpu_targets(rows, variants[0].name, names, ratios, memory)))
    return cli.exit_status(all(row.agrees for row in rows))


if __name__ == "__main__":
    sys.exit(main())

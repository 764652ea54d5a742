"""What the CPU and GPU benchmark scripts share on the command line: the common options, the
loop over workloads, the main table with its legend, and the exit status."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmarks.implementations import Options, Variant
from benchmarks.measure import QUICK_BATCH, QUICK_REF_BATCH, Row, Settings, bench_workload
from benchmarks.peers import Peer
from benchmarks.report import LEGEND, main_table
from benchmarks.workloads import Workload


def add_selection_arguments(
    parser: argparse.ArgumentParser, workloads: Sequence[Workload], peers: Sequence[str]
) -> None:
    """``--workloads`` and ``--peers``."""
    names = [w.name for w in workloads]
    parser.add_argument(
        "--workloads",
        nargs="+",
        choices=names,
        default=names,
        metavar="NAME",
        help=f"workloads to run (default: all of {', '.join(names)})",
    )
    parser.add_argument(
        "--peers",
        nargs="*",
        choices=list(peers),
        default=list(peers),
        metavar="NAME",
        help="implementations to compare with (default: those "
        f"installed of {', '.join(peers)}; none: --peers with no name)",
    )


def add_common_arguments(
    parser: argparse.ArgumentParser,
    workloads: Sequence[Workload],
    peers: Sequence[str],
    repeat: int,
) -> None:
    """``--workloads``, ``--peers``, ``--ref-batch``, ``--quick``, ``--repeat``, ``--atol`` and
    ``--seed``."""
    add_selection_arguments(parser, workloads, peers)
    parser.add_argument(
        "--ref-batch",
        type=int,
        default=None,
        metavar="N",
        help="measure the scaled peers on min(N, batch) samples (default: per peer and workload)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: batch {QUICK_BATCH}, scaled peers on {QUICK_REF_BATCH} samples",
    )
    parser.add_argument(
        "--repeat", type=int, default=repeat, help=f"full-batch runs: best of N (default {repeat})"
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=None,
        help="tolerance of the checks (default 1e-8, 1e-4 with complex64)",
    )
    parser.add_argument("--seed", type=int, default=1234, help="seed of inputs and weights")


def check_counts(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject a ``--ref-batch`` or ``--repeat`` below 1."""
    for flag in ("ref_batch", "repeat"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")


def run_workloads(
    workloads: Sequence[Workload],
    args: argparse.Namespace,
    variants: Sequence[Variant],
    peers: Sequence[Peer],
    options: Options,
) -> list[Row]:
    """Check and time every workload (at a small batch with ``--quick``)."""
    rows: list[Row] = []
    for workload in workloads:
        batch = min(workload.batch, QUICK_BATCH) if args.quick else workload.batch
        settings = Settings(
            batch=batch,
            ref_batch=args.ref_batch or (QUICK_REF_BATCH if args.quick else None),
            repeat=args.repeat,
            atol=args.atol,
            seed=args.seed,
            options=options,
        )
        rows += bench_workload(workload, variants, peers, settings)
    return rows


def main_table_text(rows: Sequence[Row], variants: Sequence[Variant], peers: Sequence[Peer]) -> str:
    """The main table of ``rows``."""
    names = [v.name for v in variants]
    return main_table(rows, names, [p.name for p in peers], {p.name: p.note for p in peers})


def print_main_table(
    rows: Sequence[Row], variants: Sequence[Variant], peers: Sequence[Peer]
) -> None:
    """Print the main table and its legend."""
    print(f"\n{main_table_text(rows, variants, peers)}\n\n{LEGEND}")


def exit_status(rows: Sequence[Row]) -> int:
    """0, or 1 (with a line) when an implementation disagreed with the headline."""
    if all(row.agrees for row in rows):
        return 0
    print(
        "\nMISMATCH: an implementation disagreed with the headline; its timings measure wrong "
        "results."
    )
    return 1

"""What the benchmark scripts share on the command line: the common options and their checks,
the loop over workloads, the main table with its legend, and the exit status."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmarks.implementations import Options, Variant
from benchmarks.measure import QUICK_BATCH, QUICK_REF_BATCH, Row, Settings, bench_workload
from benchmarks.peers import Peer
from benchmarks.report import LEGEND, main_table
from benchmarks.threads import fix_threads
from benchmarks.workloads import Workload


def parser_with_selection(
    doc: str, workloads: Sequence[Workload], peers: Sequence[str], threads: int | None = None
) -> argparse.ArgumentParser:
    """A parser with ``--workloads``, ``--peers``, ``--seed`` and (unless ``threads`` is None)
    ``--threads`` with that default."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
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
        help=f"implementations to compare with (default: those installed of {', '.join(peers)}; "
        "none: --peers with no name)",
    )
    parser.add_argument("--seed", type=int, default=1234, help="seed of inputs and weights")
    if threads is not None:
        parser.add_argument(
            "--threads",
            type=int,
            default=threads,
            help=f"threads for every side: CPU affinity, XLA and torch (default {threads}; 0: "
            "each side's default on all cores)",
        )
    return parser


def common_parser(
    doc: str,
    workloads: Sequence[Workload],
    peers: Sequence[str],
    repeat: int,
    threads: int | None = None,
) -> argparse.ArgumentParser:
    """:func:`parser_with_selection` plus ``--ref-batch``, ``--quick``, ``--repeat``, ``--atol``."""
    parser = parser_with_selection(doc, workloads, peers, threads)
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
        "--atol", type=float, default=None, help="check tolerance (default 1e-8, 1e-4 for c64)"
    )
    return parser


def parse_checked(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    """Parse; reject a ``--ref-batch``, ``--repeat`` or ``--rounds`` below 1 and a negative
    ``--threads``."""
    args = parser.parse_args(argv)
    for flag, least in (("ref_batch", 1), ("repeat", 1), ("rounds", 1), ("threads", 0)):
        value = getattr(args, flag, None)
        if value is not None and value < least:
            parser.error(f"--{flag.replace('_', '-')} must be at least {least}")
    return args


def threads_line(args: argparse.Namespace) -> str | None:
    """:func:`~benchmarks.threads.fix_threads` for ``--threads`` (0: defaults); its line, or
    None after printing why the count is refused."""
    try:
        return fix_threads(args.threads or None)
    except ValueError as exc:
        print(exc)
        return None


def quick_batch(workload: Workload, quick: bool) -> int:
    """The workload's batch, or at most :data:`QUICK_BATCH` in a ``--quick`` run."""
    return min(workload.batch, QUICK_BATCH) if quick else workload.batch


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
        settings = Settings(
            batch=quick_batch(workload, args.quick),
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
    notes = {p.name: p.note for p in peers}
    return main_table(rows, [v.name for v in variants], [p.name for p in peers], notes)


def print_main_table(
    rows: Sequence[Row], variants: Sequence[Variant], peers: Sequence[Peer]
) -> None:
    """Print the main table and its legend."""
    print(f"\n{main_table_text(rows, variants, peers)}\n\n{LEGEND}")


def exit_status(agrees: bool, against: str = "the headline") -> int:
    """0, or 1 (with a line) when an implementation disagreed with ``against``."""
    if agrees:
        return 0
    print(f"\nMISMATCH: an implementation disagreed with {against}; ", end="")
    print("its timings measure wrong results.")
    return 1

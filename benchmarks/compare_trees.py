"""``bench_qnn`` side by side in two checkouts (e.g. a change and the commit before it).

Runs ``python -m benchmarks.bench_qnn`` in each checkout in turn, interleaving the order round
by round, and prints the best seconds of every gpuqnn column per (workload, pass) and the ratio
after/before. Both runs import the gpuqnn of their own checkout (the working directory comes
first on ``sys.path``). Usage::

    git worktree add --detach ../before HEAD~1
    python -m benchmarks.compare_trees ../before . --rounds 5
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    import _as_script  # type: ignore[import-not-found]  # noqa: F401

import argparse
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

BENCH = ["--workloads", "zz8-estimator", "zz12-estimator", "--peers", "--no-bound"]
BENCH += ["--variants", "auto/c128", "adjoint/c128", "shift/c128", "--threads", "1"]
_VARIANT = re.compile(r"^(?:gpuqnn )?(\w+/c\d+)(?: s)?$")
_SECONDS = re.compile(r"^[0-9.e-]+$")

Times = dict[tuple[str, str, str], float]


def parse_table(text: str) -> Times:
    """(workload, pass, variant) -> seconds, from bench_qnn's markdown table in ``text``."""
    times: Times = {}
    header: list[str] | None = None
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == "workload":
            header = cells
        elif header and len(cells) == len(header) and not cells[0].startswith("-"):
            for name, value in zip(header, cells, strict=True):
                variant = _VARIANT.match(name)
                if variant and _SECONDS.match(value):
                    times[(cells[0], cells[1], variant.group(1))] = float(value)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="checkout measured as the reference")
    parser.add_argument("after", type=Path, help="checkout compared with it")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = parser.parse_args(argv)
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    best: dict[str, Times] = {"before": {}, "after": {}}
    for round_ in range(args.rounds):
        for name in sorted(trees, reverse=bool(round_ % 2)):  # alternate who runs first
            command = [sys.executable, "-m", "benchmarks.bench_qnn", *BENCH]
            run = subprocess.run(command, cwd=trees[name], capture_output=True, text=True)
            for key, seconds in parse_table(run.stdout).items():
                best[name][key] = min(seconds, best[name].get(key, seconds))
    print("| workload | pass | variant | before s | after s | after/before |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for key in sorted(best["before"].keys() & best["after"].keys()):
        before, after = best["before"][key], best["after"][key]
        print(f"| {' | '.join(key)} | {before:.5f} | {after:.5f} | {after / before:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Markdown tables: the main table (a row per workload and pass, a column per gpuqnn variant and
peer), the targets table, the shared renderer and the environment line."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import qiskit
import qiskit_machine_learning

import gpuqnn
from benchmarks.measure import Row, Timing

LEGEND = (
    "Seconds per pass for the whole batch. `[N]`: measured on N samples and scaled linearly to "
    "the batch. `=`: the headline's forward code (only the gradient method differs). `n/a`: "
    "the peer cannot run this workload (see the skip lines). `(VJP)`: the peer's backward is "
    "one vector-Jacobian product (forward + one backward of a weighted sum of the outputs, "
    "what a backprop training step needs), not the per-sample Jacobian the others return. "
    "`fastest/gpuqnn`: the fastest peer's seconds over the headline's (first gpuqnn column); "
    "above 1 gpuqnn is faster."
)
VERDICTS = {True: "met", False: "NOT met", None: "not measured"}


def render(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()
) -> str:
    """A markdown table with aligned columns; ``numeric`` columns are right-aligned."""
    lines = [list(header)] + [list(r) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = set(numeric)

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [("-" * (w - 1) + ":") if i in right else "-" * w for i, w in enumerate(widths)]
    return "\n".join([line(lines[0]), line(rule)] + [line(cells) for cells in lines[1:]])


def seconds_text(seconds: float) -> str:
    """Seconds with 4 significant digits."""
    return f"{seconds:.4g}"


def ratio_text(ratio: float) -> str:
    """A speed ratio, e.g. ``12.3x``, or ``-``."""
    if not math.isfinite(ratio):
        return "-"
    return f"{ratio:.3g}x" if ratio < 1000 else f"{ratio:,.0f}x"


def cell_text(row: Row, name: str) -> str:
    """A cell's text: seconds (with ``[N]`` when scaled from N samples), or its note."""
    cell = row.cells.get(name, "")
    if not isinstance(cell, Timing):
        return cell
    text = seconds_text(cell.seconds)
    return text if cell.measured >= row.batch else f"{text} [{cell.measured}]"


def fastest(
    seconds: Callable[[str], float | None], names: Sequence[str]
) -> tuple[str, float] | None:
    """The fastest of the columns ``names`` that have a time: (name, seconds)."""
    timed = [(s, n) for n in names if (s := seconds(n)) is not None]
    return None if not timed else min(timed)[::-1]


def main_table(
    rows: Sequence[Row], variants: Sequence[str], peers: Sequence[str], notes: dict[str, str]
) -> str:
    """Workload, pass, batch, a column per variant and peer, the fastest peer and its ratio to
    the headline (the first variant)."""
    header = ["workload", "pass", "batch", f"gpuqnn {variants[0]} s", *variants[1:]]
    header += [f"{p} {notes[p]}".strip() if p in notes else p for p in peers]
    header += ["fastest peer", "fastest/gpuqnn"]
    lines = []
    for row in rows:
        workload = row.workload if row.agrees else f"{row.workload} (MISMATCH)"
        cells = [workload, row.pass_name, str(row.batch)]
        cells += [cell_text(row, name) for name in [*variants, *peers]]
        best, headline = fastest(row.seconds, peers), row.seconds(variants[0])
        cells += (
            ["-", "-"]
            if best is None or not headline
            else [best[0], ratio_text(best[1] / headline)]
        )
        lines.append(cells)
    return render(header, lines, [2, *range(3, 3 + len(variants) + len(peers)), len(header) - 1])


@dataclass(frozen=True)
class Target:
    """One of the issues' targets: what is asked, what this run measured, whether it is met
    (None: not measured in this run)."""

    target: str
    measured: str
    met: bool | None


def find_row(rows: Sequence[Row], workload: str, pass_name: str) -> Row | None:
    """The row of ``workload`` and ``pass_name``, if it was run."""
    return next((r for r in rows if r.workload == workload and r.pass_name == pass_name), None)


def seconds_target(
    rows: Sequence[Row], workload: str, pass_name: str, headline: str, limit: float, batch: int
) -> Target:
    """``headline`` under ``limit`` seconds on one row, at the issue's ``batch``."""
    row = find_row(rows, workload, pass_name)
    text = f"{workload} {pass_name} (batch {batch}) under {limit * 1e3:g} ms"
    seconds = None if row is None or row.batch != batch else row.seconds(headline)
    if seconds is None:
        return Target(text, "not run at this batch", None)
    return Target(text, f"{seconds * 1e3:.3g} ms", seconds < limit)


def ratio_target(
    rows: Sequence[Row],
    workload: str,
    pass_name: str,
    headline: str,
    peers: Sequence[str],
    minimum: float,
    batch: int,
) -> Target:
    """``headline`` at least ``minimum`` times faster than the fastest of ``peers`` on one row,
    at the issue's ``batch``."""
    row = find_row(rows, workload, pass_name)
    text = f"{workload} {pass_name} (batch {batch}): >= {minimum:g}x the fastest of "
    text += ", ".join(peers)
    if row is None or row.batch != batch:
        return Target(text, "not run at this batch", None)
    best, seconds = fastest(row.seconds, peers), row.seconds(headline)
    if best is None or not seconds:
        return Target(text, "no peer time", None)
    ratio = best[1] / seconds
    return Target(text, f"{ratio_text(ratio)} ({best[0]})", ratio >= minimum)


def targets_table(targets: Sequence[Target]) -> str:
    """The targets as a markdown table."""
    rows = [[t.target, t.measured, VERDICTS[t.met]] for t in targets]
    return render(["target", "measured", "verdict"], rows)


PEER_DISTRIBUTIONS = ("pennylane", "pennylane-lightning", "torch", "jax", "jaxlib")
PEER_DISTRIBUTIONS += ("tensorcircuit-ng", "cotengra", "qiskit-aer", "qiskit-aer-gpu")


def environment_line(device: str) -> str:
    """One line describing the software (the peers' packages where installed) and machine."""
    peers = []
    for name in PEER_DISTRIBUTIONS:
        try:
            peers.append(f", {name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return (
        f"gpuqnn {getattr(gpuqnn, '__version__', '?')} on {device}; qiskit {qiskit.__version__}, "
        f"qiskit-machine-learning {qiskit_machine_learning.__version__}, numpy {np.__version__}"
        + "".join(peers)
        + f"; python {platform.python_version()}, {os.cpu_count()} CPUs ({platform.machine()})"
    )

"""Scaling sweeps and their log-log plots (``bench_qnn --plots``; README, "Plots"): the ZZ
estimator's backward with input gradients against batch size and qubit count, for the variants,
the peers and the parameter-shift bound."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.bandwidth import shift_bound
from benchmarks.implementations import Implementation, Options, Unsupported, Variant
from benchmarks.measure import time_pass
from benchmarks.peers import Peer
from benchmarks.report import render, seconds_text
from benchmarks.workloads import QNNSpec, zz_estimator

PASS = "backward+input_grads"
BATCHES, QUBITS, QUBIT_BATCH = (16, 64, 256, 1024, 4096), (4, 6, 8, 10, 12, 14), 64
QUICK_BATCHES, QUICK_QUBITS = (4, 16), (2, 4)
SWEEP_REF = {"qiskit-ml": 2, "lightning-adjoint": 8}  # samples the scaled peers run in sweeps


@dataclass
class Series:
    """One line of a plot: per point whether it was ``scaled`` from fewer samples; ``style``
    ``measured``, ``scaled`` (the whole line from one measurement) or ``bound``."""

    name: str
    label: str = ""
    x: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    scaled: list[bool] = field(default_factory=list)
    style: str = "measured"

    def __post_init__(self) -> None:
        self.label = self.label or self.name

    def add(self, x: int, seconds: float, scaled: bool = False) -> None:
        """Append a point."""
        self.x.append(x)
        self.seconds.append(seconds)
        self.scaled.append(scaled)


@dataclass(frozen=True)
class Contender:
    """A gpuqnn variant or a peer in a sweep: ``samples`` per network and batch (None: all)."""

    name: str
    build: Callable[[QNNSpec], Implementation]
    samples: Callable[[QNNSpec, int], int | None]
    scaled: bool = False


def contenders(
    variants: Sequence[Variant], peers: Sequence[Peer], options: Options, quick: bool
) -> list[Contender]:
    """The variants (full batch) and the peers (with their sample policies) of a sweep."""
    result = [Contender(f"gpuqnn {v.name}", v.build, lambda spec, batch: None) for v in variants]
    for peer in peers:
        ref = 1 if quick else SWEEP_REF.get(peer.name, 8)

        def samples(spec: QNNSpec, batch: int, peer: Peer = peer, ref: int = ref) -> int | None:
            return peer.samples(spec, None, batch, ref)

        def build(spec: QNNSpec, peer: Peer = peer) -> Implementation:
            return peer.factory(spec, options)

        result.append(Contender(f"{peer.name} {peer.note}".strip(), build, samples, peer.scaled))
    return result


def sweep(
    points: Sequence[int],
    network: Callable[[int], tuple[QNNSpec, int]],
    entrants: Sequence[Contender],
    shift: Sequence[Variant],
    repeat: int,
    seed: int,
    proportional: bool,
) -> list[Series]:
    """Time :data:`PASS` at every point (``network``: x -> (network, batch)) for every
    contender, plus the bound of the ``shift`` variants; with ``proportional`` a scaled peer is
    measured once and drawn proportional to the batch."""
    series = {c.name: Series(c.name) for c in entrants}
    bounds = {
        v.name: Series(
            f"bound of {v.name}", f"memory-bandwidth bound of gpuqnn {v.name}", style="bound"
        )
        for v in shift
    }
    once: dict[str, float] = {}
    for x in points:
        spec, batch = network(x)
        inputs, weights = spec.random_data(batch, seed)
        for contender in entrants:
            line = series[contender.name]
            try:
                runner = contender.build(spec)
            except Unsupported:
                continue
            samples = contender.samples(spec, batch)
            if proportional and contender.scaled:
                if contender.name not in once:
                    timing, _ = time_pass(runner, PASS, inputs, weights, 1, samples)
                    once[contender.name] = timing.seconds / batch
                    plural = "s" if timing.measured > 1 else ""
                    line.label = f"{contender.name} (scaled from {timing.measured} sample{plural})"
                    line.style = "scaled"
                line.add(x, once[contender.name] * batch, True)
                continue
            timing, _ = time_pass(runner, PASS, inputs, weights, repeat, samples)
            line.add(x, timing.seconds, timing.measured < batch)
        for variant in shift:
            network_ = variant.build(spec).network
            bounds[variant.name].add(x, shift_bound(network_, inputs, weights, True).seconds)
        print(
            f"  swept {x}: "
            + ", ".join(
                f"{s.name} {seconds_text(s.seconds[-1])}"
                for s in [*series.values(), *bounds.values()]
                if s.x and s.x[-1] == x
            )
        )
    for line in series.values():
        if line.style == "measured" and any(line.scaled):
            line.label += " (open markers: fewer samples, scaled)"
    return [s for s in [*series.values(), *bounds.values()] if s.x]


def sweep_table(series: Sequence[Series], xlabel: str) -> str:
    """The sweep's seconds as a markdown table (``*``: scaled from fewer samples)."""
    xs = sorted({x for s in series for x in s.x})
    rows = []
    for x in xs:
        cells = [str(x)]
        for s in series:
            if x in s.x:
                i = s.x.index(x)
                cells.append(seconds_text(s.seconds[i]) + ("*" if s.scaled[i] else ""))
            else:
                cells.append("-")
        rows.append(cells)
    header = [xlabel] + [s.name for s in series]
    return render(header, rows, numeric=list(range(len(header))))


def plot(series: Sequence[Series], xlabel: str, title: str, path: Path) -> None:
    """Write a log-log PNG of ``series``."""
    import matplotlib  # noqa: PLC0415 - optional, benchmarks only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for s in series:
        x, y = np.asarray(s.x), np.asarray(s.seconds)
        if s.style != "measured":  # a bound, or a line scaled from one measurement
            ax.plot(x, y, "k--" if s.style == "bound" else ":", label=s.label)
            continue
        (line,) = ax.plot(x, y, "-", label=s.label)
        scaled = np.asarray(s.scaled)
        ax.plot(x[~scaled], y[~scaled], "o", color=line.get_color())
        ax.plot(x[scaled], y[scaled], "o", mfc="none", color=line.get_color())
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    xs = sorted({x for s in series for x in s.x})
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("seconds per pass")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_plots(
    directory: Path,
    variants: Sequence[Variant],
    peers: Sequence[Peer],
    options: Options,
    quick: bool = False,
    repeat: int = 3,
    seed: int = 1234,
) -> list[Path]:
    """Run both sweeps, print their tables, write ``time_vs_batch.png`` and
    ``time_vs_qubits.png`` to ``directory``; returns the paths."""
    entrants = contenders(variants, peers, options, quick)
    # the bound models the block engine's passes: only a shift variant on it (ENGINE numpy)
    shift = [v for v in variants if v.gradient_method == "parameter_shift" and v.engine == "numpy"][
        :1
    ]
    batches, qubits = (QUICK_BATCHES, QUICK_QUBITS) if quick else (BATCHES, QUBITS)
    qubit_batch = 4 if quick else QUBIT_BATCH
    paths = []
    for name, xlabel, title in (
        ("time_vs_batch.png", "batch size", f"8-qubit ZZ estimator, {PASS}"),
        ("time_vs_qubits.png", "qubits", f"ZZ estimator at batch {qubit_batch}, {PASS}"),
    ):
        by_batch = xlabel == "batch size"  # a peer measured once is drawn proportional to it

        def network(x: int, by_batch: bool = by_batch) -> tuple[QNNSpec, int]:
            return (zz_estimator(8), x) if by_batch else (zz_estimator(x), qubit_batch)

        print(f"Sweep: {title}")
        points = batches if by_batch else qubits
        series = sweep(points, network, entrants, shift, repeat, seed, by_batch)
        path = directory / name
        plot(series, xlabel, title, path)
        print(
            f"\n{sweep_table(series, xlabel.split()[0])}\n\n(* scaled from fewer samples) "
            f"-> {path}\n"
        )
        paths.append(path)
    return paths

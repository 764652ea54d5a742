"""Checking and timing: every implementation of a workload is checked against gpuqnn's headline
on the samples it is timed on; full-batch ones are timed as the best of ``repeat`` calls after a
warm-up, scaled peers once on a few samples after a single-sample warm-up (scaled linearly);
every timed call is bracketed by the implementation's ``sync``."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.implementations import VJP, Gradients, Implementation, Options, Unsupported, Variant
from benchmarks.workloads import Workload

PASSES = ("forward", "backward", "backward+input_grads")  # in table order
BACKWARD_PASSES = PASSES[1:]
QUICK_BATCH = 8  # samples per pass in --quick runs
QUICK_REF_BATCH = 2  # samples the scaled peers are measured on in --quick runs
SAME_AS_HEADLINE = "="  # the cell of a variant whose forward is the headline's own code


def run_pass(runner: Implementation, name: str, inputs: np.ndarray, weights: np.ndarray) -> Any:
    """Run one of :data:`PASSES` and return its result."""
    if name == "forward":
        return runner.forward(inputs, weights)
    return runner.backward(inputs, weights, input_gradients=name == "backward+input_grads")


@functools.cache
def vjp_cotangent(shape: tuple[int, ...]) -> np.ndarray:
    """The cotangent of ``(B, *output_shape)`` outputs that VJP peers contract with: uniform in
    [0.5, 1.5) from a fixed seed (not all ones: a sampler's probabilities sum to one, so the
    gradient of their plain sum is identically zero and would check nothing)."""
    cotangent = np.random.default_rng(0).uniform(0.5, 1.5, size=shape)
    cotangent.flags.writeable = False
    return cotangent


def contract(gradients: Gradients) -> Gradients:
    """Per-sample Jacobians ``(B, *out, I)``, ``(B, *out, W)`` -> the VJP layout: ``(B, I)``
    and ``(W,)``, contracted with :func:`vjp_cotangent`."""
    result = []
    for k, jacobian in enumerate(gradients):
        if jacobian is None:
            result.append(None)
            continue
        jacobian = np.asarray(jacobian)
        weights = vjp_cotangent(jacobian.shape[:-1])
        per_sample = np.einsum(
            "bo,bop->bp",
            weights.reshape(weights.shape[0], -1),
            jacobian.reshape(jacobian.shape[0], -1, jacobian.shape[-1]),
        )
        result.append(per_sample if k == 0 else per_sample.sum(axis=0))
    return result[0], result[1]


def max_abs_diff(ours: Any, theirs: Any) -> float:
    """Largest absolute difference between two results (arrays or tuples of arrays/None);
    ``inf`` when their structures differ."""
    if isinstance(ours, tuple) or isinstance(theirs, tuple):
        if not (isinstance(ours, tuple) and isinstance(theirs, tuple)) or len(ours) != len(theirs):
            return math.inf
        return max((max_abs_diff(a, b) for a, b in zip(ours, theirs, strict=True)), default=0.0)
    if ours is None or theirs is None:
        return 0.0 if ours is None and theirs is None else math.inf
    a, b = np.asarray(ours), np.asarray(theirs)
    if a.shape != b.shape:
        return math.inf
    return float(np.max(np.abs(a - b), initial=0.0))


@dataclass(frozen=True)
class Timing:
    """A pass's time scaled to the batch, and the samples actually run."""

    seconds: float
    measured: int


Cell = Timing | str  # a time, or why there is none (``n/a``, :data:`SAME_AS_HEADLINE`)


@dataclass
class Row:
    """A workload's pass: column name -> cell (variants first, then peers), and whether every
    implementation agreed with the headline on the workload."""

    workload: str
    pass_name: str
    batch: int
    cells: dict[str, Cell] = field(default_factory=dict)
    agrees: bool = True

    def seconds(self, name: str) -> float | None:
        """The time of column ``name``, or None when it has none."""
        cell = self.cells.get(name)
        return cell.seconds if isinstance(cell, Timing) else None


@dataclass(frozen=True)
class Settings:
    """How a workload is measured (``ref_batch``: the scaled peers' samples, None for each
    peer's or workload's own; ``atol``: None for the headline dtype's)."""

    batch: int
    ref_batch: int | None = None
    repeat: int = 3
    atol: float | None = None
    seed: int = 1234
    options: Options = field(default_factory=Options)
    max_memory: int | None = None


class Checker:
    """Compares results with the headline's (cached per pass and sample count), records a
    mismatch in :attr:`agrees`."""

    def __init__(self, headline: Implementation, atol: float) -> None:
        self.headline, self.atol, self.agrees = headline, atol, True
        self.cache: dict[tuple[str, int], Any] = {}

    def check(
        self, runner: Implementation, name: str, got: Any, inputs: np.ndarray, w: Any, atol: float
    ) -> str:
        """Compare ``got`` with the headline's result (contracted for a VJP runner): ``"PASS OK
        (max |diff| ...)"`` or ``"... MISMATCH ..."``."""
        key = (name, inputs.shape[0])
        if key not in self.cache:
            self.cache[key] = run_pass(self.headline, name, inputs, w)
        expected = self.cache[key]
        if name != "forward" and runner.gradients == VJP:
            expected = contract(expected)
        diff = max_abs_diff(got, expected)
        ok = diff <= max(atol, self.atol)
        self.agrees &= ok
        return f"{name} {'OK' if ok else 'MISMATCH'} (max |diff| {diff:.1e})"


def resolved_methods(runner: Implementation) -> str:
    """The gradient methods a gpuqnn runner's backward passes take (``auto`` resolved)."""
    network = runner.network
    methods = []
    for input_gradients in (False, True):
        network.input_gradients = input_gradients
        methods.append(str(network.resolved_gradient_method()))
    return f"{methods[0]} (weights), {methods[1]} (with input gradients)"


def time_pass(
    runner: Implementation,
    name: str,
    inputs: np.ndarray,
    weights: np.ndarray,
    repeat: int,
    scaled_from: int | None = None,
) -> tuple[Timing, Any]:
    """Time pass ``name`` for the batch of ``inputs``: best of ``repeat`` after a warm-up, or
    with ``scaled_from`` one call on that many samples after a single-sample warm-up (one-off
    setup is not scaled up), scaled to the batch. Returns the timing and the last result."""
    batch = inputs.shape[0]
    n = batch if scaled_from is None else max(1, min(scaled_from, batch))
    run_pass(runner, name, inputs if scaled_from is None else inputs[:1], weights)  # warm-up
    best, result = math.inf, None
    for _ in range(repeat if scaled_from is None else 1):
        runner.sync()  # device work is counted, earlier work not
        start = time.perf_counter()
        result = run_pass(runner, name, inputs[:n], weights)
        runner.sync()
        best = min(best, time.perf_counter() - start)
    return Timing(best * batch / n, n), result


def bench_workload(
    workload: Workload, variants: Sequence[Variant], peers: Sequence[Any], settings: Settings
) -> list[Row]:
    """Check and time one workload for every variant (the first is the headline) and peer
    (:class:`benchmarks.peers.Peer`); prints a check line per implementation. Returns a row per
    pass."""
    batch, spec = settings.batch, workload.build()
    inputs, weights = spec.random_data(batch, settings.seed)
    first = variants[0]
    headline = first.build(spec, settings.max_memory)
    atol = settings.atol if settings.atol is not None else first.tolerance()
    checker = Checker(headline, atol)
    rows = [Row(workload.name, name, batch) for name in PASSES]
    print(f"method {workload.name}: {first.name} runs backward with {resolved_methods(headline)}")
    for entry in [*variants, *peers]:
        name, is_variant = entry.name, isinstance(entry, Variant)
        try:
            if is_variant:
                runner = headline if entry is first else entry.build(spec, settings.max_memory)
            else:
                runner = entry.factory(spec, settings.options)
        except Unsupported as exc:
            print(f"skip {workload.name} on {name}: {exc}")
            for row in rows:
                row.cells[name] = "n/a"
            continue
        if is_variant:
            scaled_from, tolerance = None, entry.tolerance()
        else:
            scaled_from = entry.samples(spec, workload, batch, settings.ref_batch)
            tolerance = max(atol, entry.atol or 0.0)
        notes, measured = [], batch
        for row in rows:
            if row.pass_name == "forward" and entry is not first and is_variant:
                if entry.same_forward(first):
                    row.cells[name] = SAME_AS_HEADLINE
                    continue
            timing, got = time_pass(
                runner, row.pass_name, inputs, weights, settings.repeat, scaled_from
            )
            row.cells[name], measured = timing, timing.measured
            if entry is first:
                checker.cache[(row.pass_name, batch)] = got
            else:
                sample = inputs[:measured]
                notes.append(checker.check(runner, row.pass_name, got, sample, weights, tolerance))
        if notes:
            kind = " (VJP)" if runner.gradients == VJP else ""
            print(
                f"check {workload.name}: {name}{kind} vs {first.name} on {measured} samples: "
                + ", ".join(notes)
            )
        if compiled := getattr(runner, "compile_seconds", None):
            times = ", ".join(f"{p} {sec:.2f} s" for p, sec in compiled.items())
            print(
                f"compile {workload.name}: {name} (trace + XLA compile, first call of each "
                f"pass, not in the table): {times}"
            )
    for row in rows:
        row.agrees = checker.agrees
    return rows

"""Timing and checking: every implementation of a workload is checked against gpuqnn's headline
configuration on the samples it is timed on, then timed.

- gpuqnn variants and full-batch peers: one warm-up call on the full batch (first calls build
  caches and, on a GPU, compile kernels), then the best of ``repeat`` calls.
- Scaled peers: one single-sample warm-up (so that one-off setup is not scaled up), then one call
  on ``n`` samples, the time scaled linearly to the batch.
- Every timed call is bracketed by the runner's ``sync`` (waits for a CUDA device's queue).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.implementations import VJP, Gradients, Implementation, Options, Unsupported, Variant
from benchmarks.workloads import Workload

PASSES = ("forward", "backward", "backward+input_grads")
"""The timed passes, in table order."""

BACKWARD_PASSES = PASSES[1:]

QUICK_BATCH = 8
"""Samples per pass in ``--quick`` smoke runs."""

QUICK_REF_BATCH = 2
"""Samples the scaled peers are measured on in ``--quick`` smoke runs."""

SAME_AS_HEADLINE = "="
"""Table cell of a variant whose forward pass is the headline's own code."""


def run_pass(runner: Implementation, name: str, inputs: np.ndarray, weights: np.ndarray) -> Any:
    """Run one of :data:`PASSES` and return its result."""
    if name == "forward":
        return runner.forward(inputs, weights)
    return runner.backward(inputs, weights, input_gradients=name == "backward+input_grads")


def _no_sync() -> None:
    """Nothing to wait for."""


def timed(
    fn: Callable[[], Any], repeat: int = 1, sync: Callable[[], None] = _no_sync
) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls of ``fn`` and the last call's result; ``sync`` runs
    before the clock starts and before it stops (device work is counted, earlier work not)."""
    best, result = math.inf, None
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        result = fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best, result


@functools.cache
def vjp_cotangent(shape: tuple[int, ...]) -> np.ndarray:
    """The cotangent of ``(B, *output_shape)`` outputs that VJP peers contract with: uniform in
    [0.5, 1.5) from a fixed seed (not all ones: a sampler's probabilities sum to one, so the
    gradient of their plain sum is identically zero and would check nothing)."""
    cotangent = np.random.default_rng(0).uniform(0.5, 1.5, size=shape)
    cotangent.flags.writeable = False
    return cotangent


def contract(gradients: Gradients) -> Gradients:
    """Per-sample Jacobians ``(B, *out, I)``, ``(B, *out, W)`` -> the VJP layout of
    :data:`~benchmarks.implementations.VJP`: ``(B, I)`` (per sample, over the outputs) and
    ``(W,)`` (over the batch and the outputs), both weighted by :func:`vjp_cotangent`."""
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
    """Largest absolute difference between two results (arrays or tuples of arrays/None).

    Returns ``inf`` when the structures differ (shape, or ``None`` on one side only).
    """
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
    """A time for one pass, already scaled to the workload batch.

    Attributes:
        seconds: The (scaled) time.
        measured: Number of samples actually run.
    """

    seconds: float
    measured: int


Cell = Timing | str
"""A table cell: a time, or why there is none (``n/a``, :data:`SAME_AS_HEADLINE`)."""


@dataclass
class Row:
    """One table row: a workload and pass, timed for every implementation.

    Attributes:
        workload: Workload name.
        pass_name: One of :data:`PASSES`.
        batch: Samples per pass.
        cells: Column name -> its cell (variants first, then peers).
        agrees: Whether every implementation agreed with the headline on this workload.
    """

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
    """How a workload is measured.

    Attributes:
        batch: Samples per pass (gpuqnn and full-batch peers).
        ref_batch: Samples scaled peers are measured on (None: each peer's or workload's own).
        repeat: Full-batch implementations are timed as the best of this many calls.
        atol: Absolute tolerance of the checks (None: per dtype, 1e-8 or 1e-5 for complex64).
        seed: Seed of the random inputs and weights.
        options: Settings of the peers (their device).
        max_memory: gpuqnn's ``max_memory`` (None: its default).
    """

    batch: int
    ref_batch: int | None = None
    repeat: int = 3
    atol: float | None = None
    seed: int = 1234
    options: Options = field(default_factory=Options)
    max_memory: int | None = None


class Checker:
    """Compares results with the headline's and collects one report line per implementation."""

    def __init__(self, workload: str, headline: Implementation, atol: float) -> None:
        self.workload = workload
        self.headline = headline
        self.atol = atol
        self.agrees = True
        self._cache: dict[tuple[str, int], Any] = {}

    def remember(self, name: str, inputs: np.ndarray, result: Any) -> None:
        """Keep the headline's ``result`` of pass ``name`` on ``inputs``."""
        self._cache[(name, inputs.shape[0])] = result

    def expected(self, name: str, inputs: np.ndarray, weights: np.ndarray) -> Any:
        """The headline's result of pass ``name`` on ``inputs`` (cached per sample count)."""
        key = (name, inputs.shape[0])
        if key not in self._cache:
            self._cache[key] = run_pass(self.headline, name, inputs, weights)
        return self._cache[key]

    def check(
        self,
        runner: Implementation,
        name: str,
        got: Any,
        inputs: np.ndarray,
        weights: np.ndarray,
        atol: float,
    ) -> str:
        """Compare ``got`` with the headline's result (contracted for a VJP runner); returns
        ``"PASS OK (max |diff| ...)"`` or ``"... MISMATCH ..."`` and records a mismatch."""
        expected = self.expected(name, inputs, weights)
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
    """Time one pass of ``runner`` for the batch of ``inputs``.

    Args:
        runner: The implementation.
        name: One of :data:`PASSES`.
        inputs: (B, I) inputs of the whole batch.
        weights: (W,) weights.
        repeat: Full-batch runs: best of this many calls after one warm-up call.
        scaled_from: Measure on the first ``min(scaled_from, B)`` samples only: one
            single-sample warm-up call (one-off setup is not scaled up), one timed call, the
            time scaled linearly to B. None: full batch.

    Returns:
        The timing and the last call's result (on the samples it ran).
    """
    batch = inputs.shape[0]
    n = batch if scaled_from is None else max(1, min(scaled_from, batch))
    sample = inputs[:n]
    call = functools.partial(run_pass, runner, name, sample, weights)
    if scaled_from is None:
        call()
    else:
        run_pass(runner, name, inputs[:1], weights)
        repeat = 1
    seconds, result = timed(call, repeat, runner.sync)
    return Timing(seconds * batch / n, n), result


def _not_applicable(rows: Sequence[Row], name: str, reason: Exception) -> None:
    """Mark column ``name`` ``n/a`` in ``rows`` and print why."""
    print(f"skip {rows[0].workload} on {name}: {reason}")
    for row in rows:
        row.cells[name] = "n/a"


def bench_workload(
    workload: Workload, variants: Sequence[Variant], peers: Sequence[Any], settings: Settings
) -> list[Row]:
    """Check and time one workload for every gpuqnn variant and peer; prints a line per
    implementation with its checks.

    Args:
        workload: The workload.
        variants: gpuqnn configurations; the first is the headline everything is checked
            against.
        peers: :class:`benchmarks.peers.Peer` objects, already known to be available.
        settings: How to measure.

    Returns:
        One row per pass.
    """
    batch = settings.batch
    spec = workload.build()
    inputs, weights = spec.random_data(batch, settings.seed)
    headline = variants[0].build(spec, settings.max_memory)
    atol = settings.atol if settings.atol is not None else variants[0].tolerance()
    checker = Checker(workload.name, headline, atol)
    rows = [Row(workload.name, name, batch) for name in PASSES]

    print(
        f"method {workload.name}: {variants[0].name} runs backward with "
        f"{resolved_methods(headline)}"
    )
    for variant in variants:
        try:
            runner = (
                headline if variant is variants[0] else variant.build(spec, settings.max_memory)
            )
        except Unsupported as exc:
            _not_applicable(rows, variant.name, exc)
            continue
        notes = []
        for row in rows:
            if (
                row.pass_name == "forward"
                and variant is not variants[0]
                and variant.same_forward(variants[0])
            ):
                row.cells[variant.name] = SAME_AS_HEADLINE
                continue
            timing, got = time_pass(runner, row.pass_name, inputs, weights, settings.repeat)
            row.cells[variant.name] = timing
            if variant is variants[0]:
                checker.remember(row.pass_name, inputs, got)
            else:
                notes.append(
                    checker.check(runner, row.pass_name, got, inputs, weights, variant.tolerance())
                )
        if notes:
            print(
                f"check {workload.name}: {variant.name} vs {variants[0].name} on {batch} "
                f"samples: {', '.join(notes)}"
            )

    for peer in peers:
        try:
            runner = peer.factory(spec, settings.options)
        except Unsupported as exc:
            _not_applicable(rows, peer.name, exc)
            continue
        scaled_from = peer.samples(spec, workload, batch, settings.ref_batch)
        peer_atol = max(atol, peer.atol or 0.0)
        notes = []
        for row in rows:
            timing, got = time_pass(
                runner, row.pass_name, inputs, weights, settings.repeat, scaled_from
            )
            row.cells[peer.name] = timing
            sample = inputs[: timing.measured]
            notes.append(checker.check(runner, row.pass_name, got, sample, weights, peer_atol))
        kind = " (VJP)" if runner.gradients == VJP else ""
        print(
            f"check {workload.name}: {peer.name}{kind} vs {variants[0].name} on "
            f"{timing.measured} samples: {', '.join(notes)}"
        )
        compiled = getattr(runner, "compile_seconds", None)
        if compiled:
            times = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in compiled.items())
            print(
                f"compile {workload.name}: {peer.name} (trace + XLA compile, first call of "
                f"each pass, not in the table): {times}"
            )

    for row in rows:
        row.agrees = checker.agrees
    return rows

"""Time one training step of gpuqnn against its peers' native vector-Jacobian products (issue 13,
"Training at the speed of one forward pass").

One training step is the model's forward pass plus ``loss.backward()`` with gradients for the
inputs and the weights, ``loss = sum(cotangent * outputs)`` with a fixed random cotangent
(:func:`benchmarks.measure.vjp_cotangent`):

- gpuqnn: ``gpuqnn.TorchConnector(network, dtype=torch.float64)``, the inputs a tensor with
  ``requires_grad=True``, the network built with ``input_gradients=True``;
- ``pennylane-backprop``: PennyLane ``default.qubit`` + torch backprop, one ``backward()``;
- ``tensorcircuit-jax`` / ``tensorcircuit-jax-c64``: TensorCircuit-ng + JAX, ``jit`` of one
  ``jax.vjp`` of ``vmap`` over the batch (complex128 / complex64);
- ``pennylane-jax``: PennyLane ``default.qubit`` + JAX, ``jit`` of one ``jax.vjp``.

Before anything is timed, every peer's outputs and input and weight gradients are checked
against gpuqnn's step (and gpuqnn's step against its network's Jacobians contracted with the
cotangent). Then rounds: each round times one call of every implementation in turn (gpuqnn's
step, gpuqnn's forward, each peer's step), and the table reports the best round of each. JAX
peers are compiled ahead of time before the rounds; their compile seconds have their own
columns.

Usage::

    python -m benchmarks.bench_train --quick
    python -m benchmarks.bench_train
    python -m benchmarks.bench_train --workloads zz8-estimator --peers tensorcircuit-jax
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.cli import add_selection_arguments
from benchmarks.implementations import VJP, Gradients, Implementation, Options, Unsupported
from benchmarks.measure import QUICK_BATCH, contract, max_abs_diff, vjp_cotangent
from benchmarks.peers import TRAIN_PEERS, Peer, available_peers
from benchmarks.report import environment_line, render, seconds_text
from benchmarks.threads import fix_threads
from benchmarks.workloads import TRAIN_WORKLOADS, QNNSpec, Workload, by_name

STEP_TARGET = 4.0
"""Issue 13's target: a training step at most this many times the forward pass."""

ATOL = 1e-8
"""Tolerance of complex128 results, relative to the largest reference value where above 1."""

ATOL_C64 = 1e-4
"""Tolerance of gpuqnn's complex64 step against its complex128 one."""


class ConnectorStep:
    """gpuqnn's training step through ``gpuqnn.TorchConnector`` (float64 tensors).

    ``backward(inputs, weights, True)`` is one step: the connector's forward on a fresh input
    tensor with ``requires_grad=True``, ``loss = (outputs * cotangent).sum()``,
    ``loss.backward()``; it returns the input's and the weight's ``.grad``.

    Args:
        spec: the network.
        dtype: gpuqnn's ``dtype``.
    """

    gradients = VJP

    def __init__(self, spec: QNNSpec, dtype: str = "complex128") -> None:
        import torch  # noqa: PLC0415 - the connector needs torch

        import gpuqnn  # noqa: PLC0415

        cls = gpuqnn.EstimatorQNN if spec.kind == "estimator" else gpuqnn.SamplerQNN
        self.torch = torch
        self.network = cls(**spec.qiskit_kwargs(), input_gradients=True, dtype=dtype)
        self.model = gpuqnn.TorchConnector(
            self.network, initial_weights=np.zeros(self.network.num_weights), dtype=torch.float64
        )
        self.dtype = dtype
        self._cotangents: dict[tuple[int, ...], Any] = {}

    def _set_weights(self, weights: np.ndarray) -> None:
        with self.torch.no_grad():
            self.model.weight.copy_(self.torch.from_numpy(weights))

    def forward(self, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The connector's forward under ``torch.no_grad()``."""
        self._set_weights(weights)
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(inputs)).numpy()

    def backward(self, inputs: np.ndarray, weights: np.ndarray, input_gradients: bool) -> Gradients:
        """One training step; ``((B, I) or None, (W,))`` gradients of the loss."""
        torch = self.torch
        self._set_weights(weights)
        self.model.zero_grad(set_to_none=True)
        x = torch.from_numpy(inputs).requires_grad_(input_gradients)
        outputs = self.model(x)
        shape = tuple(outputs.shape)
        if shape not in self._cotangents:
            self._cotangents[shape] = torch.from_numpy(np.array(vjp_cotangent(shape)))
        (outputs * self._cotangents[shape]).sum().backward()
        input_grads = x.grad.numpy() if input_gradients else None
        return input_grads, self.model.weight.grad.numpy()

    def sync(self) -> None:
        """Nothing to wait for on the CPU."""

    def describe(self) -> str:
        """What it runs."""
        return f"gpuqnn.TorchConnector, float64 tensors, {self.dtype}"


@dataclass
class TrainRow:
    """One workload's results.

    Attributes:
        workload: Workload name.
        batch: Samples per step.
        outputs: Outputs per sample.
        step: Implementation -> best step seconds (``"gpuqnn"`` and each peer).
        forward: gpuqnn's best forward seconds.
        compile: Peer -> seconds of its ahead-of-time compiles (forward and step).
        skipped: Peer -> why it cannot run the workload.
        agrees: Whether every check passed.
    """

    workload: str
    batch: int
    outputs: int
    step: dict[str, float] = field(default_factory=dict)
    forward: float = math.inf
    compile: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    agrees: bool = True

    def fastest_peer(self, peers: Sequence[str]) -> tuple[str, float] | None:
        """The peer with the fastest step: (name, seconds)."""
        timed = [(self.step[p], p) for p in peers if p in self.step]
        if not timed:
            return None
        seconds, name = min(timed)
        return name, seconds


def agreement(got: Any, expected: Any, atol: float) -> tuple[bool, float]:
    """Whether ``got`` matches ``expected`` within ``atol`` times the larger of 1 and the
    largest ``expected`` value (a weight gradient sums the whole batch), and the max |diff|."""
    diff = max_abs_diff(got, expected)
    parts = expected if isinstance(expected, tuple) else (expected,)
    scale = max([1.0, *(float(np.max(np.abs(p))) for p in parts if p is not None)])
    return diff <= atol * scale, diff


def check_line(
    workload: str,
    name: str,
    checks: Sequence[tuple[str, bool, float]],
    samples: int,
    against: str = "gpuqnn",
) -> str:
    """One line with the checks of one implementation."""
    notes = ", ".join(
        f"{what} {'OK' if ok else 'MISMATCH'} (max |diff| {diff:.1e})" for what, ok, diff in checks
    )
    return f"check {workload}: {name} vs {against} on {samples} samples: {notes}"


def _timed_once(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_workload(
    workload: Workload,
    peers: Sequence[Peer],
    batch: int,
    rounds: int,
    seed: int,
    options: Options,
) -> TrainRow:
    """Check, then time in interleaved rounds, one workload; prints the check lines."""
    spec = workload.build()
    inputs, weights = spec.random_data(batch, seed)
    row = TrainRow(workload.name, batch, spec.num_outputs)
    gpuqnn = ConnectorStep(spec)
    reference = gpuqnn.backward(inputs, weights, True)
    reference_out = gpuqnn.forward(inputs, weights)
    network = gpuqnn.network
    network_jacobians = contract(network.backward(inputs, weights))
    ok, diff = agreement(reference, network_jacobians, ATOL)
    row.agrees &= ok
    print(
        check_line(
            workload.name,
            "gpuqnn TorchConnector step",
            [("input and weight grads", ok, diff)],
            batch,
            against="its network's Jacobians contracted with the cotangent",
        )
    )

    single = ConnectorStep(spec, "complex64")
    got = single.backward(inputs, weights, True)
    x_ok, x_diff = agreement(got[0], reference[0], ATOL_C64)
    w_ok, w_diff = agreement(got[1], reference[1], ATOL_C64)
    row.agrees &= x_ok and w_ok
    print(
        check_line(
            workload.name,
            "gpuqnn complex64 step",
            [("input grads", x_ok, x_diff), ("weight grads", w_ok, w_diff)],
            batch,
        )
    )
    calls: dict[str, Callable[[], Any]] = {
        "gpuqnn": lambda: gpuqnn.backward(inputs, weights, True),
        "gpuqnn c64": lambda: single.backward(inputs, weights, True),
        "gpuqnn forward": lambda: gpuqnn.forward(inputs, weights),
    }
    for peer in peers:
        try:
            runner = peer.train(spec, options)
        except Unsupported as exc:
            row.skipped[peer.name] = str(exc)
            print(f"skip {workload.name} on {peer.name}: {exc}")
            continue
        atol = max(ATOL, peer.atol or 0.0)
        out_ok, out_diff = agreement(runner.forward(inputs, weights), reference_out, atol)
        got = runner.backward(inputs, weights, True)
        x_ok, x_diff = agreement(got[0], reference[0], atol)
        w_ok, w_diff = agreement(got[1], reference[1], atol)
        row.agrees &= out_ok and x_ok and w_ok
        checks = [("outputs", out_ok, out_diff), ("input grads", x_ok, x_diff)]
        checks.append(("weight grads", w_ok, w_diff))
        print(check_line(workload.name, peer.name, checks, batch))
        compiled = getattr(runner, "compile_seconds", None)
        if compiled is not None:
            row.compile[peer.name] = sum(compiled.values())
        calls[peer.name] = _bound_step(runner, inputs, weights)

    best = dict.fromkeys(calls, math.inf)
    for _ in range(rounds):
        for name, call in calls.items():
            best[name] = min(best[name], _timed_once(call))
    row.forward = best.pop("gpuqnn forward")
    row.step = best
    return row


def _bound_step(
    runner: Implementation, inputs: np.ndarray, weights: np.ndarray
) -> Callable[[], Any]:
    return lambda: runner.backward(inputs, weights, True)


def ratio_text(ratio: float) -> str:
    """A ratio such as ``3.2x``, or ``-``."""
    return f"{ratio:.3g}x" if math.isfinite(ratio) else "-"


def train_table(rows: Sequence[TrainRow], peers: Sequence[str]) -> str:
    """The table: gpuqnn's step, forward and their ratio, each peer's step and compile
    seconds, the fastest peer and its step over gpuqnn's."""
    header = ["workload", "batch", "outputs", "gpuqnn step s", "gpuqnn forward s", "step/forward"]
    header += ["gpuqnn c64 step s"]
    for peer in peers:
        header += [f"{peer} step s", f"{peer} compile s"]
    header += ["fastest peer", "fastest peer / gpuqnn", "fastest peer / gpuqnn c64"]
    lines = []
    for row in rows:
        step = row.step["gpuqnn"]
        name = row.workload if row.agrees else f"{row.workload} (MISMATCH)"
        cells = [name, str(row.batch), str(row.outputs), seconds_text(step)]
        cells += [seconds_text(row.forward), ratio_text(step / row.forward)]
        cells.append(seconds_text(row.step["gpuqnn c64"]))
        for peer in peers:
            if peer in row.step:
                cells.append(seconds_text(row.step[peer]))
                compiled = row.compile.get(peer)
                cells.append("-" if compiled is None else f"{compiled:.1f}")
            else:
                cells += ["n/a", "n/a"]
        best = row.fastest_peer(peers)
        if best is None:
            cells += ["-", "-", "-"]
        else:
            cells += [best[0], ratio_text(best[1] / step)]
            cells.append(ratio_text(best[1] / row.step["gpuqnn c64"]))
        lines.append(cells)
    return render(header, lines, numeric=list(range(1, len(header) - 2)) + [len(header) - 1])


LEGEND = (
    "Seconds per training step (forward + loss.backward() with input and weight gradients, "
    "loss = sum(cotangent * outputs)) for the whole batch, best of the interleaved rounds. "
    "`step/forward`: gpuqnn's step over its forward pass (issue 13's target: at most "
    f"{STEP_TARGET:g}x). `compile s`: the JAX peers' ahead-of-time trace + XLA compile of "
    "their forward and step, not in the step time (`-`: no compile step). `n/a`: the peer "
    "cannot run the workload. `fastest peer / gpuqnn`: above 1 gpuqnn is faster; "
    "`gpuqnn c64`: gpuqnn in complex64 (the fastest peer is usually a complex64 one)."
)

PEER_TARGET = 5.0
"""Issue 13's other target: a training step at least this many times the fastest peer's."""


def targets_lines(rows: Sequence[TrainRow], peers: Sequence[str] = ()) -> list[str]:
    """Issue 13's targets per workload with their verdicts: step over forward, and the
    fastest peer's step over gpuqnn's (either dtype)."""
    lines = []
    for row in rows:
        best = row.fastest_peer(peers)
        if best is not None:
            ours = min(row.step["gpuqnn"], row.step["gpuqnn c64"])
            speedup = best[1] / ours
            lines.append(
                [
                    f"{row.workload} (batch {row.batch}): step >= {PEER_TARGET:g}x {best[0]}",
                    ratio_text(speedup),
                    "met" if speedup >= PEER_TARGET else "NOT met",
                ]
            )
        ratio = row.step["gpuqnn"] / row.forward
        verdict = "met" if ratio <= STEP_TARGET else "NOT met"
        lines.append(
            [
                f"{row.workload} (batch {row.batch}): step <= {STEP_TARGET:g}x forward",
                ratio_text(ratio),
                verdict,
            ]
        )
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_selection_arguments(parser, TRAIN_WORKLOADS, TRAIN_PEERS)
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved timing rounds, best kept (default 5)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for every side: CPU affinity, XLA and torch (default 1; 0: each "
        "side's default on all cores)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: batch {QUICK_BATCH}, one round",
    )
    parser.add_argument("--seed", type=int, default=1234, help="seed of inputs and weights")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.threads < 0:
        parser.error("--threads must be 0 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table.

    Returns:
        0, or 1 when an implementation disagreed with gpuqnn.
    """
    args = parse_args(argv)
    try:
        threads_line = fix_threads(args.threads or None)
    except ValueError as exc:
        print(exc)
        return 2
    options = Options("cpu")
    print(environment_line("cpu, gpuqnn NumPy engine through gpuqnn.TorchConnector"))
    print(threads_line)
    peers = available_peers(args.peers, options)
    rounds = 1 if args.quick else args.rounds
    rows = []
    for workload in by_name(TRAIN_WORKLOADS, args.workloads):
        batch = min(workload.batch, QUICK_BATCH) if args.quick else workload.batch
        rows.append(bench_workload(workload, peers, batch, rounds, args.seed, options))
    names = [p.name for p in peers]
    print()
    print(train_table(rows, names))
    print()
    print(LEGEND)
    print("\nTargets (issue 13):\n")
    print(render(["target", "measured", "verdict"], targets_lines(rows, names)))
    if all(row.agrees for row in rows):
        return 0
    print("\nMISMATCH: an implementation disagreed with gpuqnn; its timings measure wrong results.")
    return 1


if __name__ == "__main__":
    sys.exit(main())

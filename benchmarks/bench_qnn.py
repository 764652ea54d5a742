"""Time gpuqnn's EstimatorQNN / SamplerQNN against qiskit-machine-learning's default networks.

Every workload is timed for three passes: ``forward``, ``backward`` (weight gradients only) and
``backward+input_grads``. gpuqnn is timed on the full workload batch (one warm-up call, then the
best of ``--repeat`` runs). The peers (by default only ``qiskit-ml``: qiskit-machine-learning's
networks with their default primitives and gradients) are slow, so each is measured once, after a
one-sample warm-up, on the first ``min(--ref-batch, batch)`` samples, and the time is scaled
linearly to the workload batch; the table says when that was done.

Before gpuqnn is timed, its forward pass and gradients are checked against every peer's results on
the peer's samples, and a line per workload and peer says whether they agree.

Adding a peer (PennyLane, ...): write a :data:`RunnerFactory` that turns a :class:`QNNSpec` into an
object with the :class:`Runner` methods and register it in :func:`runner_factories`; it can then
be selected with ``--peers``.

Usage::

    python benchmarks/bench_qnn.py --quick
    python benchmarks/bench_qnn.py --workloads zz8-estimator --ref-batch 8 --device gpu
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import qiskit
import qiskit_machine_learning
from qiskit.circuit import Parameter, QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.neural_networks import EstimatorQNN, NeuralNetwork, SamplerQNN

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)  # this checkout's gpuqnn rather than an installed one

import gpuqnn  # noqa: E402
from gpuqnn.examples import (  # noqa: E402
    parity,
    tutorial_estimator_circuit,
    tutorial_sampler_circuit,
    zz_real_amplitudes,
)

CANDIDATE = "gpuqnn"
"""The implementation every peer is compared with."""

PASSES = ("forward", "backward", "backward+input_grads")
"""The timed passes, in table order."""

Gradients = tuple[np.ndarray | None, np.ndarray | None]


# --------------------------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QNNSpec:
    """An implementation-independent description of one network.

    Attributes:
        kind: ``"estimator"`` or ``"sampler"``.
        circuit: The parametrized circuit (no measurements).
        input_params: Parameters bound to the input features.
        weight_params: Parameters bound to the trainable weights.
        observables: Estimator observables; ``None`` means the default ``Z^n``.
        interpret: Sampler interpret function; ``None`` means the raw bitstring distribution.
        output_shape: Sampler output shape; required when ``interpret`` is given.
    """

    kind: str
    circuit: QuantumCircuit
    input_params: tuple[Parameter, ...]
    weight_params: tuple[Parameter, ...]
    observables: tuple[SparsePauliOp, ...] | None = None
    interpret: Callable[[int], int] | None = None
    output_shape: int | None = None

    def qiskit_kwargs(self) -> dict[str, Any]:
        """Constructor keyword arguments for qiskit-machine-learning-style network classes."""
        kwargs: dict[str, Any] = {
            "circuit": self.circuit,
            "input_params": list(self.input_params),
            "weight_params": list(self.weight_params),
        }
        if self.kind == "estimator" and self.observables is not None:
            kwargs["observables"] = list(self.observables)
        if self.kind == "sampler" and self.interpret is not None:
            kwargs["interpret"] = self.interpret
            kwargs["output_shape"] = self.output_shape
        return kwargs


@dataclass(frozen=True)
class Workload:
    """A network plus the batch it is timed at.

    Attributes:
        name: Short name used on the command line and in the table.
        build: Builds the network description.
        batch: Number of samples per pass.
        ref_batch: Default number of samples the peers are measured on.
    """

    name: str
    build: Callable[[], QNNSpec]
    batch: int
    ref_batch: int


def tutorial_estimator() -> QNNSpec:
    """The qiskit QNN tutorial's EstimatorQNN: 1 qubit, observable ``Y``."""
    qc, inp, weight = tutorial_estimator_circuit()
    return QNNSpec("estimator", qc, (inp,), (weight,), observables=(SparsePauliOp("Y"),))


def tutorial_sampler() -> QNNSpec:
    """The qiskit QNN tutorial's SamplerQNN: 2 qubits, 4 weights, no interpret."""
    qc, inputs, weights = tutorial_sampler_circuit()
    return QNNSpec("sampler", qc, tuple(inputs), tuple(weights))


def zz_estimator(num_qubits: int) -> QNNSpec:
    """ZZ feature map + RealAmplitudes EstimatorQNN with the default ``Z^n`` observable."""
    qc, feature_map, ansatz = zz_real_amplitudes(num_qubits)
    return QNNSpec("estimator", qc, tuple(feature_map.parameters), tuple(ansatz.parameters))


def zz_sampler_parity(num_qubits: int) -> QNNSpec:
    """ZZ feature map + RealAmplitudes SamplerQNN with the parity interpret (2 outputs)."""
    qc, feature_map, ansatz = zz_real_amplitudes(num_qubits)
    return QNNSpec(
        "sampler",
        qc,
        tuple(feature_map.parameters),
        tuple(ansatz.parameters),
        interpret=parity,
        output_shape=2,
    )


WORKLOADS: tuple[Workload, ...] = (
    Workload("tutorial-estimator", tutorial_estimator, batch=1024, ref_batch=1024),
    Workload("tutorial-sampler", tutorial_sampler, batch=1024, ref_batch=1024),
    Workload("zz8-estimator", lambda: zz_estimator(8), batch=256, ref_batch=16),
    Workload("zz8-sampler-parity", lambda: zz_sampler_parity(8), batch=256, ref_batch=16),
    Workload("zz12-estimator", lambda: zz_estimator(12), batch=64, ref_batch=16),
)
"""All workloads, in table order."""

QUICK_BATCH = 8
QUICK_REF_BATCH = 2


# --------------------------------------------------------------------------------------------
# Runners: one per implementation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """Settings passed to every runner factory.

    Attributes:
        device: gpuqnn ``device`` argument.
        dtype: gpuqnn ``dtype`` argument.
    """

    device: str
    dtype: str


class Runner(Protocol):
    """One built network of one implementation."""

    def forward(self, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Outputs, shape ``(batch, *output_shape)``."""
        ...

    def backward(self, inputs: np.ndarray, weights: np.ndarray, input_gradients: bool) -> Gradients:
        """``(input_grads or None, weight_grads)``, qiskit-machine-learning's layout."""
        ...

    def describe(self) -> str:
        """Where it runs (device, dtype), for the header."""
        ...


RunnerFactory = Callable[[QNNSpec, Options], Runner]


@dataclass
class NetworkRunner:
    """A :class:`Runner` around a qiskit-machine-learning ``NeuralNetwork`` (or a subclass)."""

    network: NeuralNetwork

    def forward(self, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Run the network's forward pass."""
        return np.asarray(self.network.forward(inputs, weights))

    def backward(self, inputs: np.ndarray, weights: np.ndarray, input_gradients: bool) -> Gradients:
        """Run the network's backward pass, with or without input gradients."""
        self.network.input_gradients = input_gradients
        return self.network.backward(inputs, weights)

    def describe(self) -> str:
        """The device the network reports (``cpu`` when it reports none)."""
        return str(getattr(self.network, "device", "cpu"))


def gpuqnn_runner(spec: QNNSpec, options: Options) -> Runner:
    """Build the network with gpuqnn."""
    cls = gpuqnn.EstimatorQNN if spec.kind == "estimator" else gpuqnn.SamplerQNN
    network = cls(**spec.qiskit_kwargs(), device=options.device, dtype=options.dtype)
    return NetworkRunner(network)


def qiskit_ml_runner(spec: QNNSpec, options: Options) -> Runner:
    """Build the network with qiskit-machine-learning's default primitives and gradients."""
    del options  # the reference has no device or dtype choice
    cls = EstimatorQNN if spec.kind == "estimator" else SamplerQNN
    return NetworkRunner(cls(**spec.qiskit_kwargs()))


def runner_factories() -> Mapping[str, RunnerFactory]:
    """All known implementations by name; register new peers here."""
    return MappingProxyType({CANDIDATE: gpuqnn_runner, "qiskit-ml": qiskit_ml_runner})


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def run_pass(runner: Runner, name: str, inputs: np.ndarray, weights: np.ndarray) -> Any:
    """Run one of :data:`PASSES` and return its result."""
    if name == "forward":
        return runner.forward(inputs, weights)
    return runner.backward(inputs, weights, input_gradients=name == "backward+input_grads")


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls of ``fn`` and the last call's result."""
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


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


def results_close(ours: Any, theirs: Any, atol: float) -> bool:
    """``np.allclose`` over results that may be tuples of arrays or ``None``."""
    if isinstance(ours, tuple) and isinstance(theirs, tuple) and len(ours) == len(theirs):
        return all(results_close(a, b, atol) for a, b in zip(ours, theirs, strict=True))
    if ours is None or theirs is None:
        return ours is None and theirs is None
    a, b = np.asarray(ours), np.asarray(theirs)
    return a.shape == b.shape and bool(np.allclose(a, b, atol=atol))


@dataclass(frozen=True)
class PeerTime:
    """A peer's time for one pass, already scaled to the workload batch.

    Attributes:
        seconds: Scaled time.
        measured_batch: Number of samples actually run.
    """

    seconds: float
    measured_batch: int


@dataclass(frozen=True)
class Row:
    """One table row: a workload and pass, timed for gpuqnn and every peer."""

    workload: str
    pass_name: str
    batch: int
    candidate_seconds: float
    peers: Mapping[str, PeerTime]
    agrees: bool


def bench_workload(
    workload: Workload,
    peers: Sequence[str],
    options: Options,
    *,
    batch: int,
    ref_batch: int,
    repeat: int,
    atol: float,
    seed: int,
) -> list[Row]:
    """Check and time one workload for gpuqnn and each peer.

    Args:
        workload: The workload.
        peers: Names of the implementations gpuqnn is compared with.
        options: Runner settings.
        batch: Samples per pass for gpuqnn (and the batch peers are scaled to).
        ref_batch: Samples the peers are measured on (at most ``batch``).
        repeat: gpuqnn is timed as the best of this many runs.
        atol: Absolute tolerance of the correctness check.
        seed: Seed of the random inputs and weights.

    Returns:
        One row per pass.
    """
    factories = runner_factories()
    spec = workload.build()
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(0.0, 2 * np.pi, size=(batch, len(spec.input_params)))
    weights = rng.uniform(0.0, 2 * np.pi, size=len(spec.weight_params))
    candidate = factories[CANDIDATE](spec, options)

    peer_times: dict[str, dict[str, PeerTime]] = {}
    agrees = True
    for peer in peers:
        runner = factories[peer](spec, options)
        n = min(ref_batch, batch)
        sample = inputs[:n]
        peer_times[peer] = {}
        diffs: list[str] = []
        for name in PASSES:
            run_pass(runner, name, inputs[:1], weights)  # warm-up: one-off setup is not scaled
            seconds, expected = timed(partial(run_pass, runner, name, sample, weights))
            peer_times[peer][name] = PeerTime(seconds * batch / n, n)
            got = run_pass(candidate, name, sample, weights)
            ok = results_close(got, expected, atol)
            agrees &= ok
            verdict = "OK" if ok else "MISMATCH"
            diffs.append(f"{name} {verdict} (max |diff| {max_abs_diff(got, expected):.1e})")
        print(f"check {workload.name} vs {peer} on {n} samples, atol {atol:g}: {', '.join(diffs)}")

    rows = []
    for name in PASSES:
        run_pass(candidate, name, inputs, weights)  # warm-up
        seconds, _ = timed(partial(run_pass, candidate, name, inputs, weights), repeat)
        rows.append(
            Row(
                workload=workload.name,
                pass_name=name,
                batch=batch,
                candidate_seconds=seconds,
                peers={peer: times[name] for peer, times in peer_times.items()},
                agrees=agrees,
            )
        )
    return rows


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def markdown_table(rows: Sequence[Row], peers: Sequence[str]) -> str:
    """Render the rows as one markdown table."""
    header = ["workload", "pass", "batch", f"{CANDIDATE} s"]
    for peer in peers:
        header += [f"{peer} s", f"{peer} measured on", f"{peer}/{CANDIDATE}"]
    lines = [header]
    for row in rows:
        workload = row.workload if row.agrees else f"{row.workload} (MISMATCH)"
        cells = [workload, row.pass_name, str(row.batch), f"{row.candidate_seconds:.4g}"]
        for peer in peers:
            timing = row.peers[peer]
            measured = timing.measured_batch
            note = (
                f"{measured}, scaled x{row.batch / measured:g}" if measured < row.batch else "full"
            )
            ratio = timing.seconds / row.candidate_seconds if row.candidate_seconds else math.inf
            cells += [f"{timing.seconds:.4g}", note, f"{ratio:.1f}x"]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = {2, 3} | {4 + 3 * k for k in range(len(peers))}
    numeric |= {6 + 3 * k for k in range(len(peers))}

    def render(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [("-" * (w - 1) + ":") if i in numeric else "-" * w for i, w in enumerate(widths)]
    return "\n".join([render(lines[0]), render(rule)] + [render(cells) for cells in lines[1:]])


def environment_line(options: Options, device: str) -> str:
    """One line describing the software and machine."""
    return (
        f"{CANDIDATE} {getattr(gpuqnn, '__version__', '?')} on {device} ({options.dtype}); "
        f"qiskit {qiskit.__version__}, "
        f"qiskit-machine-learning {qiskit_machine_learning.__version__}, "
        f"numpy {np.__version__}; python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs ({platform.machine()})"
    )


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    names = [w.name for w in WORKLOADS]
    peers = [name for name in runner_factories() if name != CANDIDATE]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
        nargs="+",
        choices=peers,
        default=["qiskit-ml"],
        metavar="NAME",
        help=f"implementations to compare with (default: qiskit-ml; known: {', '.join(peers)})",
    )
    parser.add_argument(
        "--ref-batch",
        type=int,
        default=None,
        metavar="N",
        help="measure the peers on min(N, batch) samples and scale linearly "
        "(default: per workload, full batch for the tutorial networks, 16 otherwise)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: batch {QUICK_BATCH}, peers on {QUICK_REF_BATCH} samples",
    )
    parser.add_argument("--repeat", type=int, default=3, help="gpuqnn: best of N runs (default 3)")
    parser.add_argument("--device", default="auto", help="gpuqnn device (default auto)")
    parser.add_argument(
        "--dtype",
        default="complex128",
        choices=["complex128", "complex64"],
        help="gpuqnn dtype (default complex128)",
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=None,
        help="tolerance of the correctness check (default 1e-8, or 1e-5 for complex64)",
    )
    parser.add_argument("--seed", type=int, default=1234, help="seed of inputs and weights")
    args = parser.parse_args(argv)
    for flag in ("ref_batch", "repeat"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table.

    Returns:
        0, or 1 when gpuqnn disagreed with a peer on some workload.
    """
    args = parse_args(argv)
    options = Options(device=args.device, dtype=args.dtype)
    atol = args.atol if args.atol is not None else (1e-5 if args.dtype == "complex64" else 1e-8)
    selected = [w for w in WORKLOADS if w.name in args.workloads]

    rows: list[Row] = []
    for i, workload in enumerate(selected):
        batch = min(workload.batch, QUICK_BATCH) if args.quick else workload.batch
        ref_batch = args.ref_batch or (QUICK_REF_BATCH if args.quick else workload.ref_batch)
        if i == 0:
            device = gpuqnn_runner(workload.build(), options).describe()
            print(environment_line(options, device))
        rows += bench_workload(
            workload,
            args.peers,
            options,
            batch=batch,
            ref_batch=ref_batch,
            repeat=args.repeat,
            atol=atol,
            seed=args.seed,
        )
    print()
    print(markdown_table(rows, args.peers))
    if not all(row.agrees for row in rows):
        print("\nMISMATCH: gpuqnn disagreed with a peer; these timings measure wrong results.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

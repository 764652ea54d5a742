"""``python -m gpuqnn`` (or the ``gpuqnn`` command): gpuqnn next to qiskit-machine-learning.

1. Shows the device the engine runs on.
2. Builds the four networks of qiskit-machine-learning's "Quantum Neural Networks" tutorial (an
   EstimatorQNN with observable ``Y``, the same with observables ``[Y, Z]``, a SamplerQNN and the
   same with a parity interpret), runs forward and backward (with input gradients) on the
   tutorial's inputs with both implementations and prints the results side by side, then times a
   forward + backward pass at a larger batch on both.
3. Trains a NeuralNetworkClassifier on generated two-moons data with gpuqnn's EstimatorQNN and
   times one epoch of it against qiskit-machine-learning's.

Progress bars go to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.neural_networks import EstimatorQNN as ReferenceEstimatorQNN
from qiskit_machine_learning.neural_networks import NeuralNetwork
from qiskit_machine_learning.neural_networks import SamplerQNN as ReferenceSamplerQNN

from .. import EstimatorQNN, SamplerQNN, __version__
from .._progress import ProgressBar
from .._sim.backend import load_cupy
from ..examples import parity, tutorial_estimator_circuit, tutorial_sampler_circuit
from .demo import TrainingReport, run_training

_REPEAT = 3
"""gpuqnn timings are the best of this many runs (after one warm-up)."""

MAX_QUBITS = 16
"""Widest training network: at 16 qubits qiskit-machine-learning's reference epoch already
takes minutes on a laptop (it grows about 2x per qubit), and gpuqnn's training run of the
default 100 samples and 30 epochs more than a minute on two cores."""


@dataclass(frozen=True)
class Example:
    """One tutorial network: how to build it and the inputs it is run on.

    Attributes:
        title: Human-readable description.
        estimator: Whether it is an EstimatorQNN (else a SamplerQNN).
        build: Builds the network from a network class and extra constructor keywords.
        inputs: The tutorial's input sample, shape ``(num_inputs,)``.
        weights: The tutorial's weights, shape ``(num_weights,)``.
    """

    title: str
    estimator: bool
    build: Callable[..., NeuralNetwork]
    inputs: np.ndarray
    weights: np.ndarray


def tutorial_examples() -> list[Example]:
    """The tutorial's four networks with its inputs (``default_rng(42)``, drawn in its order)."""
    qc1, input1, weight1 = tutorial_estimator_circuit()
    y_obs = SparsePauliOp.from_list([("Y", 1)])
    z_obs = SparsePauliOp.from_list([("Z", 1)])

    qc2, inputs2, weights2 = tutorial_sampler_circuit()

    rng = np.random.default_rng(42)
    est_input, est_weights = rng.random(1), rng.random(1)
    samp_input, samp_weights = rng.random(2), rng.random(4)

    def estimator(observables: list[SparsePauliOp]) -> Callable[..., NeuralNetwork]:
        return lambda cls, **kw: cls(
            circuit=qc1,
            observables=observables,
            input_params=[input1],
            weight_params=[weight1],
            **kw,
        )

    def sampler(**interpret: Any) -> Callable[..., NeuralNetwork]:
        return lambda cls, **kw: cls(
            circuit=qc2, input_params=inputs2, weight_params=weights2, **interpret, **kw
        )

    return [
        Example(
            "EstimatorQNN, 1 qubit, observable Y", True, estimator([y_obs]), est_input, est_weights
        ),
        Example("SamplerQNN, 2 qubits", False, sampler(), samp_input, samp_weights),
        Example(
            "SamplerQNN, 2 qubits, parity interpret",
            False,
            sampler(interpret=parity, output_shape=2),
            samp_input,
            samp_weights,
        ),
        Example(
            "EstimatorQNN, 1 qubit, observables [Y, Z]",
            True,
            estimator([y_obs, z_obs]),
            est_input,
            est_weights,
        ),
    ]


def _rows(label: str, array: np.ndarray | None) -> list[tuple[str, np.ndarray]]:
    """Split a batch-of-one result into labelled 1-D rows (one per network output)."""
    if array is None:
        return []
    array = np.asarray(array)[0]
    if array.ndim <= 1:
        return [(label, array.reshape(-1))]
    flat = array.reshape(-1, array.shape[-1])
    return [(f"{label} [out {k}]", row) for k, row in enumerate(flat)]


def _fmt(values: np.ndarray) -> str:
    """Fixed-width text for a row of values."""
    return " ".join(f"{v: .8f}" for v in values)


def compare(example: Example, ours: NeuralNetwork, ref: NeuralNetwork, atol: float) -> bool:
    """Run forward and backward on the tutorial inputs with both networks and print them.

    Returns:
        Whether every value agrees within ``atol``.
    """
    results = []
    for network in (ours, ref):
        network.input_gradients = True
        forward = network.forward(example.inputs, example.weights)
        input_grads, weight_grads = network.backward(example.inputs, example.weights)
        results.append(
            _rows("forward", forward)
            + _rows("d/d input", input_grads)
            + _rows("d/d weights", weight_grads)
        )
    print(f"{example.title}")
    print(f"  input {_fmt(example.inputs)}   weights {_fmt(example.weights)}")
    width = max(len(label) for label, _ in results[0])
    col = max(len(_fmt(values)) for _, values in results[0] + results[1])
    print(f"  {'':{width}}  {'gpuqnn':{col}}  {'qiskit-ml':{col}}  max |diff|")
    ok = len(results[0]) == len(results[1])
    for (label, mine), (_, theirs) in zip(results[0], results[1], strict=False):
        same_shape = mine.shape == theirs.shape
        diff = float(np.max(np.abs(mine - theirs), initial=0.0)) if same_shape else math.inf
        ok &= diff <= atol
        print(f"  {label:{width}}  {_fmt(mine):{col}}  {_fmt(theirs):{col}}  {diff:.1e}")
    print()
    return ok


def _best_time(fn: Callable[[], Any], repeat: int) -> float:
    """Best wall time of ``repeat`` calls of ``fn``."""
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def time_forward_backward(
    network: NeuralNetwork, inputs: np.ndarray, weights: np.ndarray, repeat: int, warm_up: bool
) -> float:
    """Seconds for one forward plus one backward pass (with input gradients)."""
    network.input_gradients = True

    def step() -> None:
        network.forward(inputs, weights)
        network.backward(inputs, weights)

    if warm_up:
        step()
    return _best_time(step, repeat)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="gpuqnn",
        description="Run the qiskit QNN tutorial's networks with gpuqnn and with "
        "qiskit-machine-learning, compare the results and time both; then train a small "
        "classifier with gpuqnn and time it against qiskit-machine-learning.",
    )
    parser.add_argument(
        "--device", default="auto", help="'auto' (default), 'cpu', 'gpu' or 'cuda:N'"
    )
    parser.add_argument(
        "--dtype",
        default="complex128",
        choices=["complex128", "complex64"],
        help="statevector dtype (default complex128)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=512,
        help="batch size of the timed forward+backward pass of the tutorial networks "
        "(default 512; 0 skips timing)",
    )
    parser.add_argument(
        "--qubits",
        type=int,
        default=4,
        help=f"qubits of the training run's classifier circuit (default 4; 2 to {MAX_QUBITS}: "
        "beyond that the training run and qiskit-machine-learning's reference epoch take too "
        "long to time)",
    )
    parser.add_argument(
        "--samples",
        type=_positive,
        default=100,
        help="training points (default 100)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=30,
        help="L-BFGS-B iterations of the training run (default 30; 0 skips training)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the training run")
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip qiskit-machine-learning's timings (results are still compared)",
    )
    args = parser.parse_args(argv)
    if args.batch < 0:
        parser.error("--batch must not be negative")
    if args.epochs < 0:
        parser.error("--epochs must not be negative")
    if not 2 <= args.qubits <= MAX_QUBITS:
        parser.error(f"--qubits must be between 2 and {MAX_QUBITS}, got {args.qubits}")
    if args.samples < 2:
        parser.error("--samples must be at least 2")
    return args


def device_line(device_request: str, device: str, dtype: str) -> str:
    """Where gpuqnn runs, and why not on a GPU when 'auto' found none."""
    if device != "cpu":
        return f"device: {device} (CuPy), {dtype}"
    if device_request != "auto":
        return f"device: cpu (NumPy), {dtype}"
    _cupy, reason = load_cupy(0)  # the reason names what is missing and what to install
    return f"device: cpu (NumPy), {dtype}; no GPU: {reason}"


def time_networks(
    pairs: list[tuple[Example, NeuralNetwork, NeuralNetwork]], batch: int, reference: bool
) -> None:
    """Print the forward + backward timing table of the tutorial networks."""
    print(f"\nforward + backward (with input gradients), batch {batch}:")
    rng = np.random.default_rng(0)
    width = max(len(example.title) for example, _, _ in pairs)
    rows = []
    with ProgressBar(len(pairs), "timing", sys.stderr) as bar:
        for example, ours, ref in pairs:
            inputs = rng.uniform(0, 2 * np.pi, (batch, ours.num_inputs))
            weights = rng.uniform(0, 2 * np.pi, ours.num_weights)
            t_ours = time_forward_backward(ours, inputs, weights, _REPEAT, warm_up=True)
            t_ref = (
                time_forward_backward(ref, inputs, weights, 1, warm_up=False) if reference else None
            )
            rows.append((example.title, t_ours, t_ref))
            bar.update(note=example.title)
    # without the reference, its columns are left out rather than filled with nan
    header = f"  {'network':{width}}  {'gpuqnn s':>10}"
    print(header + (f"  {'qiskit-ml s':>11}  speed-up" if reference else ""))
    for title, t_ours, t_ref in rows:
        line = f"  {title:{width}}  {t_ours:10.4g}"
        if t_ref is not None:
            speedup = t_ref / t_ours if t_ours > 0 else math.inf
            line += f"  {t_ref:11.4g}  {speedup:7.1f}x"
        print(line)


def print_training(report: TrainingReport) -> None:
    """Print the training run's results."""
    losses = report.losses
    print(
        f"  loss {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} epochs (full-batch "
        f"evaluations, in {report.iterations} L-BFGS-B iterations), training accuracy "
        f"{report.accuracy:.2f}, {report.fit_seconds:.2f} s with gpuqnn"
    )
    line = (
        f"  one epoch (forward + backward over {report.num_samples} samples): "
        f"gpuqnn {report.epoch_seconds:.4g} s"
    )
    if report.reference_epoch_seconds is not None:
        ratio = report.reference_epoch_seconds / max(report.epoch_seconds, 1e-12)
        line += (
            f", qiskit-ml {report.reference_epoch_seconds:.4g} s ({ratio:.0f}x); "
            f"same loss to {report.reference_loss_difference:.1e}"
        )
    print(line)


def main(argv: Sequence[str] | None = None) -> int:
    """Compare gpuqnn with qiskit-machine-learning on the tutorial's networks, then train.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        0 when every result agrees, 1 when some differ, 2 when gpuqnn cannot be set up.
    """
    args = parse_args(argv)
    atol = 1e-5 if args.dtype == "complex64" else 1e-8
    examples = tutorial_examples()
    pairs: list[tuple[Example, NeuralNetwork, NeuralNetwork]] = []
    for example in examples:
        cls = EstimatorQNN if example.estimator else SamplerQNN
        ref_cls = ReferenceEstimatorQNN if example.estimator else ReferenceSamplerQNN
        try:
            ours = example.build(cls, device=args.device, dtype=args.dtype)
        except (ValueError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        pairs.append((example, ours, example.build(ref_cls)))

    device = getattr(pairs[0][1], "device", "cpu")
    print(f"gpuqnn {__version__}")
    print(device_line(args.device, device, args.dtype))
    print("\nqiskit's QNN tutorial networks, gpuqnn vs qiskit-machine-learning defaults:\n")
    # every network is compared and printed, also after a mismatch (no short-circuit)
    agreements = [compare(example, ours, ref, atol) for example, ours, ref in pairs]
    agree = all(agreements)
    print(
        f"all results agree within {atol:g}"
        if agree
        else f"MISMATCH: some results differ by more than {atol:g}"
    )

    if args.batch:
        time_networks(pairs, args.batch, not args.no_reference)

    if args.epochs:
        print(
            f"\ntraining: NeuralNetworkClassifier (L-BFGS-B, up to {args.epochs} iterations) "
            f"on {args.samples} two-moons points, EstimatorQNN on {args.qubits} qubits"
        )
        try:
            report = run_training(
                device=args.device,
                dtype=args.dtype,
                num_qubits=args.qubits,
                num_samples=args.samples,
                epochs=args.epochs,
                seed=args.seed,
                reference=not args.no_reference,
                stream=sys.stderr,
            )
        except (ValueError, RuntimeError, MemoryError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print_training(report)
        if report.reference_loss_difference is not None:
            agree &= report.reference_loss_difference <= max(atol, 1e-8) * 100
    return 0 if agree else 1

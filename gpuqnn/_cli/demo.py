"""The main job's training run: a NeuralNetworkClassifier on generated two-moons data, trained
with gpuqnn's EstimatorQNN and timed against qiskit-machine-learning's.

Each objective evaluation of the full-batch L-BFGS-B run is one forward and one backward pass
over all samples: one epoch. The reference is timed on one such epoch at the same weights (a
whole reference run would take minutes), and its loss there is compared with ours.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TextIO

import numpy as np
from qiskit_machine_learning.algorithms import NeuralNetworkClassifier
from qiskit_machine_learning.neural_networks import EstimatorQNN as ReferenceEstimatorQNN
from qiskit_machine_learning.neural_networks import NeuralNetwork
from qiskit_machine_learning.optimizers import L_BFGS_B

from .._progress import ProgressBar
from ..estimator_qnn import EstimatorQNN
from ..examples import two_feature_classifier_circuit, two_moons

_REFERENCE_CHUNKS = 10
"""qiskit-machine-learning's reference epoch runs in this many chunks of samples (one progress
step each)."""


@dataclass(frozen=True)
class TrainingReport:
    """What the training run measured.

    Attributes:
        device: where gpuqnn's engine ran.
        num_samples: training points.
        num_qubits: qubits of the network.
        num_weights: trainable weights.
        losses: the loss at every objective evaluation (epoch).
        iterations: L-BFGS-B's iterations (each takes one or more epochs).
        accuracy: training accuracy after the run.
        fit_seconds: wall time of the whole gpuqnn run.
        epoch_seconds: one forward + backward pass over all samples with gpuqnn (best of 3).
        reference_epoch_seconds: the same with qiskit-machine-learning's network, or None.
        reference_loss_difference: |loss(gpuqnn) - loss(qiskit-ml)| at the initial weights, or
            None.
    """

    device: str
    num_samples: int
    num_qubits: int
    num_weights: int
    losses: list[float]
    iterations: int
    accuracy: float
    fit_seconds: float
    epoch_seconds: float
    reference_epoch_seconds: float | None
    reference_loss_difference: float | None


def _epoch(network: NeuralNetwork, inputs: np.ndarray, weights: np.ndarray) -> float:
    """Seconds for one forward and one backward pass."""
    start = time.perf_counter()
    network.forward(inputs, weights)
    network.backward(inputs, weights)
    return time.perf_counter() - start


def _squared_error(
    network: NeuralNetwork, inputs: np.ndarray, targets: np.ndarray, weights: np.ndarray
) -> float:
    """The classifier's loss: mean over samples of the summed squared error."""
    return _loss(network.forward(inputs, weights), targets)


def _loss(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean over samples of the summed squared error of (N, ...) outputs and (N,) targets."""
    outputs = outputs.reshape(len(targets), -1)
    return float(np.mean(np.sum((outputs - targets.reshape(len(targets), -1)) ** 2, axis=1)))


def run_training(
    *,
    device: str,
    dtype: str,
    num_qubits: int,
    num_samples: int,
    epochs: int,
    seed: int,
    reference: bool,
    stream: TextIO,
) -> TrainingReport:
    """Train the classifier with gpuqnn, time one epoch of both, and draw progress on ``stream``.

    Args:
        device: gpuqnn's device option.
        dtype: gpuqnn's dtype option.
        num_qubits: qubits of the classifier circuit (at least 2).
        num_samples: two-moons points.
        epochs: the optimizer's maximum number of iterations.
        seed: seed of the data and the initial weights.
        reference: whether to time qiskit-machine-learning's network too.
        stream: where the progress bars go (the CLI passes stderr).

    Returns:
        The measurements.
    """
    x, labels = two_moons(num_samples, noise=0.1, seed=seed)
    targets = 2.0 * labels - 1.0  # one expectation value in [-1, 1] per sample
    circuit, inputs, weights = two_feature_classifier_circuit(num_qubits)
    network = EstimatorQNN(
        circuit=circuit, input_params=inputs, weight_params=weights, device=device, dtype=dtype
    )
    initial = np.random.default_rng(seed).uniform(-1, 1, network.num_weights)
    losses: list[float] = []
    # the bar counts what the summary reports: objective evaluations (epochs), every one of
    # them; L-BFGS-B's line searches may take more than its maxiter of them, so it grows
    with ProgressBar(epochs, "  gpuqnn    ", stream) as bar:

        def callback(_weights: np.ndarray, loss: float) -> None:
            losses.append(float(loss))
            bar.update(note=f"loss {loss:.4f}", grow=True)

        classifier = NeuralNetworkClassifier(
            network, optimizer=L_BFGS_B(maxiter=epochs), initial_point=initial, callback=callback
        )
        start = time.perf_counter()
        classifier.fit(x, targets)
        fit_seconds = time.perf_counter() - start
    accuracy = float(classifier.score(x, targets))
    _epoch(network, x, initial)  # warm-up
    epoch_seconds = min(_epoch(network, x, initial) for _ in range(3))
    reference_seconds = difference = None
    if reference:
        ref = ReferenceEstimatorQNN(circuit=circuit, input_params=inputs, weight_params=weights)
        # in chunks of samples, so that the bar moves during a slow reference epoch
        chunks = np.array_split(np.arange(num_samples), min(num_samples, _REFERENCE_CHUNKS))
        outputs = []
        with ProgressBar(len(chunks), "  qiskit-ml ", stream) as bar:
            start = time.perf_counter()
            for rows in chunks:
                outputs.append(ref.forward(x[rows], initial))
                ref.backward(x[rows], initial)
                bar.update(note=f"{rows[-1] + 1}/{num_samples} samples")
            reference_seconds = time.perf_counter() - start
        ref_loss = _loss(np.concatenate(outputs), targets)
        difference = abs(ref_loss - _squared_error(network, x, targets, initial))
    return TrainingReport(
        network.device,
        num_samples,
        num_qubits,
        network.num_weights,
        losses,
        classifier.fit_result.nit or 0,  # L-BFGS-B reports it
        accuracy,
        fit_seconds,
        epoch_seconds,
        reference_seconds,
        difference,
    )

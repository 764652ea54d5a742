"""Example circuits and data: qiskit's QNN tutorial networks, the benchmark workloads' circuits,
and a small generated data set.

Used by the main job (``python -m gpuqnn``), ``benchmarks/`` and the notebooks.
"""

from __future__ import annotations

import numpy as np
from qiskit.circuit import Parameter, ParameterVector, QuantumCircuit
from qiskit.circuit.library import real_amplitudes, zz_feature_map


def parity(bitstring: int) -> int:
    """The tutorial's SamplerQNN ``interpret``: parity of the measured bit string."""
    return bin(bitstring).count("1") % 2


def tutorial_estimator_circuit() -> tuple[QuantumCircuit, Parameter, Parameter]:
    """The tutorial's EstimatorQNN circuit ``h; ry(input1); rx(weight1)`` on one qubit.

    Returns:
        The circuit, its input parameter and its weight parameter.
    """
    inp, weight = Parameter("input1"), Parameter("weight1")
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.ry(inp, 0)
    qc.rx(weight, 0)
    return qc, inp, weight


def tutorial_sampler_circuit() -> tuple[QuantumCircuit, ParameterVector, ParameterVector]:
    """The tutorial's SamplerQNN circuit: two qubits, two inputs, four weights.

    Returns:
        The circuit, its input parameters and its weight parameters.
    """
    inputs, weights = ParameterVector("input", 2), ParameterVector("weight", 4)
    qc = QuantumCircuit(2)
    qc.ry(inputs[0], 0)
    qc.ry(inputs[1], 1)
    qc.cx(0, 1)
    qc.ry(weights[0], 0)
    qc.ry(weights[1], 1)
    qc.cx(0, 1)
    qc.ry(weights[2], 0)
    qc.ry(weights[3], 1)
    return qc, inputs, weights


def zz_real_amplitudes(
    num_qubits: int, reps: int = 3
) -> tuple[QuantumCircuit, QuantumCircuit, QuantumCircuit]:
    """``zz_feature_map(n, reps=1)`` followed by ``real_amplitudes(n, reps)``.

    Returns:
        The composed circuit, the feature map (its parameters are the inputs) and the ansatz
        (its parameters are the weights).
    """
    feature_map = zz_feature_map(num_qubits, reps=1)
    ansatz = real_amplitudes(num_qubits, reps=reps)
    qc = QuantumCircuit(num_qubits)
    qc.compose(feature_map, inplace=True)
    qc.compose(ansatz, inplace=True)
    return qc, feature_map, ansatz


def two_feature_classifier_circuit(
    num_qubits: int, reps: int = 2
) -> tuple[QuantumCircuit, ParameterVector, list[Parameter]]:
    """A classifier circuit for two features on ``num_qubits`` qubits.

    ``zz_feature_map(num_qubits)`` with qubit i fed by feature ``i % 2``, then
    ``real_amplitudes(num_qubits, reps)``.

    Returns:
        The circuit, its two input parameters and its weight parameters.
    """
    if num_qubits < 2:
        raise ValueError(f"num_qubits must be at least 2, got {num_qubits}")
    inputs = ParameterVector("x", 2)
    feature_map = zz_feature_map(num_qubits, reps=1)
    feature_map = feature_map.assign_parameters(
        {p: inputs[i % 2] for i, p in enumerate(feature_map.parameters)}
    )
    ansatz = real_amplitudes(num_qubits, reps=reps)
    qc = QuantumCircuit(num_qubits)
    qc.compose(feature_map, inplace=True)
    qc.compose(ansatz, inplace=True)
    return qc, inputs, list(ansatz.parameters)


def two_moons(
    num_samples: int = 100, noise: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (like scikit-learn's ``make_moons``), scaled to [0, pi].

    Args:
        num_samples: number of points (half in each class, the odd one in class 1).
        noise: standard deviation of the Gaussian noise added to the points.
        seed: seed of the points and the noise.

    Returns:
        (num_samples, 2) float64 points in [0, pi] and (num_samples,) int64 labels 0 or 1.
    """
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2, got {num_samples}")
    rng = np.random.default_rng(seed)
    n0 = num_samples // 2
    t0 = rng.uniform(0, np.pi, n0)
    t1 = rng.uniform(0, np.pi, num_samples - n0)
    x = np.concatenate(
        [
            np.stack([np.cos(t0), np.sin(t0)], axis=1),
            np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], axis=1),
        ]
    )
    x += rng.normal(0.0, noise, x.shape)
    x = (x - x.min(axis=0)) / np.ptp(x, axis=0) * np.pi
    labels = np.concatenate(
        [np.zeros(n0, dtype=np.int64), np.ones(num_samples - n0, dtype=np.int64)]
    )
    return x, labels

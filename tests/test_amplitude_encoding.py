"""qiskit-machine-learning's amplitude encoding (``raw_feature_vector``, a
``ParameterizedInitialize`` of unbound amplitudes) with input parameters (issue 19, item 3):
values against qiskit's Statevector of the bound circuit (qiskit's own binding of the
instruction), gradients against finite differences of it, zero blocks, refusals, and VQC over
gpuqnn's Sampler."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import real_amplitudes
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_machine_learning.algorithms import VQC
from qiskit_machine_learning.circuit.library import raw_feature_vector
from qiskit_machine_learning.circuit.library.raw_feature_vector import ParameterizedInitialize
from qiskit_machine_learning.exceptions import QiskitMachineLearningError
from qiskit_machine_learning.optimizers import COBYLA

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._compile import compile_circuit
from gpuqnn._cuda.tables import unsupported_reason
from gpuqnn.primitives import Sampler


def _model(dim: int):
    feature_map, ansatz = raw_feature_vector(dim), real_amplitudes(int(np.log2(dim)), reps=1)
    return feature_map.compose(ansatz), list(feature_map.parameters), list(ansatz.parameters)


def _state(qc, parameters, row) -> Statevector:
    return Statevector(qc.assign_parameters(dict(zip(parameters, row, strict=True))))


def _finite_differences(qc, parameters, values, x, w, h=1e-6):
    """(B, O, P) central differences of ``values(state)`` by every input and weight (rows
    of norm far from 1: qiskit-machine-learning normalises only where the norm is not close
    to 1, and qiskit refuses a norm of 1 + 1e-6)."""
    out = []
    for row in x:
        point = np.concatenate([row, w])
        steps = [
            values(_state(qc, parameters, point + h * e))
            - values(_state(qc, parameters, point - h * e))
            for e in np.eye(len(point))
        ]
        out.append(np.stack(steps, axis=-1) / (2 * h))
    return np.array(out)


# signed, unnormalised rows; the last has zero amplitudes but no all-zero block of two or more
ROWS = np.array(
    [
        [0.3, -1.2, 0.5, 2.0, -0.7, 0.1, 1.1, -0.4],
        [2.5, 0.2, -0.3, -0.9, 0.6, 1.7, -1.4, 0.8],
        [0.0, 1.0, -0.5, 0.0, 0.0, 0.3, 0.7, 0.0],
    ]
)


def test_estimator_values_and_gradients():
    qc, inputs, weights = _model(8)
    obs = SparsePauliOp.from_list([("ZZI", 1.0), ("XIX", 0.5), ("IYY", -0.3)])
    net = EstimatorQNN(
        circuit=qc,
        observables=obs,
        input_params=inputs,
        weight_params=weights,
        input_gradients=True,
    )
    w = np.random.default_rng(3).uniform(-1, 1, len(weights))

    def values(state):
        return np.array([state.expectation_value(obs).real])

    expected = [values(_state(qc, inputs + weights, np.concatenate([r, w]))) for r in ROWS]
    np.testing.assert_allclose(net.forward(ROWS, w), expected, atol=1e-10)
    input_grad, weight_grad = net.backward(ROWS, w)
    reference = _finite_differences(qc, inputs + weights, values, ROWS, w)
    np.testing.assert_allclose(input_grad, reference[:, :, :8], atol=1e-6)
    np.testing.assert_allclose(weight_grad, reference[:, :, 8:], atol=1e-6)
    assert np.abs(reference[:, :, :8]).max() > 0.05


def test_sampler_probabilities_and_gradients():
    qc, inputs, weights = _model(4)
    net = SamplerQNN(circuit=qc, input_params=inputs, weight_params=weights, input_gradients=True)
    x, w = ROWS[:, :4], np.array([0.4, -0.9, 1.3, 0.2])
    expected = [_state(qc, inputs + weights, np.concatenate([r, w])).probabilities() for r in x]
    np.testing.assert_allclose(net.forward(x, w), expected, atol=1e-10)
    input_grad, weight_grad = net.backward(x, w)
    reference = _finite_differences(qc, inputs + weights, Statevector.probabilities, x, w)
    np.testing.assert_allclose(input_grad, reference[:, :, :4], atol=1e-6)
    np.testing.assert_allclose(weight_grad, reference[:, :, 4:], atol=1e-6)


def test_amplitudes_as_expressions_of_inputs_and_weights():
    x0, x1, w0 = Parameter("x0"), Parameter("x1"), Parameter("w0")
    qc = QuantumCircuit(2)
    qc.append(ParameterizedInitialize([x0, x1 * w0, 0.5, x0 - 2 * x1]), [0, 1])
    qc.ry(w0, 0)
    obs = SparsePauliOp.from_list([("ZX", 1.0), ("XZ", 0.4)])
    net = EstimatorQNN(
        circuit=qc, observables=obs, input_params=[x0, x1], weight_params=[w0], input_gradients=True
    )
    x, w = np.array([[0.7, -0.2], [-1.1, 0.9]]), np.array([0.6])

    def values(state):
        return np.array([state.expectation_value(obs).real])

    parameters = [x0, x1, w0]
    expected = [values(_state(qc, parameters, np.concatenate([r, w]))) for r in x]
    np.testing.assert_allclose(net.forward(x, w), expected, atol=1e-10)
    input_grad, weight_grad = net.backward(x, w)
    reference = _finite_differences(qc, parameters, values, x, w)
    np.testing.assert_allclose(
        np.concatenate([input_grad, weight_grad], axis=-1), reference, atol=1e-6
    )


def test_zero_blocks():
    """Values stay exact where a block of amplitudes is zero, and so do the weights'
    gradients; the inputs' gradients are refused there, never approximated; an all-zero row
    is refused."""
    qc, inputs, weights = _model(4)
    obs = SparsePauliOp.from_list([("ZZ", 1.0), ("XI", 0.5)])
    kwargs = dict(circuit=qc, observables=obs, input_params=inputs, weight_params=weights)
    x, w = np.array([[0.0, 0.0, 1.2, -1.6], [0.0, 2.0, 0.0, 0.0]]), np.array([0.4, -0.9, 1.3, 0.2])
    net = EstimatorQNN(**kwargs)
    expected = [
        _state(qc, inputs + weights, np.concatenate([r, w])).expectation_value(obs).real for r in x
    ]
    np.testing.assert_allclose(net.forward(x, w)[:, 0], expected, atol=1e-10)
    _, weight_grad = net.backward(x, w)

    def values(state):
        return np.array([state.expectation_value(obs).real])

    reference = _finite_differences(qc, inputs + weights, values, x, w)
    np.testing.assert_allclose(weight_grad, reference[:, :, 4:], atol=1e-6)
    with pytest.raises(ValueError, match="input_data.*all zero.*gradient"):
        EstimatorQNN(**kwargs, input_gradients=True).backward(x, w)
    with pytest.raises(ValueError, match="input_data.*all zero"):
        net.forward(np.zeros((1, 4)), w)


def test_refusals():
    x = Parameter("x")
    qc = QuantumCircuit(1)
    qc.append(ParameterizedInitialize([x, 1j * x]), [0])
    with pytest.raises(QiskitMachineLearningError, match="ParameterizedInitialize.*complex"):
        EstimatorQNN(circuit=qc, input_params=[x])
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.append(ParameterizedInitialize([x, 1.0]), [0])
    with pytest.raises(QiskitMachineLearningError, match="ParameterizedInitialize.*after gates"):
        EstimatorQNN(circuit=qc, input_params=[x])


def test_encoding_stays_on_the_kernels():
    qc, inputs, weights = _model(8)
    assert unsupported_reason(compile_circuit(qc, inputs + weights)) is None


def test_vqc_over_gpuqnn_sampler():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(12, 4))
    labels = (features[:, 0] * features[:, 3] > 0).astype(int)
    vqc = VQC(
        feature_map=raw_feature_vector(4),
        ansatz=real_amplitudes(2, reps=1),
        optimizer=COBYLA(maxiter=8),
        sampler=Sampler(),
    )
    vqc.fit(features, labels)
    qc = vqc.neural_network.circuit
    x, w = features[:3], vqc.weights
    parameters = list(vqc.neural_network.input_params) + list(vqc.neural_network.weight_params)
    expected = []
    for row in x:
        probabilities = _state(
            qc.remove_final_measurements(inplace=False), parameters, np.concatenate([row, w])
        ).probabilities()
        expected.append([probabilities[0::2].sum(), probabilities[1::2].sum()])  # VQC: b % 2
    np.testing.assert_allclose(vqc.neural_network.forward(x, w), expected, atol=1e-10)
    assert 0.0 <= vqc.score(features, labels) <= 1.0

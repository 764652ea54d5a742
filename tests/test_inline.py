"""Composite instructions are inlined: appended circuits, to_instruction()/to_gate(), library
circuits and blueprint classes, UC/diagonal/isometry gates, initialize and state preparation.

Values are checked against ``qiskit.quantum_info.Statevector`` of the bound circuit, gradients
against central finite differences of it and against qiskit-machine-learning's own networks.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.circuit.library import (
    GMS,
    DiagonalGate,
    Isometry,
    StatePreparation,
    UCGate,
    UCRYGate,
    UCRZGate,
    real_amplitudes,
    zz_feature_map,
)
from qiskit.quantum_info import SparsePauliOp, Statevector, random_unitary
from qiskit_machine_learning.circuit.library import qnn_circuit
from qiskit_machine_learning.exceptions import QiskitMachineLearningError
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN

from gpuqnn import EstimatorQNN, SamplerQNN


def _params(n_in: int, n_w: int):
    return ParameterVector("x", n_in), ParameterVector("w", n_w)


def _ansatz(qc: QuantumCircuit, w) -> None:
    """Weights on every qubit around an entangler, so that gradients by weights are non-zero."""
    n = qc.num_qubits
    for q in range(n):
        qc.ry(w[q % len(w)], q)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    for q in range(n):
        qc.rx(w[(q + 1) % len(w)] * 0.7, q)


def appended_library_circuits():
    """The issue's example: library circuits appended whole (Instructions, not Gates)."""
    fm, ra = zz_feature_map(2), real_amplitudes(2)
    qc = QuantumCircuit(2)
    qc.append(fm, range(2))
    qc.append(ra, range(2))
    return qc, list(fm.parameters), list(ra.parameters)


def appended_blueprint_classes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from qiskit.circuit.library import RealAmplitudes, ZZFeatureMap

        fm, ra = ZZFeatureMap(2), RealAmplitudes(2, reps=2)
    qc = QuantumCircuit(2)
    qc.append(fm, range(2))
    qc.append(ra, range(2))
    return qc, list(fm.parameters), list(ra.parameters)


def appended_qnn_circuit():
    circuit, inputs, weights = qnn_circuit(2)
    qc = QuantumCircuit(2)
    qc.append(circuit, range(2))
    return qc, list(inputs), list(weights)


def nested_instructions_rebound():
    """A sub-circuit turned into an instruction, its parameter rebound to expressions of the
    outer circuit's parameters, nested in another appended circuit, on permuted qubits."""
    a, b = Parameter("a"), Parameter("b")
    inner = QuantumCircuit(2, name="inner")
    inner.ry(a, 0)
    inner.crx(b, 0, 1)
    x, w = _params(2, 2)
    middle = QuantumCircuit(3, name="middle")
    middle.h(2)
    middle.append(inner.to_instruction({a: 2 * x[0] + w[0], b: x[1] * w[1]}), [2, 0])
    middle.append(inner.to_instruction({a: x[1], b: w[0] - x[0]}), [1, 2])
    qc = QuantumCircuit(3)
    qc.append(middle.to_instruction(), [1, 2, 0])
    _ansatz(qc, w)
    return qc, list(x), list(w)


def to_gate_and_assign():
    """``to_gate()`` of a parametrised block; the outer circuit's assign_parameters maps its
    parameter to an expression, which qiskit carries into the definition."""
    t = Parameter("t")
    block = QuantumCircuit(2, name="block")
    block.rzz(t, 0, 1)
    block.ry(t / 2, 1)
    x, w = _params(2, 2)
    u = Parameter("u")
    qc = QuantumCircuit(2)
    qc.h([0, 1])
    qc.append(block.to_gate(), [0, 1])
    qc.append(block.to_instruction({t: u}), [1, 0])
    qc = qc.assign_parameters({t: x[0] * 1.5, u: x[1] + w[0]})
    _ansatz(qc, w)
    return qc, list(x), list(w)


def uniformly_controlled():
    x, w = _params(2, 2)
    unitaries = [random_unitary(2, seed=s).data for s in range(4)]
    qc = QuantumCircuit(3)
    qc.ry(x[0], 0)
    qc.ry(x[1], 1)
    qc.h(2)
    qc.append(UCGate(unitaries), [2, 0, 1])
    qc.append(UCGate(unitaries, up_to_diagonal=True), [1, 2, 0])
    qc.append(UCRZGate([0.1, 0.7, -0.4, 1.2]), [0, 1, 2])
    qc.append(UCRYGate([0.3, -0.2, 0.9, 0.5]), [1, 0, 2])
    _ansatz(qc, w)
    return qc, list(x), list(w)


def many_qubit_uc_up_to_diagonal():
    """A 5-qubit UCGate up to a diagonal: its definition is not exact, its matrix is."""
    x, w = _params(2, 2)
    unitaries = [random_unitary(2, seed=10 + s).data for s in range(16)]
    qc = QuantumCircuit(5)
    for q in range(5):
        qc.ry(x[q % 2] * (q + 1) * 0.5, q)
    qc.append(UCGate(unitaries, up_to_diagonal=True), [0, 1, 2, 3, 4])
    _ansatz(qc, w)
    return qc, list(x), list(w)


def diagonal_isometry_gms():
    x, w = _params(2, 2)
    qc = QuantumCircuit(3)
    qc.append(Isometry(random_unitary(4, seed=3).data[:, :2], 0, 0), [1, 2])
    qc.ry(x[0], 0)
    qc.rx(x[1], 2)
    qc.append(DiagonalGate(list(np.exp(1j * np.linspace(0.1, 2.0, 8)))), [0, 1, 2])
    qc.append(GMS(3, [[0, 0.3, 0.2], [0, 0, 0.5], [0, 0, 0]]), [0, 1, 2])
    _ansatz(qc, w)
    return qc, list(x), list(w)


def initialize_and_state_preparation():
    x, w = _params(2, 2)
    qc = QuantumCircuit(3)
    qc.reset(2)  # a reset of a qubit still in |0>: nothing to do
    qc.initialize([0.6, 0.8j], [0])
    qc.ry(x[0], 1)
    qc.rx(x[1], 0)
    qc.append(StatePreparation([0.8, 0.6]), [2])
    _ansatz(qc, w)
    return qc, list(x), list(w)


def initialize_untouched_pair():
    x, w = _params(2, 2)
    qc = QuantumCircuit(3)
    qc.ry(x[0], 0)
    qc.initialize([0.5, 0.5j, -0.5, 0.5], [2, 1])  # qubits 1, 2 are still |0>
    qc.rx(x[1], 1)
    _ansatz(qc, w)
    return qc, list(x), list(w)


CASES = {
    "appended_library_circuits": appended_library_circuits,
    "appended_blueprint_classes": appended_blueprint_classes,
    "appended_qnn_circuit": appended_qnn_circuit,
    "nested_instructions_rebound": nested_instructions_rebound,
    "to_gate_and_assign": to_gate_and_assign,
    "uniformly_controlled": uniformly_controlled,
    "many_qubit_uc_up_to_diagonal": many_qubit_uc_up_to_diagonal,
    "diagonal_isometry_gms": diagonal_isometry_gms,
    "initialize_and_state_preparation": initialize_and_state_preparation,
    "initialize_untouched_pair": initialize_untouched_pair,
}


def _observables(num_qubits: int) -> list[SparsePauliOp]:
    n = num_qubits
    return [
        SparsePauliOp.from_sparse_list([("Z", [0], 1.0), ("XX", [0, n - 1], 0.4)], n),
        SparsePauliOp.from_sparse_list([("Y", [n - 1], 1.0), ("ZZ", [0, 1], -0.3)], n),
    ]


def _bound_state(qc, params, row) -> Statevector:
    bound = qc.assign_parameters(dict(zip(params, row, strict=True)))
    return Statevector(bound.remove_final_measurements(inplace=False))


def _data(num_inputs: int, num_weights: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    return rng.uniform(-np.pi, np.pi, (3, num_inputs)), rng.uniform(-np.pi, np.pi, num_weights)


@pytest.mark.parametrize("case", sorted(CASES))
def test_estimator_values_and_gradients(case):
    qc, inputs, weights = CASES[case]()
    obs = _observables(qc.num_qubits)
    x, w = _data(len(inputs), len(weights))
    qnn = EstimatorQNN(
        circuit=qc,
        observables=obs,
        input_params=inputs,
        weight_params=weights,
        input_gradients=True,
    )
    params = inputs + weights

    def expect(row):
        state = _bound_state(qc, params, row)
        return np.array([state.expectation_value(o).real for o in obs])

    rows = np.hstack([x, np.tile(w, (len(x), 1))])
    reference = np.array([expect(r) for r in rows])
    np.testing.assert_allclose(qnn.forward(x, w), reference, atol=1e-10)
    step = 1e-5
    fd = np.zeros((len(rows), len(obs), len(params)))
    for j in range(len(params)):
        shift = np.zeros(len(params))
        shift[j] = step
        fd[:, :, j] = [(expect(r + shift) - expect(r - shift)) / (2 * step) for r in rows]
    assert np.abs(fd).max() > 0.05  # the check can fail: the gradients are not all zero
    input_grad, weight_grad = qnn.backward(x, w)
    np.testing.assert_allclose(input_grad, fd[:, :, : len(inputs)], atol=1e-7)
    np.testing.assert_allclose(weight_grad, fd[:, :, len(inputs) :], atol=1e-7)


@pytest.mark.parametrize("case", ["appended_library_circuits", "nested_instructions_rebound"])
def test_estimator_matches_qiskit_machine_learning(case):
    qc, inputs, weights = CASES[case]()
    obs = _observables(qc.num_qubits)
    kwargs = dict(
        circuit=qc,
        observables=obs,
        input_params=inputs,
        weight_params=weights,
        input_gradients=True,
    )
    ours, theirs = EstimatorQNN(**kwargs), QmlEstimatorQNN(**kwargs)
    x, w = _data(len(inputs), len(weights), seed=8)
    np.testing.assert_allclose(ours.forward(x, w), theirs.forward(x, w), atol=1e-10)
    for a, b in zip(ours.backward(x, w), theirs.backward(x, w), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-8)


@pytest.mark.parametrize("case", ["appended_library_circuits", "uniformly_controlled"])
def test_sampler_matches_statevector_and_qiskit_machine_learning(case):
    qc, inputs, weights = CASES[case]()
    qc.measure_all()
    kwargs = dict(circuit=qc, input_params=inputs, weight_params=weights, input_gradients=True)
    ours, theirs = SamplerQNN(**kwargs), QmlSamplerQNN(**kwargs)
    x, w = _data(len(inputs), len(weights), seed=9)
    params = inputs + weights
    reference = [_bound_state(qc, params, np.concatenate([row, w])).probabilities() for row in x]
    np.testing.assert_allclose(ours.forward(x, w), reference, atol=1e-10)
    np.testing.assert_allclose(ours.forward(x, w), theirs.forward(x, w), atol=1e-10)
    for a, b in zip(ours.backward(x, w), theirs.backward(x, w), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-8)


def test_measure_inside_appended_circuit_is_a_final_measurement():
    x = Parameter("x")
    sub = QuantumCircuit(2, 2, name="measured_block")
    sub.ry(x, 0)
    sub.cx(0, 1)
    sub.measure([0, 1], [1, 0])  # crossed clbits
    qc = QuantumCircuit(2, 2)
    qc.append(sub, [1, 0], [0, 1])
    qnn = SamplerQNN(circuit=qc, input_params=[x])
    probs = qnn.forward([[0.8]], None)[0]
    p1 = np.sin(0.4) ** 2
    np.testing.assert_allclose(probs, [1 - p1, 0, 0, p1], atol=1e-12)


def _gate_after_measure():
    sub = QuantumCircuit(1, 1, name="measure_then_flip")
    sub.measure(0, 0)
    sub.x(0)
    qc = QuantumCircuit(1, 1)
    qc.ry(Parameter("x"), 0)
    qc.append(sub, [0], [0])
    return qc, "measure_then_flip"


def _reset_after_gates():
    sub = QuantumCircuit(1, name="rotate_and_reset")
    sub.h(0)
    sub.reset(0)
    qc = QuantumCircuit(1)
    qc.ry(Parameter("x"), 0)
    qc.append(sub, [0])
    return qc, "rotate_and_reset"


def _initialize_after_gates():
    qc = QuantumCircuit(1)
    qc.ry(Parameter("x"), 0)
    qc.initialize([0.6, 0.8], [0])
    return qc, "initialize"


def _anonymous_reset():
    sub = QuantumCircuit(1)
    sub.reset(0)
    qc = QuantumCircuit(1)
    qc.ry(Parameter("x"), 0)
    qc.append(sub, [0])
    return qc, "appended circuit at position 1"


def _control_flow():
    qc = QuantumCircuit(1, 1)
    qc.ry(Parameter("x"), 0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(0)
    return qc, "if_else"


@pytest.mark.parametrize(
    "build",
    [
        _gate_after_measure,
        _reset_after_gates,
        _initialize_after_gates,
        _anonymous_reset,
        _control_flow,
    ],
)
def test_refuses_what_is_not_unitary_naming_the_users_instruction(build):
    qc, name = build()
    with pytest.raises(QiskitMachineLearningError) as info:
        SamplerQNN(circuit=qc, input_params=list(qc.parameters))
    message = str(info.value)
    assert name in message
    assert "circuit-" not in message

"""Evolution gates with a parameterised time are exp(-i t H) exactly (issue 19, item 4): values
against qiskit's Statevector of the bound circuit (which evolves by the exact matrix), gradients
against finite differences of it, for non-commuting and commuting H, the time as a weight, an
input or an expression of both, inside EvolvedOperatorAnsatz and QAOAAnsatz, with EstimatorQNN
and SamplerQNN."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import (
    EvolvedOperatorAnsatz,
    HamiltonianGate,
    PauliEvolutionGate,
    QAOAAnsatz,
)
from qiskit.quantum_info import SparsePauliOp, Statevector

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._compile import compile_circuit
from gpuqnn._cuda.tables import unsupported_reason

pytestmark = pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")
X, W = Parameter("x"), Parameter("w")
HEISENBERG = SparsePauliOp.from_list([("XX", 1.0), ("YY", 0.7), ("ZZ", 0.4), ("IZ", 0.3)])
COMMUTING = SparsePauliOp.from_list([("ZZ", 0.8), ("ZI", -0.5), ("IZ", 0.25)])
H3 = SparsePauliOp.from_list([("XXI", 1.0), ("IYY", 0.6), ("ZIZ", -0.4), ("XIX", 0.3)])


def _wrap(gate, num_qubits: int) -> QuantumCircuit:
    """A generic state, the gate, one more layer (with a weight, so that every network has
    one)."""
    qc = QuantumCircuit(num_qubits)
    for q in range(num_qubits):
        qc.ry(0.4 + 0.3 * q, q)
        qc.rz(0.2 * q - 0.5, q)
    qc.cx(0, 1)
    qc.append(gate, range(num_qubits))
    qc.rx(0.3, 0)
    qc.ry(0.5 * W, 1)
    return qc


CASES = {
    "pauli_noncommuting_weight": lambda: _wrap(PauliEvolutionGate(HEISENBERG, time=W), 2),
    "pauli_noncommuting_input": lambda: _wrap(PauliEvolutionGate(HEISENBERG, time=X), 2),
    "pauli_expression": lambda: _wrap(PauliEvolutionGate(HEISENBERG, time=2 * W + X), 2),
    "pauli_list": lambda: _wrap(PauliEvolutionGate([HEISENBERG, COMMUTING], time=W * X), 2),
    "pauli_commuting": lambda: _wrap(PauliEvolutionGate(COMMUTING, time=W - X), 2),
    "pauli_three_qubits": lambda: _wrap(PauliEvolutionGate(H3, time=0.5 * W + X), 3),
    "pauli_controlled": lambda: _wrap(PauliEvolutionGate(HEISENBERG, time=W + X).control(1), 3),
    "hamiltonian_gate": lambda: _wrap(HamiltonianGate(HEISENBERG.to_matrix(), time=W + X), 2),
}


def _bound_state(qc: QuantumCircuit, x: float, w: float) -> Statevector:
    return Statevector(qc.assign_parameters({p: {"x": x, "w": w}[p.name] for p in qc.parameters}))


def _finite_differences(qc, values, x, w, h=1e-6):
    """(B, O, 2) central differences of ``values(state)`` by x and w."""
    rows = []
    for xv in x[:, 0]:
        dx = values(_bound_state(qc, xv + h, w)) - values(_bound_state(qc, xv - h, w))
        dw = values(_bound_state(qc, xv, w + h)) - values(_bound_state(qc, xv, w - h))
        rows.append(np.stack([dx, dw], axis=-1) / (2 * h))
    return np.array(rows)


def _network(cls, qc, **kwargs):
    inputs = [X] if X in set(qc.parameters) else []
    return cls(circuit=qc, input_params=inputs, weight_params=[W], input_gradients=True, **kwargs)


def _gradients(net, x, w):
    """(B, O, 2) gradients by x and w, zeros by x where the circuit does not use it."""
    input_grad, weight_grad = net.backward(x if net.num_inputs else None, w)
    if input_grad is None:
        input_grad = np.zeros_like(weight_grad)
    return np.concatenate([input_grad, weight_grad], axis=-1)


@pytest.mark.parametrize("name", sorted(CASES))
def test_estimator_matches_exact_evolution(name):
    qc = CASES[name]()
    obs = SparsePauliOp.from_list(
        [("Z" * qc.num_qubits, 1.0), ("X" + "I" * (qc.num_qubits - 1), 0.5)]
    )
    net = _network(EstimatorQNN, qc, observables=obs)
    x, w = np.array([[0.35], [-0.8], [1.3]]), np.array([0.9])
    x = x if net.num_inputs else x[:1]  # a network without inputs computes one row

    def values(state):
        return np.array([state.expectation_value(obs).real])

    expected = np.array([values(_bound_state(qc, xv, w[0])) for xv in x[:, 0]])
    inputs = x if net.num_inputs else None
    np.testing.assert_allclose(net.forward(inputs, w), expected, atol=1e-10)
    reference = _finite_differences(qc, values, x, w[0])
    np.testing.assert_allclose(_gradients(net, x, w), reference, atol=1e-6)
    assert np.abs(reference).max() > 0.05


def test_sampler_matches_exact_evolution():
    qc = CASES["pauli_expression"]()
    net = _network(SamplerQNN, qc)
    x, w = np.array([[0.35], [-0.8]]), np.array([0.9])

    def values(state):
        return state.probabilities()

    expected = np.array([values(_bound_state(qc, xv, w[0])) for xv in x[:, 0]])
    np.testing.assert_allclose(net.forward(x, w), expected, atol=1e-10)
    np.testing.assert_allclose(
        _gradients(net, x, w), _finite_differences(qc, values, x, w[0]), atol=1e-6
    )


@pytest.mark.parametrize("kind", ["evolved_operator_ansatz", "qaoa"])
def test_ansatz_with_heisenberg_operators(kind):
    if kind == "qaoa":
        ansatz = QAOAAnsatz(HEISENBERG, reps=2)
    else:
        ansatz = EvolvedOperatorAnsatz([HEISENBERG, COMMUTING], reps=2)
    qc = QuantumCircuit(2)
    qc.ry(X, 0)
    qc.rx(0.7, 1)
    qc.compose(ansatz, inplace=True)
    weights = list(ansatz.parameters)
    obs = SparsePauliOp.from_list([("ZZ", 1.0), ("IX", 0.3)])
    net = EstimatorQNN(circuit=qc, observables=obs, input_params=[X], weight_params=weights)
    rng = np.random.default_rng(7)
    x, w = np.array([[0.2], [1.1]]), rng.uniform(-1, 1, len(weights))

    def value(xv, wv):
        bound = qc.assign_parameters({X: xv, **dict(zip(weights, wv, strict=True))})
        return Statevector(bound).expectation_value(obs).real

    np.testing.assert_allclose(
        net.forward(x, w)[:, 0], [value(xv, w) for xv in x[:, 0]], atol=1e-10
    )
    _, weight_grad = net.backward(x, w)
    h, eye = 1e-6, np.eye(len(w))
    reference = [
        [(value(xv, w + h * e) - value(xv, w - h * e)) / (2 * h) for e in eye] for xv in x[:, 0]
    ]
    np.testing.assert_allclose(weight_grad[:, 0, :], reference, atol=1e-6)


def test_small_evolutions_stay_on_the_kernels():
    """Two- and three-qubit evolutions compile to ops the CUDA kernels run (parity phases and
    dense basis changes of at most three targets)."""
    for name in ("pauli_noncommuting_weight", "pauli_three_qubits", "hamiltonian_gate"):
        qc = CASES[name]()
        program = compile_circuit(qc, sorted(qc.parameters, key=lambda p: p.name))
        assert unsupported_reason(program) is None

"""Gate angles with ``abs()`` and ``conjugate()`` of parameters: values and gradients against
qiskit-machine-learning's EstimatorQNN and against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN

from gpuqnn import EstimatorQNN

X, W = Parameter("x"), Parameter("w")
EXPRESSIONS = {
    "abs": lambda: X.abs(),
    "conjugate": lambda: X.conjugate(),
    "abs_of_product": lambda: (X * W - 0.5).abs(),
    "conjugate_of_sum": lambda: (2 * X + W).conjugate(),
    "abs_times_weight": lambda: X.abs() * W + W.conjugate().abs(),
}


def _circuit(angle) -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.ry(angle, 0)
    qc.crx(angle * 0.5 + W, 0, 1)
    qc.rz(W, 1)
    qc.h(1)
    return qc


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
def test_abs_and_conjugate_angles(name):
    qc = _circuit(EXPRESSIONS[name]())
    obs = SparsePauliOp.from_list([("ZI", 1.0), ("XZ", 0.5)])
    kwargs = dict(
        circuit=qc, observables=obs, input_params=[X], weight_params=[W], input_gradients=True
    )
    ours, theirs = EstimatorQNN(**kwargs), QmlEstimatorQNN(**kwargs)
    x = np.array([[-1.3], [-0.2], [0.45], [2.1]])  # both signs, away from abs's kinks
    w = np.array([0.7])
    np.testing.assert_allclose(ours.forward(x, w), theirs.forward(x, w), atol=1e-10)
    input_grad, weight_grad = ours.backward(x, w)
    ref_input, ref_weight = theirs.backward(x, w)
    np.testing.assert_allclose(input_grad, ref_input, atol=1e-8)
    np.testing.assert_allclose(weight_grad, ref_weight, atol=1e-8)

    def value(xv, wv):
        bound = qc.assign_parameters({X: xv, W: wv})
        return Statevector(bound).expectation_value(obs).real

    h = 1e-6
    fd_x = [(value(r[0] + h, w[0]) - value(r[0] - h, w[0])) / (2 * h) for r in x]
    fd_w = [(value(r[0], w[0] + h) - value(r[0], w[0] - h)) / (2 * h) for r in x]
    np.testing.assert_allclose(input_grad[:, 0, 0], fd_x, atol=1e-6)
    np.testing.assert_allclose(weight_grad[:, 0, 0], fd_w, atol=1e-6)
    assert np.abs(fd_x).max() > 0.05


def test_sign_times_weight_has_a_gradient():
    """``sign(w) * w`` differentiates to ``sign(w) + 2 w DiracDelta(w)``; NumPy has no
    DiracDelta (it raised NameError), and as a function it is zero wherever defined."""
    w = Parameter("w")
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.ry(w.sign() * w, 0)
    qnn = EstimatorQNN(circuit=qc, weight_params=[w], observables=SparsePauliOp("Z"))
    for value in (0.3, -0.3):
        _none, grad = qnn.backward(None, [value])
        np.testing.assert_allclose(grad[0, 0, 0], -np.cos(abs(value)) * np.sign(value))

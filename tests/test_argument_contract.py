"""Argument contracts from issue 19: complex input_data, weights and cotangents are refused unless
their imaginary parts are zero (they were truncated silently); vjp and backward agree on None."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from qiskit.quantum_info import SparsePauliOp

from gpuqnn import EstimatorQNN
from gpuqnn.examples import zz_real_amplitudes

CIRCUIT, FEATURES, ANSATZ = zz_real_amplitudes(2, reps=1)


def _network() -> EstimatorQNN:
    return EstimatorQNN(
        circuit=CIRCUIT,
        input_params=FEATURES.parameters,
        weight_params=ANSATZ.parameters,
        observables=SparsePauliOp("ZZ"),
        input_gradients=True,
    )


X = np.array([[0.3, 0.7], [1.1, -0.4]])
W = np.linspace(0.1, 0.4, ANSATZ.num_parameters)
G = np.ones((2, 1))


@pytest.mark.parametrize("argument", ["input_data", "weights", "cotangent"])
def test_non_zero_imaginary_parts_are_refused_naming_the_argument(argument):
    network = _network()
    args = {"input_data": X, "weights": W, "cotangent": G}
    args[argument] = args[argument] + 0.5j
    with pytest.raises(ValueError, match=f"{argument} must be real"):
        network.vjp(args["input_data"], args["weights"], args["cotangent"])
    if argument != "cotangent":
        with pytest.raises(ValueError, match=f"{argument} must be real"):
            network.forward(args["input_data"], args["weights"])


def test_zero_imaginary_parts_are_accepted_without_a_warning():
    network = _network()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = network.forward(X + 0j, W + 0j)
        grads = network.vjp(X + 0j, W + 0j, G + 0j)
    np.testing.assert_allclose(got, network.forward(X, W))
    np.testing.assert_allclose(grads[1], network.vjp(X, W, G)[1])


def test_vjp_without_inputs_gives_none_as_backward_does():
    """Issue 19: vjp returned a (1, 0) input gradient where backward gives None."""
    network = EstimatorQNN(circuit=ANSATZ, weight_params=ANSATZ.parameters, input_gradients=True)
    input_grad, weight_grad = network.vjp(None, W, np.ones((1, 1)))
    assert input_grad is None and network.backward(None, W)[0] is None
    assert weight_grad.shape == (ANSATZ.num_parameters,)

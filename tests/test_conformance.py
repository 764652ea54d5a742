"""One conformance suite over every engine: the same value and gradient assertions run on each
engine of :data:`engines.ENGINES` (the ``engine`` fixture), the way qsim runs one test body
against all its simulators.

For each representative circuit (estimators and samplers, parameters in sums, scalings and
products, every gate family of ``circuits.layered_network``, the ``zz_real_amplitudes`` example),
both gradient methods and both dtypes, an engine's ``forward``, ``backward`` (input and weight
gradients) and ``vjp`` must match INDEPENDENT references, computed once per circuit without
gpuqnn: qiskit's ``Statevector`` of each bound circuit for the values, and
qiskit-machine-learning's own networks on its exact default primitives for the Jacobians (whose
contraction with the cotangent is the reference ``vjp``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pytest
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn.examples import parity, zz_real_amplitudes

from circuits import layered_network, observables

TOL = {"complex128": 1e-10, "complex64": 2e-4}
"""Absolute tolerance of values and Jacobians per dtype; a ``vjp`` sums over samples and
outputs, so it gets ten times as much."""


@dataclass(frozen=True)
class Case:
    """A network's arguments (all but the engine's and the test's) and the data to run it on."""

    cls: type
    kwargs: dict[str, Any]
    inputs: np.ndarray
    weights: np.ndarray


def _estimator_layered() -> Case:
    """4 qubits of random gate layers, two observables (one a multi-term Pauli sum)."""
    qc, x, w = layered_network(3, 4)
    rng = np.random.default_rng(3)
    kwargs = {"circuit": qc, "observables": observables(4, rng), "input_params": x}
    return Case(EstimatorQNN, {**kwargs, "weight_params": w}, *_data(rng, (5, 2), 5, -2, 2))


def _estimator_zz() -> Case:
    """The example network on 3 qubits, the default observable Z...Z."""
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=2)
    kwargs = {"circuit": qc, "input_params": feature_map.parameters}
    kwargs["weight_params"] = ansatz.parameters
    rng = np.random.default_rng(5)
    return Case(EstimatorQNN, kwargs, *_data(rng, (4, 3), ansatz.num_parameters, 0, np.pi))


def _sampler_parity() -> Case:
    """The example network on 4 qubits, its distribution mapped to 2 outputs by parity."""
    qc, feature_map, ansatz = zz_real_amplitudes(4, reps=2)
    kwargs = {"circuit": qc, "input_params": feature_map.parameters, "interpret": parity}
    kwargs.update(weight_params=ansatz.parameters, output_shape=2)
    rng = np.random.default_rng(4)
    return Case(SamplerQNN, kwargs, *_data(rng, (3, 4), ansatz.num_parameters, 0, np.pi))


def _sampler_distribution() -> Case:
    """3 qubits of random gate layers, the whole distribution (8 outputs)."""
    qc, x, w = layered_network(5, 3)
    rng = np.random.default_rng(6)
    kwargs = {"circuit": qc, "input_params": x, "weight_params": w}
    return Case(SamplerQNN, kwargs, *_data(rng, (4, 2), 5, -1, 1))


def _data(rng: np.random.Generator, shape: tuple, num_weights: int, low: float, high: float):
    return rng.uniform(low, high, shape), rng.uniform(low, high, num_weights)


CASES: dict[str, Callable[[], Case]] = {
    "estimator-layered": _estimator_layered,
    "estimator-zz": _estimator_zz,
    "sampler-parity": _sampler_parity,
    "sampler-distribution": _sampler_distribution,
}


class Reference(NamedTuple):
    """The expected (B, O) values and (B, O, I), (B, O, W) Jacobians of a case."""

    forward: np.ndarray
    input_grad: np.ndarray
    weight_grad: np.ndarray


def _statevector_outputs(case: Case, values: np.ndarray) -> np.ndarray:
    """One sample's outputs from qiskit's Statevector of the bound circuit."""
    kwargs = case.kwargs
    circuit = kwargs["circuit"]
    params = [*kwargs["input_params"], *kwargs["weight_params"]]
    state = Statevector(circuit.assign_parameters(dict(zip(params, values, strict=True))))
    if case.cls is EstimatorQNN:
        default = [SparsePauliOp("Z" * circuit.num_qubits)]
        return np.array(
            [state.expectation_value(op).real for op in kwargs.get("observables") or default]
        )
    probabilities = state.probabilities()
    if "interpret" not in kwargs:
        return probabilities
    outputs = np.zeros(kwargs["output_shape"])
    for key, probability in enumerate(probabilities):
        outputs[kwargs["interpret"](key)] += probability
    return outputs


@functools.cache
def reference(name: str) -> Reference:
    """The case's values from Statevector and its Jacobians from qiskit-machine-learning (exact
    primitives), once per session; checks that the two references agree with each other."""
    case = CASES[name]()
    forward = np.array([_statevector_outputs(case, [*x, *case.weights]) for x in case.inputs])
    qml_cls = QmlEstimatorQNN if case.cls is EstimatorQNN else QmlSamplerQNN
    qml = qml_cls(**case.kwargs, input_gradients=True)
    np.testing.assert_allclose(qml.forward(case.inputs, case.weights), forward, atol=1e-12)
    input_grad, weight_grad = qml.backward(case.inputs, case.weights)
    assert np.abs(weight_grad).max() > 1e-2 and np.abs(input_grad).max() > 1e-2  # not vacuous
    return Reference(forward, input_grad, weight_grad)


def _assert_close(got: Any, expected: np.ndarray, atol: float) -> None:
    """``got`` is a float64 NumPy array of ``expected``'s shape and values, to ``atol``."""
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
@pytest.mark.parametrize("method", ["adjoint", "parameter_shift"])
@pytest.mark.parametrize("name", list(CASES))
def test_values_gradients_and_vjp_match_the_references(
    engine, name: str, method: str, dtype: str
) -> None:
    """forward, backward and vjp on the engine against Statevector and qiskit-machine-learning;
    lists in (host data) give the same values as NumPy."""
    case, expected, tol = CASES[name](), reference(name), TOL[dtype]
    network = engine(
        case.cls, **case.kwargs, input_gradients=True, gradient_method=method, dtype=dtype
    )
    x, w = case.inputs, case.weights
    _assert_close(network.forward(x, w), expected.forward, tol)
    input_grad, weight_grad = network.backward(x, w)
    _assert_close(input_grad, expected.input_grad, tol)
    _assert_close(weight_grad, expected.weight_grad, tol)
    cotangent = np.random.default_rng(7).normal(size=expected.forward.shape)
    input_vjp, weight_vjp = network.vjp(x, w, cotangent)
    _assert_close(input_vjp, np.einsum("bo,boi->bi", cotangent, expected.input_grad), 10 * tol)
    _assert_close(weight_vjp, np.einsum("bo,bow->w", cotangent, expected.weight_grad), 10 * tol)
    _assert_close(network.forward(x.tolist(), w.tolist()), expected.forward, tol)

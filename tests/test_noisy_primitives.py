"""qiskit's reference primitives in their noisy modes, served by the simulator (issue 19).

``StatevectorEstimator`` at a precision p gives exact values plus N(0, p**2), and
``StatevectorSampler`` the frequencies of its shots; gpuqnn reproduces both, and the
parameter-shift gradients qiskit-machine-learning computes over them, from exact values. These
check the statistics against qiskit-machine-learning over the same primitives, the seeding,
and that anything else still runs qiskit-machine-learning's code with one WARNING per network.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.primitives import StatevectorEstimator, StatevectorSampler
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.gradients import LinCombEstimatorGradient
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN

from gpuqnn import EstimatorQNN, SamplerQNN

ROUTING_LOGGER = "gpuqnn._network.routing"
X = np.array([[0.3, -0.7], [1.1, 0.4], [-0.5, 0.9]])
W = np.array([0.2, -0.4, 0.8, 0.5])


def circuit() -> tuple[QuantumCircuit, ParameterVector, ParameterVector]:
    """Two qubits, two inputs, four weights."""
    x, w = ParameterVector("x", 2), ParameterVector("w", 4)
    qc = QuantumCircuit(2)
    for qubit in range(2):
        qc.ry(x[qubit], qubit)
    qc.cx(0, 1)
    # w[3] drives two gates: its gradient sums two shift pairs
    for gate, weight, qubit in [("ry", 0, 0), ("rx", 1, 1), ("ry", 2, 0), ("rz", 3, 1)]:
        getattr(qc, gate)(w[weight], qubit)
    qc.cx(1, 0)
    qc.ry(w[3], 1)
    return qc, x, w


def estimator_qnn(cls: type, estimator: Any = None, **kwargs: Any) -> Any:
    qc, x, w = circuit()
    observables = [SparsePauliOp("ZI"), SparsePauliOp("XX")]
    return cls(
        circuit=qc,
        estimator=estimator,
        observables=observables,
        input_params=x,
        weight_params=w,
        **kwargs,
    )


def sampler_qnn(cls: type, sampler: Any = None, **kwargs: Any) -> Any:
    qc, x, w = circuit()
    return cls(circuit=qc, sampler=sampler, input_params=x, weight_params=w, **kwargs)


def served(qnn: Any) -> Any:
    """``qnn``, checked to run on gpuqnn's simulator (not qiskit-machine-learning's code)."""
    assert ", engine: " in repr(qnn), repr(qnn)
    return qnn


def exact_estimator_values() -> tuple[np.ndarray, np.ndarray]:
    qnn = estimator_qnn(EstimatorQNN)
    return qnn.forward(X, W), qnn.backward(X, W)[1]


def test_estimator_forward_noise_has_the_precision_and_exact_mean() -> None:
    exact, _ = exact_estimator_values()
    qnn = estimator_qnn(EstimatorQNN, StatevectorEstimator(), default_precision=0.05)
    assert qnn._simulator_serves_forward()
    draws = np.stack([qnn.forward(X, W) for _ in range(400)])  # (400, 3, 2)
    noise = draws - exact
    assert abs(noise.mean()) < 4 * 0.05 / np.sqrt(noise.size)
    assert noise.std() == pytest.approx(0.05, rel=0.05)
    # seed None: the draws of different outputs and rows are independent
    assert abs(np.corrcoef(noise[:, 0, 0], noise[:, 0, 1])[0, 1]) < 0.2


def test_estimator_forward_with_an_int_seed_equals_qiskit_up_to_rounding() -> None:
    """qiskit restarts ``default_rng(seed)`` for every pub (one per observable): gpuqnn draws
    the same normals, so only the exact values' rounding differs."""
    ours = served(estimator_qnn(EstimatorQNN, StatevectorEstimator(seed=11)))
    theirs = estimator_qnn(QmlEstimatorQNN, StatevectorEstimator(seed=11))
    np.testing.assert_allclose(ours.forward(X, W), theirs.forward(X, W), atol=1e-12)
    np.testing.assert_array_equal(ours.forward(X, W), ours.forward(X, W))  # repeatable


def test_estimator_generator_seed_continues_its_stream() -> None:
    qnn = served(estimator_qnn(EstimatorQNN, StatevectorEstimator(seed=np.random.default_rng(5))))
    first, second = qnn.forward(X, W), qnn.forward(X, W)
    assert not np.array_equal(first, second)
    again = estimator_qnn(EstimatorQNN, StatevectorEstimator(seed=np.random.default_rng(5)))
    np.testing.assert_array_equal(again.forward(X, W), first)


def test_estimator_gradient_spread_matches_qiskit_machine_learning() -> None:
    """The gradient runs at the estimator's default_precision, each shifted evaluation with
    its own draw: mean the exact gradient, spread as qiskit-machine-learning's."""
    _, exact = exact_estimator_values()
    p = 0.1
    ours = estimator_qnn(EstimatorQNN, StatevectorEstimator(default_precision=p))
    assert ours.resolved_gradient_method() == "parameter_shift"
    theirs = estimator_qnn(QmlEstimatorQNN, StatevectorEstimator(default_precision=p))
    x = X[:1]
    gpu = np.stack([ours.backward(x, W)[1] for _ in range(300)]) - exact[:1]
    ref = np.stack([theirs.backward(x, W)[1] for _ in range(40)]) - exact[:1]
    assert abs(gpu.mean()) < 4 * gpu.std() / np.sqrt(gpu.size)
    # one shift pair per gate: (n+ - n-)/2 has std p/sqrt(2); w[3] is in two gates
    per_gate = gpu[..., :3].std()
    assert per_gate == pytest.approx(p / np.sqrt(2), rel=0.1)
    assert gpu[..., 3].std() == pytest.approx(p, rel=0.15)
    assert ref[..., :3].std() == pytest.approx(per_gate, rel=0.3)


def test_estimator_gradient_with_an_int_seed_is_exact_as_in_qiskit() -> None:
    """qiskit restarts the seed for every shifted evaluation: equal draws, which cancel."""
    _, exact = exact_estimator_values()
    estimator = StatevectorEstimator(default_precision=0.1, seed=3)
    ours = served(estimator_qnn(EstimatorQNN, estimator)).backward(X, W)[1]
    theirs = estimator_qnn(QmlEstimatorQNN, estimator).backward(X, W)[1]
    np.testing.assert_allclose(ours, exact, atol=1e-12)
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_sampler_shot_frequencies_follow_the_exact_probabilities() -> None:
    exact = sampler_qnn(SamplerQNN).forward(X, W)
    qnn = sampler_qnn(SamplerQNN, StatevectorSampler(default_shots=256))
    assert qnn._simulator_serves_forward() and qnn._simulator_serves_backward()
    draws = np.stack([qnn.forward(X, W) for _ in range(200)])
    np.testing.assert_allclose(draws.sum(axis=-1), 1.0)
    assert np.all(draws * 256 == np.round(draws * 256))  # whole counts of 256 shots
    standard_error = np.sqrt(exact * (1 - exact) / 256 / 200)
    assert np.all(np.abs(draws.mean(axis=0) - exact) < 5 * standard_error + 1e-12)
    np.testing.assert_allclose(draws.std(axis=0), np.sqrt(exact * (1 - exact) / 256), rtol=0.2)


def test_sampler_with_an_int_seed_equals_qiskit_machine_learning() -> None:
    """qiskit seeds every circuit alike and draws with ``Generator.choice``; gpuqnn uses the
    same uniforms, so the counts agree (forward and the parameter-shift gradient)."""
    ours = served(sampler_qnn(SamplerQNN, StatevectorSampler(seed=42)))
    theirs = sampler_qnn(QmlSamplerQNN, StatevectorSampler(seed=42))
    np.testing.assert_allclose(ours.forward(X, W), theirs.forward(X, W), atol=1e-12)
    np.testing.assert_allclose(ours.backward(X, W)[1], theirs.backward(X, W)[1], atol=1e-12)


def test_sampler_gradient_mean_is_the_exact_gradient() -> None:
    exact = sampler_qnn(SamplerQNN).backward(X[:1], W)[1]
    qnn = served(sampler_qnn(SamplerQNN, StatevectorSampler(default_shots=512)))
    grads = np.stack([qnn.backward(X[:1], W)[1] for _ in range(200)])
    spread = grads.std(axis=0)
    assert np.all(np.abs(grads.mean(axis=0) - exact) < 5 * spread / np.sqrt(200) + 1e-12)
    assert spread.max() > 0.005  # every shifted evaluation draws its own shots


def test_delegation_warns_once_per_network_naming_primitive_reason_and_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class MyEstimator(StatevectorEstimator):
        """A subclass: its results may differ, so gpuqnn must not stand in."""

    qnn = estimator_qnn(EstimatorQNN, MyEstimator(seed=1))
    with caplog.at_level(logging.WARNING, logger=ROUTING_LOGGER):
        qnn.forward(X, W)
        qnn.forward(X, W)
        qnn.backward(X, W)
    records = [r for r in caplog.records if r.name == ROUTING_LOGGER]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    assert "MyEstimator" in message and "subclass of StatevectorEstimator" in message
    assert "gpuqnn.primitives" in message and "StatevectorEstimator" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=ROUTING_LOGGER):
        estimator_qnn(EstimatorQNN, MyEstimator()).forward(X, W)  # another network warns too
        estimator_qnn(EstimatorQNN, StatevectorEstimator()).forward(X, W)  # served: silent
    assert len([r for r in caplog.records if r.name == ROUTING_LOGGER]) == 1


class AerLikeSampler:
    """An unknown sampler (as Aer's or a backend's): counts from qiskit's sampler."""

    def __init__(self) -> None:
        self.calls = 0
        self._inner = StatevectorSampler(default_shots=64, seed=0)

    def run(self, pubs: Any, *, shots: int | None = None) -> Any:
        self.calls += 1
        return self._inner.run(pubs, shots=shots)


def test_unknown_primitives_and_gradients_still_delegate(caplog: pytest.LogCaptureFixture) -> None:
    sampler = AerLikeSampler()
    qnn = sampler_qnn(SamplerQNN, sampler)
    with caplog.at_level(logging.WARNING, logger=ROUTING_LOGGER):
        qnn.forward(X, W)
    assert sampler.calls == 1 and not qnn._simulator_serves_forward()
    assert "AerLikeSampler" in caplog.records[0].getMessage()
    estimator = StatevectorEstimator(default_precision=0.1)
    lin_comb = estimator_qnn(
        EstimatorQNN, estimator, gradient=LinCombEstimatorGradient(estimator=estimator)
    )
    assert lin_comb._simulator_serves_forward() and not lin_comb._simulator_serves_backward()
    assert "LinCombEstimatorGradient" in lin_comb._route().reason

"""gpuqnn.primitives inside qiskit-machine-learning and qiskit-algorithms: its own EstimatorQNN
and SamplerQNN, VQC and VQR trained end to end, VQE; and gpuqnn's networks given them."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.circuit.library import real_amplitudes, zz_feature_map
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.algorithms import VQC, VQR
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN
from qiskit_machine_learning.optimizers import COBYLA, L_BFGS_B

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn.primitives import Estimator, EstimatorGradient, Sampler, SamplerGradient


def parity(bits: int) -> int:
    return bin(bits).count("1") % 2


def assert_same_network_outputs(ours, ref, inputs, weights, atol=1e-9) -> None:
    np.testing.assert_allclose(
        ours.forward(inputs, weights), ref.forward(inputs, weights), rtol=0, atol=atol
    )
    for mine, theirs in zip(
        ours.backward(inputs, weights), ref.backward(inputs, weights), strict=True
    ):
        assert mine is not None and theirs is not None
        assert np.abs(theirs).max() > 1e-3
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=atol)


@pytest.mark.parametrize("gradient", [False, True], ids=["default-gradient", "our-gradient"])
def test_qml_networks_with_our_primitives_equal_their_defaults(zz_two_qubit, gradient) -> None:
    common = {
        "circuit": zz_two_qubit.circuit,
        "input_params": zz_two_qubit.inputs,
        "weight_params": zz_two_qubit.weights,
        "input_gradients": True,
    }
    rng = np.random.default_rng(3)
    inputs, weights = rng.uniform(-1, 1, (6, 2)), rng.uniform(-1, 1, len(zz_two_qubit.weights))
    estimator, sampler = Estimator(), Sampler()
    observables = [SparsePauliOp("ZZ"), SparsePauliOp.from_list([("XI", 0.5), ("IY", -1)])]
    ours = QmlEstimatorQNN(
        **common,
        observables=observables,
        estimator=estimator,
        gradient=EstimatorGradient(estimator) if gradient else None,
    )
    assert_same_network_outputs(
        ours, QmlEstimatorQNN(**common, observables=observables), inputs, weights
    )
    ours = QmlSamplerQNN(
        **common,
        interpret=parity,
        output_shape=2,
        sampler=sampler,
        gradient=SamplerGradient(sampler) if gradient else None,
    )
    assert_same_network_outputs(
        ours, QmlSamplerQNN(**common, interpret=parity, output_shape=2), inputs, weights
    )


def test_gpuqnn_networks_serve_exact_primitives_and_delegate_noisy_ones(zz_two_qubit) -> None:
    common = {
        "circuit": zz_two_qubit.circuit,
        "input_params": zz_two_qubit.inputs,
        "weight_params": zz_two_qubit.weights,
        "input_gradients": True,
    }
    rng = np.random.default_rng(4)
    inputs, weights = rng.uniform(-1, 1, (5, 2)), rng.uniform(-1, 1, len(zz_two_qubit.weights))
    exact = EstimatorQNN(**common, estimator=Estimator(), gradient=EstimatorGradient(Estimator()))
    assert exact._simulator_serves_forward() and exact._simulator_serves_backward()
    assert_same_network_outputs(exact, QmlEstimatorQNN(**common), inputs, weights)
    sampled = SamplerQNN(**common, sampler=Sampler(), gradient=SamplerGradient())
    assert sampled._simulator_serves_forward() and sampled._simulator_serves_backward()
    # noisy primitives: the network calls them, as qiskit-machine-learning's network does
    noisy = EstimatorQNN(**common, estimator=Estimator(default_precision=0.01, seed=2))
    assert not noisy._simulator_serves_forward()
    reference = QmlEstimatorQNN(**common, estimator=Estimator(default_precision=0.01, seed=2))
    np.testing.assert_array_equal(
        noisy.forward(inputs, weights), reference.forward(inputs, weights)
    )
    shots = SamplerQNN(**common, sampler=Sampler(shots=500, seed=2))
    assert not shots._simulator_serves_forward()
    probabilities = shots.forward(inputs, weights)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(probabilities, sampled.forward(inputs, weights), atol=0.1)
    assert np.all(probabilities * 500 == np.round(probabilities * 500))  # shot frequencies


def fit_vqc(sampler, x, y) -> tuple[VQC, list[float]]:
    losses: list[float] = []
    kwargs = {} if sampler is None else {"sampler": sampler}
    vqc = VQC(
        feature_map=zz_feature_map(2),
        ansatz=real_amplitudes(2, reps=1),
        optimizer=L_BFGS_B(maxiter=4),
        initial_point=np.linspace(-0.5, 0.5, 4),
        callback=lambda _w, loss: losses.append(float(loss)),
        **kwargs,
    )
    vqc.fit(x, y)
    return vqc, losses


def test_vqc_trains_with_our_sampler_like_with_the_reference(two_feature_data) -> None:
    x, y = two_feature_data
    vqc, losses = fit_vqc(Sampler(), x, y)
    _, reference = fit_vqc(None, x, y)
    assert len(losses) == len(reference) >= 3
    np.testing.assert_allclose(losses, reference, rtol=0, atol=1e-7)
    assert losses[-1] < losses[0] - 0.02
    assert vqc.score(x, y) >= 0.7


def test_vqr_trains_with_our_estimator_like_with_the_reference(two_feature_data) -> None:
    x, _ = two_feature_data
    target = np.sin(2 * x[:, 0]) * x[:, 1]
    runs = []
    for estimator in (Estimator(), None):
        losses: list[float] = []
        kwargs = {} if estimator is None else {"estimator": estimator}
        vqr = VQR(
            feature_map=zz_feature_map(2),
            ansatz=real_amplitudes(2, reps=1),
            optimizer=COBYLA(maxiter=12),
            initial_point=np.full(4, 0.3),
            callback=lambda _w, loss, losses=losses: losses.append(float(loss)),
            **kwargs,
        )
        vqr.fit(x, target)
        runs.append((vqr.predict(x), losses))
    (ours, losses), (ref_predictions, reference) = runs
    assert len(losses) == len(reference) >= 10
    np.testing.assert_allclose(losses, reference, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours, ref_predictions, rtol=0, atol=1e-9)
    assert min(losses) < losses[0]


def test_qiskit_algorithms_vqe_with_our_estimator_and_gradient() -> None:
    qiskit_algorithms = pytest.importorskip("qiskit_algorithms")
    from qiskit.primitives import StatevectorEstimator  # noqa: PLC0415
    from qiskit_algorithms.optimizers import SLSQP  # noqa: PLC0415

    hamiltonian = SparsePauliOp.from_list(
        [("II", -1.05), ("IZ", 0.39), ("ZI", -0.39), ("ZZ", -0.01), ("XX", 0.18)]
    )
    ansatz = real_amplitudes(2, reps=1)
    results = []
    for estimator, gradient in [
        (StatevectorEstimator(), None),
        (Estimator(), None),
        (Estimator(), EstimatorGradient()),
    ]:
        vqe = qiskit_algorithms.VQE(
            estimator, ansatz, SLSQP(maxiter=60), initial_point=np.full(4, 0.1), gradient=gradient
        )
        results.append(vqe.compute_minimum_eigenvalue(hamiltonian).eigenvalue)
    exact = np.linalg.eigvalsh(hamiltonian.to_matrix()).min()
    assert results[0] == pytest.approx(exact, abs=1e-5)
    assert results[1] == pytest.approx(results[0], abs=1e-9)  # the same run, step for step
    assert results[2] == pytest.approx(exact, abs=1e-5)  # analytic gradients converge too

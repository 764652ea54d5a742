"""gpuqnn's networks inside qiskit-machine-learning's ecosystem: NeuralNetworkClassifier with
gradient-free and gradient-based optimizers, TorchConnector in a torch model, and pickle/dill
round trips. Training runs are compared step by step with the same run on qiskit-machine-learning's
own networks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.algorithms import NeuralNetworkClassifier, NeuralNetworkRegressor
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN
from qiskit_machine_learning.optimizers import COBYLA, L_BFGS_B

from gpuqnn import EstimatorQNN, SamplerQNN


def parity(bits: int) -> int:
    """Module level, so that pickle can store a SamplerQNN that uses it."""
    return bin(bits).count("1") % 2


def make_network(kind: str, circuit, qml: bool = False, **extra):
    common = {
        "circuit": circuit.circuit,
        "input_params": circuit.inputs,
        "weight_params": circuit.weights,
        **extra,
    }
    if kind == "estimator":
        return (QmlEstimatorQNN if qml else EstimatorQNN)(**common)
    return (QmlSamplerQNN if qml else SamplerQNN)(**common, interpret=parity, output_shape=2)


def fit(qnn, optimizer, x: np.ndarray, y: np.ndarray) -> tuple[NeuralNetworkClassifier, list]:
    losses: list[float] = []
    classifier = NeuralNetworkClassifier(
        qnn,
        optimizer=optimizer,
        one_hot=False,
        callback=lambda _weights, loss: losses.append(float(loss)),
        initial_point=np.linspace(-0.5, 0.5, qnn.num_weights),
    )
    classifier.fit(x, y)
    return classifier, losses


# ---- NeuralNetworkClassifier ------------------------------------------------------------------


@pytest.mark.parametrize(
    "optimizer",
    [lambda: COBYLA(maxiter=15), lambda: L_BFGS_B(maxiter=5)],
    ids=["cobyla", "l_bfgs_b"],
)
@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_neural_network_classifier_trains(kind, optimizer, zz_two_qubit, two_feature_data):
    x, labels = two_feature_data
    y = 2 * labels - 1 if kind == "estimator" else labels  # {-1, 1} for one expectation value
    classifier, losses = fit(make_network(kind, zz_two_qubit), optimizer(), x, y)
    # the training loss decreases
    assert len(losses) >= 3
    assert classifier.fit_result.fun < losses[0] - 0.05
    assert min(losses) < losses[0] - 0.05
    predictions = classifier.predict(x)
    assert predictions.shape[0] == x.shape[0]
    assert set(np.unique(predictions)) <= set(np.unique(y))
    assert classifier.score(x, y) >= 0.75
    # the same run on qiskit-machine-learning's network takes the same steps
    _, reference = fit(make_network(kind, zz_two_qubit, qml=True), optimizer(), x, y)
    assert len(losses) == len(reference)
    np.testing.assert_allclose(losses, reference, rtol=0, atol=1e-6)


def test_neural_network_regressor_trains(zz_two_qubit, two_feature_data) -> None:
    x, _ = two_feature_data
    target = np.sin(2 * x[:, 0]) * x[:, 1]
    runs = []
    for qml in (False, True):
        losses: list[float] = []
        regressor = NeuralNetworkRegressor(
            make_network("estimator", zz_two_qubit, qml=qml),
            optimizer=L_BFGS_B(maxiter=5),
            callback=lambda _weights, loss, losses=losses: losses.append(float(loss)),
            initial_point=np.full(len(zz_two_qubit.weights), 0.3),
        )
        regressor.fit(x, target)
        runs.append(losses)
    losses, reference = runs
    assert min(losses) < losses[0] - 0.01
    np.testing.assert_allclose(losses, reference, rtol=0, atol=1e-6)


# ---- TorchConnector ----------------------------------------------------------------------------


def test_torch_connector_gradients_match_qml(zz_two_qubit, two_feature_data) -> None:
    torch = pytest.importorskip("torch")
    from qiskit_machine_learning.connectors import TorchConnector  # noqa: PLC0415

    extra = {
        "input_gradients": True,
        "observables": [SparsePauliOp("ZZ"), SparsePauliOp.from_list([("XI", 0.5), ("IY", -1.0)])],
    }
    initial = np.linspace(-0.7, 0.9, len(zz_two_qubit.weights))
    x_np, labels = two_feature_data
    target = torch.tensor(np.stack([2.0 * labels - 1, 0.5 - labels], axis=1))
    results = []
    for qml in (False, True):
        model = TorchConnector(
            make_network("estimator", zz_two_qubit, qml=qml, **extra), initial_weights=initial
        )
        x = torch.tensor(x_np, dtype=torch.float64, requires_grad=True)
        output = model(x)
        loss = ((output - target) ** 2).mean()
        loss.backward()
        results.append(
            [output.detach().numpy(), model.weight.grad.detach().numpy(), x.grad.detach().numpy()]
        )
    (ours_out, ours_w, ours_x), (ref_out, ref_w, ref_x) = results
    assert ours_out.shape == (20, 2)
    np.testing.assert_allclose(ours_out, ref_out, rtol=0, atol=1e-9)
    assert np.abs(ours_w).max() > 1e-3  # a real gradient, not zeros
    np.testing.assert_allclose(ours_w, ref_w, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours_x, ref_x, rtol=0, atol=1e-6)


def test_torch_model_with_connector_trains(zz_two_qubit, two_feature_data) -> None:
    torch = pytest.importorskip("torch")
    from qiskit_machine_learning.connectors import TorchConnector  # noqa: PLC0415

    torch.manual_seed(0)
    qnn = make_network("estimator", zz_two_qubit, input_gradients=True)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 2),
        TorchConnector(qnn, initial_weights=np.full(qnn.num_weights, 0.1)),
        torch.nn.Linear(1, 1),
    )
    x_np, labels = two_feature_data
    x = torch.tensor(x_np, dtype=torch.float32)
    y = torch.tensor(2.0 * labels - 1.0, dtype=torch.float32).unsqueeze(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model[1].weight.grad is not None and model[1].weight.grad.abs().max() > 0
    assert model[0].weight.grad.abs().max() > 0  # gradients flow through the QNN's inputs
    assert losses[-1] < losses[0] - 0.05


# ---- pickle / dill -----------------------------------------------------------------------------


def stored_network(case: str, library: str, circuit):
    """pickle gets a module-level interpret function, dill a lambda."""
    interpret, size = (parity, 2) if library == "pickle" else (lambda b: (b * 7 + 1) % 3, 3)
    common = {
        "circuit": circuit.circuit,
        "input_params": circuit.inputs,
        "weight_params": circuit.weights,
        "input_gradients": True,
    }
    if case == "estimator":
        return EstimatorQNN(**common, observables=[SparsePauliOp("ZZ"), SparsePauliOp("XY")])
    if case == "estimator-complex64":
        return EstimatorQNN(**common, dtype="complex64", max_memory=1 << 20)
    if case == "sampler-default-interpret":
        return SamplerQNN(**common)
    if case == "sampler-interpret":
        return SamplerQNN(**common, interpret=interpret, output_shape=size)
    return SamplerQNN(**common, interpret=interpret, output_shape=size, shots=200, seed=5)


@pytest.mark.parametrize(
    "case",
    [
        "estimator",
        "estimator-complex64",
        "sampler-default-interpret",
        "sampler-interpret",
        "sampler-shots",
    ],
)
@pytest.mark.parametrize("library", ["pickle", "dill"])
def test_round_trip_gives_identical_outputs(library: str, case: str, zz_two_qubit) -> None:
    module = pickle if library == "pickle" else pytest.importorskip("dill")
    qnn = stored_network(case, library, zz_two_qubit)
    rng = np.random.default_rng(8)
    inputs, weights = rng.uniform(-1, 1, (4, 2)), rng.uniform(-1, 1, len(zz_two_qubit.weights))
    # the copy is taken before the original runs, so that seeded shots start alike
    copy = module.loads(module.dumps(qnn))
    assert type(copy) is type(qnn)
    assert copy.output_shape == qnn.output_shape
    np.testing.assert_array_equal(copy.forward(inputs, weights), qnn.forward(inputs, weights))
    for a, b in zip(copy.backward(inputs, weights), qnn.backward(inputs, weights), strict=True):
        np.testing.assert_array_equal(a, b)
    # a network that has run can be stored too
    again = module.loads(module.dumps(qnn))
    assert again.forward(inputs, weights).shape == qnn.forward(inputs, weights).shape

"""qiskit-machine-learning's algorithms and TorchConnector accept gpuqnn's networks and train."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit_machine_learning.algorithms import NeuralNetworkClassifier, NeuralNetworkRegressor
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN
from qiskit_machine_learning.optimizers import COBYLA, L_BFGS_B

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn.examples import parity, zz_real_amplitudes


def _data(n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (n, 2))
    return x, (x[:, 0] * x[:, 1] > 0).astype(int)


def _losses() -> tuple[list[float], callable]:
    losses: list[float] = []
    return losses, lambda _weights, loss: losses.append(float(loss))


@pytest.mark.parametrize("optimizer", [COBYLA(maxiter=25), L_BFGS_B(maxiter=5)],
                         ids=["cobyla", "l_bfgs_b"])
@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_neural_network_classifier_trains(kind: str, optimizer) -> None:
    qc, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    common = {"circuit": qc, "input_params": feature_map.parameters,
              "weight_params": ansatz.parameters}
    qnn = (EstimatorQNN(**common) if kind == "estimator"
           else SamplerQNN(**common, interpret=parity, output_shape=2))
    x, y = _data()
    losses, callback = _losses()
    classifier = NeuralNetworkClassifier(qnn, optimizer=optimizer, callback=callback,
                                         initial_point=np.full(ansatz.num_parameters, 0.3))
    classifier.fit(x, 2 * y - 1 if kind == "estimator" else y)
    assert len(losses) >= 2
    assert min(losses[1:]) < losses[0]
    assert classifier.predict(x).shape[0] == x.shape[0]


def test_neural_network_regressor_trains() -> None:
    qc, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    qnn = EstimatorQNN(circuit=qc, input_params=feature_map.parameters,
                       weight_params=ansatz.parameters)
    x, _ = _data()
    target = np.sin(x[:, 0])
    losses, callback = _losses()
    regressor = NeuralNetworkRegressor(qnn, optimizer=L_BFGS_B(maxiter=5), callback=callback,
                                       initial_point=np.full(ansatz.num_parameters, 0.3))
    regressor.fit(x, target)
    assert min(losses[1:]) < losses[0]


def test_torch_connector_gradients_match_qml_and_training_decreases_loss() -> None:
    torch = pytest.importorskip("torch")
    from qiskit_machine_learning.connectors import TorchConnector

    qc, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    common = {"circuit": qc, "input_params": feature_map.parameters,
              "weight_params": ansatz.parameters, "input_gradients": True}
    initial = np.linspace(-0.5, 0.5, ansatz.num_parameters)
    ours = TorchConnector(EstimatorQNN(**common), initial_weights=initial)
    ref = TorchConnector(QmlEstimatorQNN(**common), initial_weights=initial)
    x_np, y_np = _data(12)
    x = torch.tensor(x_np, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(2.0 * y_np - 1.0, dtype=torch.float64)
    grads = []
    for model in (ours, ref):
        x.grad = None
        loss = ((model(x).squeeze(-1) - y) ** 2).mean()
        loss.backward()
        grads.append((model.weight.grad.detach().numpy().copy(), x.grad.detach().numpy().copy()))
    np.testing.assert_allclose(grads[0][0], grads[1][0], atol=1e-6)
    np.testing.assert_allclose(grads[0][1], grads[1][1], atol=1e-6)

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), ours, torch.nn.Linear(1, 1))
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    xs = torch.tensor(x_np, dtype=torch.float32)
    ys = torch.tensor(2.0 * y_np - 1.0, dtype=torch.float32)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = ((model(xs).squeeze(-1) - ys) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

"""An empty batch (no samples, 2-D or N-D) through ``forward``, ``backward``, ``vjp`` and
``TorchConnector``, on one device and sharded over CPU backends (issue 19).

What qiskit-machine-learning 0.9.1 does, and gpuqnn follows: ``forward`` of (0, num_inputs)
inputs gives (0, *output_shape) (its SamplerQNN; its EstimatorQNN fails there) and ``backward``
gives ``(None, None)`` (no parameter values, no gradients). Its N-D inputs with an empty axis
fail in a reshape; gpuqnn gives the same results with the batch shape kept. ``vjp`` (a gpuqnn
addition) gives gradients of the sum over no samples: an empty input gradient of the inputs'
shape and zero weight gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
from qiskit_machine_learning.neural_networks import SamplerQNN as QMLSamplerQNN

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._internals import use_backend
from gpuqnn._sim.backend import select_backend
from gpuqnn.examples import parity, zz_real_amplitudes

SHAPES = [(0, 2), (0, 3, 2), (3, 0, 2)]


def _network(kind: str, sharded: bool):
    qc, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    sampler = {"interpret": parity, "output_shape": 2} if kind == "sampler" else {}
    network = (SamplerQNN if sampler else EstimatorQNN)(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
        **sampler,
    )
    if sharded:
        use_backend(network, [select_backend("cpu"), select_backend("cpu")])
    return network, np.full(ansatz.num_parameters, 0.3)


@pytest.mark.parametrize("sharded", [False, True], ids=["one", "sharded"])
@pytest.mark.parametrize("kind", ["estimator", "sampler"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_empty_batch_gives_empty_results(kind: str, sharded: bool, shape: tuple) -> None:
    network, weights = _network(kind, sharded)
    inputs = np.zeros(shape)
    batch_shape = shape[:-1]
    output = network.forward(inputs, weights)
    assert output.shape == (*batch_shape, *network.output_shape)
    assert output.dtype == np.float64
    assert network.backward(inputs, weights) == (None, None)
    input_grad, weight_grad = network.vjp(
        inputs, weights, np.zeros((*batch_shape, *network.output_shape))
    )
    assert input_grad.shape == shape
    np.testing.assert_array_equal(weight_grad, np.zeros(network.num_weights))


def test_empty_batch_matches_qiskit_machine_learning() -> None:
    """On the 2-D empty batch qiskit-machine-learning handles, the same shapes and Nones."""
    network, weights = _network("sampler", sharded=False)
    reference = QMLSamplerQNN(
        circuit=network.circuit,
        input_params=network.input_params,
        weight_params=network.weight_params,
        interpret=parity,
        output_shape=2,
        input_gradients=True,
    )
    inputs = np.zeros((0, 2))
    assert network.forward(inputs, weights).shape == reference.forward(inputs, weights).shape
    assert network.backward(inputs, weights) == reference.backward(inputs, weights)


@pytest.mark.parametrize("sharded", [False, True], ids=["one", "sharded"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_empty_batch_through_torch_connector(sharded: bool, shape: tuple) -> None:
    torch = pytest.importorskip("torch")
    from gpuqnn import TorchConnector  # noqa: PLC0415

    network, weights = _network("sampler", sharded)
    model = TorchConnector(network, initial_weights=weights, dtype=torch.float64)
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    out = model(x)
    assert out.shape == (*shape[:-1], *network.output_shape)
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == shape
    torch.testing.assert_close(model.weight.grad, torch.zeros(network.num_weights).double())

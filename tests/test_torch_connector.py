"""gpuqnn.TorchConnector: torch.autograd.gradcheck in float64, a hybrid model's batch gradient
against per-sample gradients, qiskit-machine-learning's connector as the reference for its
behaviour, the dtype option, the zero-copy data path, warnings and errors."""

from __future__ import annotations

import sys
import types
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qiskit.quantum_info import SparsePauliOp  # noqa: E402
from qiskit_machine_learning.connectors import TorchConnector as QmlTorchConnector  # noqa: E402
from qiskit_machine_learning.exceptions import QiskitMachineLearningError  # noqa: E402
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN  # noqa: E402
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN  # noqa: E402

from gpuqnn import EstimatorQNN, SamplerQNN, TorchConnector  # noqa: E402

OBSERVABLES = [SparsePauliOp.from_list([("XYZ", 0.5), ("IZI", -1.0)]), SparsePauliOp("ZZZ")]


def parity(bits: int) -> int:
    return bin(bits).count("1") % 2


def two_digits(bits: int) -> tuple[int, int]:
    return bits % 2, (bits >> 1) % 3


def network(kind: str, circuit, qml: bool = False, **extra):
    common = {
        "circuit": circuit.circuit,
        "input_params": circuit.inputs,
        "weight_params": circuit.weights,
        "input_gradients": True,
        **extra,
    }
    if kind == "estimator":
        return (QmlEstimatorQNN if qml else EstimatorQNN)(**common, observables=OBSERVABLES)
    if kind == "sampler-2d":
        return (QmlSamplerQNN if qml else SamplerQNN)(
            **common, interpret=two_digits, output_shape=(2, 3)
        )
    return (QmlSamplerQNN if qml else SamplerQNN)(**common, interpret=parity, output_shape=2)


@pytest.mark.parametrize("kind", ["estimator", "sampler", "sampler-2d"])
def test_gradcheck_float64(kind, three_qubit) -> None:
    model = TorchConnector(network(kind, three_qubit), dtype=torch.float64)
    assert model.weight.dtype == torch.float64
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(4, 2, dtype=torch.float64, generator=generator, requires_grad=True)
    w = (torch.rand(3, dtype=torch.float64, generator=generator) * 2 - 1).requires_grad_()

    def function(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(model, {"weight": w}, (x,))

    assert torch.autograd.gradcheck(function, (x, w), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradcheck(
        function, (x[0].detach().requires_grad_(), w), eps=1e-6, atol=1e-7
    )  # a 1-D input: one sample without batch axis


def test_hybrid_batch_gradient_is_the_sum_of_per_sample_gradients(three_qubit) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 2),
        TorchConnector(network("estimator", three_qubit), dtype="input"),
        torch.nn.Linear(2, 1),
    ).double()
    x = torch.rand(6, 3, dtype=torch.float64)
    y = torch.rand(6, 1, dtype=torch.float64)

    def gradients(inputs: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
        model.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets, reduction="sum").backward()
        return [p.grad.clone() for p in model.parameters()]

    batch = gradients(x, y)
    per_sample = [gradients(x[i : i + 1], y[i : i + 1]) for i in range(6)]
    assert model[1].weight.dtype == torch.float64
    for k, total in enumerate(batch):
        assert total.abs().max() > 1e-4  # every layer gets a real gradient
        torch.testing.assert_close(total, sum(g[k] for g in per_sample), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_same_behaviour_as_qml_connector(kind, three_qubit) -> None:
    x_np = np.random.default_rng(5).uniform(-1, 1, (5, 2))
    results = []
    for connector, qml_network in ((TorchConnector, False), (QmlTorchConnector, True)):
        torch.manual_seed(42)
        model = connector(network(kind, three_qubit, qml=qml_network))
        x = torch.tensor(x_np, dtype=torch.float32, requires_grad=True)
        output = model(x)
        (output * torch.arange(1.0, 1.0 + output.shape[1])).sum().backward()
        one = model(x[0].detach())
        results.append(
            (
                model.weight.detach().clone(),
                output.detach(),
                model.weight.grad,
                x.grad,
                one.detach(),
            )
        )
        assert [name for name, _ in model.named_parameters()] == ["weight"]
    for ours, ref in zip(*results, strict=True):
        assert ours.dtype == ref.dtype == torch.float32
        assert ours.shape == ref.shape
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    weights = results[0][0]
    assert weights.min() >= -1 and weights.max() <= 1 and weights.std() > 0.1  # uniform(-1, 1)
    assert isinstance(TorchConnector(network(kind, three_qubit)), QmlTorchConnector)


def test_sparse_output_like_qml(three_qubit) -> None:
    pytest.importorskip("sparse")
    x_np = np.random.default_rng(6).uniform(-1, 1, (4, 2))
    initial = np.linspace(-0.5, 0.5, 3)
    outputs = []
    for connector, qml_network in ((TorchConnector, False), (QmlTorchConnector, True)):
        qnn = network("sampler", three_qubit, qml=qml_network, sparse=True)
        model = connector(qnn, initial_weights=initial)
        x = torch.tensor(x_np, requires_grad=True)
        output = model(x)
        assert output.layout == torch.sparse_coo and model.sparse
        (output * torch.tensor([[1.0, -2.0]] * 4).to_sparse()).sum().backward()
        outputs.append((output.to_dense(), model.weight.grad.to_dense(), x.grad.to_dense()))
        dense = connector(qnn, initial_weights=initial, sparse=False)
        assert dense(x).layout == torch.strided
    for ours, ref in zip(*outputs, strict=True):
        torch.testing.assert_close(ours.double(), ref.double(), rtol=0, atol=1e-6)
    assert outputs[0][1].abs().max() > 1e-3


def test_dtype_option(three_qubit) -> None:
    qnn = network("estimator", three_qubit)
    x64 = torch.rand(3, 2, dtype=torch.float64)
    default = TorchConnector(qnn)
    assert default.weight.dtype == torch.float32 and default(x64).dtype == torch.float32
    follow = TorchConnector(qnn, dtype="input")
    assert follow.weight.dtype == torch.get_default_dtype()
    assert follow(x64).dtype == torch.float64
    assert follow(x64.float()).dtype == torch.float32
    fixed = TorchConnector(qnn, initial_weights=np.array([0.1, 0.2, 1 / 3]), dtype="float64")
    assert fixed.weight.dtype == torch.float64 and fixed(x64.float()).dtype == torch.float64
    assert fixed.weight[2].item() == 1 / 3  # float64 initial weights are not rounded to float32
    # float64 weights give float64 values: equal to the network's own numpy output
    np.testing.assert_allclose(
        fixed(x64).detach().numpy(),
        qnn.forward(x64.numpy(), fixed.weight.detach().numpy()),
        rtol=0,
        atol=0,
    )
    x = torch.rand(3, 2, requires_grad=True)
    fixed(x).sum().backward()
    assert x.grad.dtype == torch.float32 and fixed.weight.grad.dtype == torch.float64


def test_several_batch_axes_and_multidimensional_outputs(three_qubit) -> None:
    """Gradients of (a, b, num_inputs) inputs into a (2, 3)-shaped output equal those of the
    flattened batch (qiskit-machine-learning 0.9.1 returns wrongly shaped gradients here)."""
    model = TorchConnector(network("sampler-2d", three_qubit), dtype=torch.float64)
    x = torch.rand(2, 3, 2, dtype=torch.float64, requires_grad=True)
    output = model(x)
    assert output.shape == (2, 3, 2, 3)
    scale = torch.rand(2, 3, 2, 3, dtype=torch.float64)
    (output * scale).sum().backward()
    flat_x = x.detach().reshape(6, 2).requires_grad_()
    weight_grad = model.weight.grad.clone()
    model.zero_grad()
    (model(flat_x) * scale.reshape(6, 2, 3)).sum().backward()
    torch.testing.assert_close(x.grad.reshape(6, 2), flat_x.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(weight_grad, model.weight.grad, rtol=0, atol=1e-12)


def test_cpu_float64_data_path_shares_memory(three_qubit, monkeypatch) -> None:
    qnn = network("estimator", three_qubit)
    seen = {}
    forward = qnn.forward

    def spy(input_data, weights):
        seen["input"], seen["weights"] = input_data, weights
        seen["output"] = forward(input_data, weights)
        return seen["output"]

    monkeypatch.setattr(qnn, "forward", spy)
    for_training = qnn._forward_for_training  # the path under autograd (the weight needs grad)

    def spy_training(input_data, weights):
        seen["input"], seen["weights"] = input_data, weights
        seen["output"], tape = for_training(input_data, weights)
        return seen["output"], tape

    monkeypatch.setattr(qnn, "_forward_for_training", spy_training)
    model = TorchConnector(qnn, dtype=torch.float64)
    x = torch.rand(4, 2, dtype=torch.float64)
    output = model(x)
    assert isinstance(seen["input"], np.ndarray) and seen["input"].dtype == np.float64
    assert np.shares_memory(seen["input"], x.numpy())
    assert np.shares_memory(seen["weights"], model.weight.detach().numpy())
    assert output.data_ptr() == seen["output"].ctypes.data  # the result is not copied either


def test_qml_network_through_our_connector(three_qubit) -> None:
    x = torch.rand(3, 2, dtype=torch.float64, requires_grad=True)
    outputs = []
    for qml_network in (True, False):
        model = TorchConnector(
            network("estimator", three_qubit, qml=qml_network),
            initial_weights=np.full(3, 0.4),
            dtype=torch.float64,
        )
        output = model(x)
        output.sum().backward()
        outputs.append((output.detach(), model.weight.grad, x.grad.clone()))
        x.grad = None
    for ours, ref in zip(*outputs, strict=True):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-9)


def test_network_without_inputs(three_qubit) -> None:
    qc = three_qubit.circuit.assign_parameters(
        dict(zip(three_qubit.inputs, [0.3, -0.2], strict=True))
    )
    models = [
        connector(
            cls(circuit=qc, weight_params=three_qubit.weights), initial_weights=np.full(3, 0.2)
        )
        for connector, cls in ((TorchConnector, EstimatorQNN), (QmlTorchConnector, QmlEstimatorQNN))
    ]
    ours, ref = (model() for model in models)
    assert ours.shape == ref.shape == (1,)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    ours.sum().backward()
    assert models[0].weight.grad.abs().max() > 1e-3


def test_warns_when_input_gradients_are_off(three_qubit) -> None:
    qnn = network("estimator", three_qubit, input_gradients=False)
    model = TorchConnector(qnn)
    x = torch.rand(2, 2, requires_grad=True)
    with pytest.warns(UserWarning, match="input_gradients=False"):
        model(x).sum().backward()
    assert x.grad is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(x)  # once per connector
        TorchConnector(qnn)(torch.rand(2, 2))  # no grad wanted: no warning
        qnn.input_gradients = True
        TorchConnector(qnn)(x).sum().backward()
    assert x.grad is not None and x.grad.abs().max() > 0


def test_errors_like_qml(three_qubit) -> None:
    qnn = network("estimator", three_qubit)
    for connector in (TorchConnector, QmlTorchConnector):
        with pytest.raises(QiskitMachineLearningError):
            connector(qnn)(torch.rand(2, 3))
        with pytest.raises(QiskitMachineLearningError):
            connector(qnn, sparse=True)
    with pytest.raises(ValueError, match="initial_weights"):
        TorchConnector(qnn, initial_weights=np.zeros(4))
    with pytest.raises(ValueError, match="dtype"):
        TorchConnector(qnn, dtype=torch.int32)
    with pytest.raises(QiskitMachineLearningError):
        TorchConnector(qnn)(torch.tensor(0.5))


@pytest.mark.gpu
def test_cuda_tensors() -> None:
    """On a CUDA machine: outputs and gradients on the tensors' device, for a CPU network and,
    with CuPy, for a network on the GPU."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from conftest import make_three_qubit_circuit  # noqa: PLC0415

    circuit = make_three_qubit_circuit()
    x = torch.rand(4, 2, dtype=torch.float64, device="cuda", requires_grad=True)
    reference = None
    for device in ("cpu", "gpu"):
        try:
            qnn = network("estimator", circuit, device=device)
        except RuntimeError:
            pytest.skip("no CuPy")
        model = TorchConnector(qnn, initial_weights=np.full(3, 0.3), dtype=torch.float64).cuda()
        output = model(x)
        output.sum().backward()
        assert output.device == x.device and x.grad.device == x.device
        assert model.weight.grad.device == x.device
        current = (output.detach().cpu(), x.grad.cpu(), model.weight.grad.cpu())
        x.grad = None
        if reference is None:
            reference = current
        else:
            for ours, ref in zip(current, reference, strict=True):
                torch.testing.assert_close(ours, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", ["estimator", "sampler", "sampler-2d"])
@pytest.mark.parametrize("input_gradients", [True, False])
def test_empty_batch_gives_zero_gradients(kind, input_gradients, three_qubit) -> None:
    """An empty batch: the output has no rows, and the gradients are zeros of the weights' and
    inputs' shapes (not None), as the sum over no samples of per-sample gradients."""
    model = TorchConnector(
        network(kind, three_qubit, input_gradients=input_gradients),
        initial_weights=np.full(3, 0.2),
    )
    x = torch.zeros(0, 2, dtype=torch.float64, requires_grad=True)
    out = model(x)
    assert out.shape == (0, *model.neural_network.output_shape)
    out.sum().backward()
    assert model.weight.grad is not None
    torch.testing.assert_close(model.weight.grad, torch.zeros(3, dtype=model.weight.dtype))
    if input_gradients:
        torch.testing.assert_close(x.grad, torch.zeros(0, 2, dtype=torch.float64))
    # and a non-empty batch afterwards still gets real gradients
    model.weight.grad = None
    out = model(torch.full((2, 2), 0.3, dtype=torch.float64)).reshape(2, -1)
    (out * torch.linspace(0.0, 1.0, out.shape[1])).sum().backward()  # probabilities sum to 1
    assert model.weight.grad.abs().max() > 1e-3


class _CupyArray:
    """A stand-in CuPy array: DLPack refuses it (as for a layout torch cannot take), and like
    CuPy it refuses an implicit NumPy conversion, which ``np.array`` attempts."""

    def __init__(self, data: np.ndarray, shareable: bool) -> None:
        self.data, self.shareable = data, shareable

    def __dlpack__(self, **kwargs):
        if not self.shareable:
            raise BufferError("this layout cannot be exported")
        return self.data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed")


_CupyArray.__module__ = "cupy._core.core"


def test_cupy_results_dlpack_cannot_share_are_copied_with_cupy(monkeypatch) -> None:
    """Issue 18, item 9: a CuPy result that DLPack refuses is copied on its device and shared,
    else copied with ``cupy.asnumpy``; never through ``np.array``, which CuPy refuses."""
    from gpuqnn.torch_connector import from_engine  # noqa: PLC0415

    values = np.arange(12.0).reshape(3, 4)[:, ::2]
    copies: list[str] = []
    fake = types.ModuleType("cupy")
    fake.ndarray = _CupyArray
    fake.array = lambda a, dtype: (
        copies.append("device"),
        _CupyArray(np.array(a.data, dtype=dtype), shareable=fake.shareable_copies),
    )[1]
    fake.asnumpy = lambda a: (copies.append("host"), a.data.copy())[1]
    fake.shareable_copies = True
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array(_CupyArray(values, False), dtype=np.float64)  # what the old fallback did
    tensor = from_engine(_CupyArray(values, False))
    np.testing.assert_array_equal(tensor.numpy(), values)
    assert copies == ["device"]
    fake.shareable_copies = False
    tensor = from_engine(_CupyArray(values, False))
    np.testing.assert_array_equal(tensor.numpy(), values)
    assert copies == ["device", "device", "host"] and tensor.dtype == torch.float64

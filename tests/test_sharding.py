"""One network sharded over several devices: the multi-device code path, run over CPU backends
(one simulator per "device", shards at once, gathered in order), against one device."""

from __future__ import annotations

import numpy as np
import pytest

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._internals import simulator_of, use_backend
from gpuqnn._sim.backend import Backend
from gpuqnn._sim.sharded import ShardedSimulator, shard_bounds
from gpuqnn.examples import parity, zz_real_amplitudes

from circuits import assert_same_passes


def _pair(kind: str, shards: int = 3, **options):
    qc, feature_map, ansatz = zz_real_amplitudes(4, reps=2)
    kwargs = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "input_gradients": True,
        "device": "cpu",
        **options,
    }
    if kind == "sampler":
        kwargs.update(interpret=parity, output_shape=2)
    cls = EstimatorQNN if kind == "estimator" else SamplerQNN
    one, sharded = cls(**kwargs), cls(**kwargs)
    dtype = np.dtype(one.dtype)
    use_backend(sharded, [Backend(np, "cpu", dtype) for _ in range(shards)])
    return one, sharded, ansatz.num_parameters


def test_shard_bounds_cover_the_batch_in_order() -> None:
    assert shard_bounds(10, 3) == [0, 3, 7, 10]
    assert shard_bounds(2, 3) == [0, 1, 1, 2]  # an empty shard is skipped
    assert shard_bounds(0, 2) == [0, 0, 0]


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
@pytest.mark.parametrize("method", ["adjoint", "parameter_shift"])
@pytest.mark.parametrize("batch", [1, 2, 7, 40])
def test_sharded_passes_equal_one_devices(kind: str, method: str, batch: int) -> None:
    one, sharded, num_weights = _pair(kind, gradient_method=method)
    assert isinstance(simulator_of(sharded), ShardedSimulator)
    assert sharded.devices == ("cpu", "cpu", "cpu")
    rng = np.random.default_rng(batch)
    inputs, weights = rng.uniform(0, np.pi, (batch, 4)), rng.uniform(0, np.pi, num_weights)
    assert_same_passes(sharded, one, inputs, weights, 1e-12)
    cotangent = rng.normal(size=(batch, *one.output_shape))
    for a, b in zip(
        sharded.vjp(inputs, weights, cotangent), one.vjp(inputs, weights, cotangent), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_sharded_training_steps_reverse_each_shards_kept_pass() -> None:
    torch = pytest.importorskip("torch")
    from gpuqnn import TorchConnector  # noqa: PLC0415

    one, sharded, _ = _pair("estimator")
    models = [TorchConnector(net, dtype=torch.float64) for net in (one, sharded)]
    models[1].weight.data.copy_(models[0].weight.data)
    inputs = torch.rand(9, 4, dtype=torch.float64)
    grads = []
    for model in models:
        x = inputs.clone().requires_grad_(True)
        (model(x) ** 2).sum().backward()
        grads.append((x.grad.numpy(), model.weight.grad.numpy()))
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_max_memory_bounds_each_shard() -> None:
    one, sharded, num_weights = _pair("estimator", max_memory=1 << 20)
    for simulator in simulator_of(sharded).simulators:
        assert simulator.max_memory == 1 << 20
    rng = np.random.default_rng(3)
    inputs, weights = rng.uniform(0, np.pi, (64, 4)), rng.uniform(0, np.pi, num_weights)
    assert_same_passes(sharded, one, inputs, weights, 1e-12)


def test_device_lists_are_checked_and_need_cuda() -> None:
    qc, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    kwargs = {"circuit": qc, "input_params": feature_map.parameters}
    kwargs["weight_params"] = ansatz.parameters
    for bad in (["cuda:0"], ["cuda:0", "cuda:0"], ["cpu", "cuda:1"], "cuda:every"):
        with pytest.raises(ValueError, match="device"):
            EstimatorQNN(**kwargs, device=bad)
    for good in ("cuda:all", ["cuda:0", "cuda:1"]):
        try:
            network = EstimatorQNN(**kwargs, device=good)
        except RuntimeError as exc:  # no GPU here: the reason, not a rejected option
            assert "needs CUDA GPUs" in str(exc)
        else:
            assert all(name.startswith("cuda:") for name in network.devices)
    with pytest.raises(ValueError, match="shots are sampled on one device"):
        _pair("sampler", shots=10)

"""One network sharded over several devices: the multi-device code path, run over CPU backends
(one simulator per "device", shards at once, gathered in order), against one device."""

from __future__ import annotations

import threading
from types import SimpleNamespace

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


class _StreamLog:
    """A stand-in CuPy for :class:`Backend`: which thread, with which device current, copies
    and synchronises (CuPy's current stream is per thread and device)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int | None, str]] = []
        self.local = threading.local()
        log = self

        class Device:
            def __init__(self, index: int) -> None:
                self.index = index

            def __enter__(self) -> None:
                log.local.stack = [*getattr(log.local, "stack", []), self.index]

            def __exit__(self, *exc: object) -> None:
                log.local.stack = log.local.stack[:-1]

        class Stream:
            def synchronize(self) -> None:
                log.record("synchronize")

        self.ndarray = np.ndarray
        self.cuda = SimpleNamespace(Device=Device, get_current_stream=Stream)

    def record(self, what: str) -> None:
        stack = getattr(self.local, "stack", [])
        self.events.append((threading.current_thread().name, stack[-1] if stack else None, what))

    def asnumpy(self, array: np.ndarray) -> np.ndarray:
        self.record("to host")
        return np.asarray(array)

    def asarray(self, array: np.ndarray, dtype: object = None) -> np.ndarray:
        self.record("to device")
        return np.array(array, dtype=dtype)

    def empty(self, shape: tuple[int, ...], dtype: object) -> np.ndarray:
        return np.full(shape, np.nan, dtype=dtype)


def test_each_shard_is_copied_home_on_its_own_thread_and_streams() -> None:
    """Issue 18, item 9: a shard's result is copied to the host in the thread that ran it, with
    its device current (the stream its kernels ran on), copied to the home device there, and
    that thread waits for the copy before the caller gathers: the caller's stream is not
    ordered after another thread's work."""
    cupy = _StreamLog()
    backends = [Backend(cupy, f"cuda:{i}", np.dtype(np.complex128)) for i in range(3)]  # type: ignore[arg-type]
    simulators = [
        SimpleNamespace(
            backend=b,
            program=None,
            readout=None,
            options=None,
            num_outputs=2,
            circuit=None,
            runner=None,
            executor=None,
            row_bytes=0,
        )
        for b in backends
    ]
    sharded = ShardedSimulator(simulators)  # type: ignore[arg-type]

    def run(sim, start: int, stop: int, shard: int) -> np.ndarray:
        cupy.record(f"run {shard}")
        return np.stack([np.arange(start, stop), -np.arange(start, stop)], axis=1).astype(float)

    out = sharded._gather((2,), 7, run)
    np.testing.assert_array_equal(out, np.stack([np.arange(7), -np.arange(7)], axis=1))
    by_thread: dict[str, list[tuple[int | None, str]]] = {}
    for thread, device, what in cupy.events:
        by_thread.setdefault(thread, []).append((device, what))
    home = by_thread.pop(threading.current_thread().name)
    assert home == [(0, "run 0")]  # the home shard needs no copy
    assert sorted(by_thread.values()) == [
        [(shard, f"run {shard}"), (shard, "to host"), (0, "to device"), (0, "synchronize")]
        for shard in (1, 2)
    ]

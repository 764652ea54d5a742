"""The GPU path of the networks and the simulator, run on the CPU, for what is specific to it:
an emulated GPU backend whose "device" arrays are NumPy arrays, with the CUDA kernels' host build
standing in for the CuPy runners (``engines.Emulation``; the same launches, see
gpuqnn/_cuda/host.py). Checked here: the device-array contract (device arrays in, device arrays
out, qiskit-machine-learning's shapes, checks before any work), chunking of the kernels' rows
within max_memory, the fallback to the block engine, and two emulated devices (everything of a
cuda:1 network stays on cuda:1). The values and gradients of every kernel variant against
independent references are the conformance suite's (``test_conformance.py``)."""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn.examples import zz_real_amplitudes

from circuits import assert_same_passes, layered_network
from engines import (
    CURRENT_DEVICE,
    EmulatedGpu,
    Emulation,
    HostFusedLauncher,
    HostKernels,
    HostPerOpLauncher,
)

pytestmark = pytest.mark.gpu_logic


@pytest.fixture
def emulated_gpu(kernels: HostKernels) -> Emulation:
    """Set the kernel mode ('auto', 'fused', 'per_op', 'none') by calling it; build networks on
    the emulated GPU with its ``build``."""
    return Emulation(kernels)


@pytest.mark.parametrize("shape", [(2,), (3, 2), (2, 3, 2)], ids=str)
def test_device_arrays_keep_qiskit_machine_learning_shapes(emulated_gpu, shape) -> None:
    """Device arrays in give device arrays out, shaped as qiskit-machine-learning's outputs."""
    qc, x, w = layered_network(5, 3)
    kwargs = {
        "circuit": qc,
        "observables": [SparsePauliOp("ZZZ"), SparsePauliOp("XIY")],
        "input_params": x,
        "weight_params": w,
        "input_gradients": True,
    }
    reference = QmlEstimatorQNN(**kwargs)
    emulated_gpu("auto")
    gpu = emulated_gpu.build(EstimatorQNN, **kwargs)
    rng = np.random.default_rng(5)
    inputs, weights = rng.uniform(-1, 1, shape), rng.uniform(-1, 1, 5)
    out = gpu.forward(inputs, weights)
    expected = reference.forward(inputs, weights)
    assert isinstance(out, np.ndarray) and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)
    for a, b in zip(
        gpu.backward(inputs, weights), reference.backward(inputs, weights), strict=True
    ):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_device_arrays_are_checked_before_any_work(emulated_gpu) -> None:
    qc, x, w = layered_network(6, 3)
    emulated_gpu("auto")
    gpu = emulated_gpu.build(EstimatorQNN, circuit=qc, input_params=x, weight_params=w)
    with pytest.raises(ValueError, match="input_data must be finite"):
        gpu.forward(np.array([[np.nan, 0.0]]), np.zeros(5))
    with pytest.raises(ValueError, match="weights must hold num_weights=5"):
        gpu.forward(np.zeros((1, 2)), np.zeros(4))
    with pytest.raises(Exception, match="last dimension must equal the number of inputs, 2"):
        gpu.forward(np.zeros((1, 3)), np.zeros(5))


def test_sparse_sampler_refuses_device_arrays(emulated_gpu) -> None:
    pytest.importorskip("sparse")
    qc, x, w = layered_network(7, 3)
    emulated_gpu("auto")
    gpu = emulated_gpu.build(SamplerQNN, circuit=qc, input_params=x, weight_params=w, sparse=True)
    with pytest.raises(ValueError, match="sparse.*host"):
        gpu.forward(np.zeros((1, 2)), np.zeros(5))


@pytest.mark.parametrize("mode", ["fused", "per_op"])
def test_kernel_passes_are_chunked_within_max_memory(emulated_gpu, mode: str) -> None:
    """A small max_memory splits the kernels' rows into several calls; same results."""
    qc, feature_map, ansatz = zz_real_amplitudes(5, reps=1)
    kwargs = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "input_gradients": True,
        "gradient_method": "parameter_shift",
    }
    rng = np.random.default_rng(6)
    inputs = rng.uniform(0, np.pi, (40, 5))
    weights = rng.uniform(0, np.pi, ansatz.num_parameters)
    reference = EstimatorQNN(**kwargs, device="cpu")
    runners = emulated_gpu(mode)
    gpu = emulated_gpu.build(EstimatorQNN, **kwargs, max_memory=64 * 1024)
    calls = []
    run = runners[0].run
    runners[0].run = lambda *args: calls.append(args[0].shape[0]) or run(*args)
    assert_same_passes(gpu, reference, inputs, weights, 1e-10)
    assert len(calls) > 2  # forward and backward both took several calls


def test_unsupported_programs_fall_back_to_the_engine(emulated_gpu) -> None:
    """A 4-target permutation has no kernel: 'auto' runs the block engine, 'fused' says why."""
    from qiskit import QuantumCircuit  # noqa: PLC0415
    from qiskit.circuit import Parameter  # noqa: PLC0415
    from qiskit.circuit.library import PermutationGate  # noqa: PLC0415

    theta = Parameter("t")
    qc = QuantumCircuit(4)
    qc.h(range(4))
    qc.ry(theta, 0)
    qc.append(PermutationGate([1, 2, 3, 0]), range(4))
    reference = EstimatorQNN(circuit=qc, weight_params=[theta], device="cpu")
    runners = emulated_gpu("auto")
    gpu = emulated_gpu.build(EstimatorQNN, circuit=qc, weight_params=[theta])
    assert runners == [None]
    np.testing.assert_allclose(
        gpu.forward(None, [0.4]), reference.forward(None, [0.4]), rtol=0, atol=1e-10
    )
    emulated_gpu("fused")
    with pytest.raises(ValueError, match="kernels='fused' cannot run this circuit"):
        emulated_gpu.build(EstimatorQNN, circuit=qc, weight_params=[theta])


def test_a_network_on_cuda_1_builds_and_runs_its_kernels_on_cuda_1(kernels) -> None:
    """Runners bind to the current device when built and launch on it: the simulator makes
    its own device current for both (issue 11's wrong-device finding, for cuda:N, N > 0)."""
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    seen = []

    class Recording(HostFusedLauncher):
        def __init__(self, *args, **kwargs) -> None:
            seen.append(("build", CURRENT_DEVICE[-1]))
            super().__init__(*args, **kwargs)

        def run(self, *args):
            seen.append(("run", CURRENT_DEVICE[-1]))
            return super().run(*args)

    network = EstimatorQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        gradient_method="parameter_shift",
        device="cpu",
    )
    reference = EstimatorQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        device="cpu",
    )
    emulation = Emulation(kernels, fused=Recording)
    emulation("fused")
    emulation.move(network, EmulatedGpu(np, "cuda:1", np.dtype("complex128")))
    rng = np.random.default_rng(8)
    inputs, weights = rng.uniform(0, 1, (3, 3)), rng.uniform(0, 1, ansatz.num_parameters)
    assert_same_passes(network, reference, inputs, weights, 1e-10)
    assert seen and all(device == "cuda:1" for _what, device in seen)
    assert {what for what, _device in seen} == {"build", "run"}


# ---- two emulated devices: everything of a cuda:1 network stays on cuda:1 ---------------------
class DeviceArray(np.ndarray):
    """A NumPy array that remembers the emulated device it was made on (``device.id``, as a
    CuPy array's); views and results of operations inherit it from their first operand."""

    def __array_finalize__(self, obj: Any) -> None:
        self._tag = getattr(obj, "_tag", None)

    @property
    def device(self) -> Any:
        return self._tag


def _on_current(array: Any) -> DeviceArray:
    tagged = np.asarray(array).view(DeviceArray)
    tagged._tag = types.SimpleNamespace(id=int(CURRENT_DEVICE[-1].split(":")[1]))
    return tagged


class TaggingNumpy:
    """``numpy`` for an emulated GPU backend: arrays it creates are DeviceArrays of the current
    emulated device; everything else is numpy's."""

    _MAKERS = ("empty", "zeros", "ones", "full", "asarray", "ascontiguousarray", "array")

    def __getattr__(self, name: str) -> Any:
        value = getattr(np, name)
        if name in self._MAKERS:
            return lambda *args, **kwargs: _on_current(value(*args, **kwargs))
        return value


def _device_of(array: Any) -> int | None:
    device = getattr(array, "device", None)
    return getattr(device, "id", None)


class _BoundRunner:
    """Host runner hooks that make arrays on the current emulated device and check, at every
    launch, that the current device is the runner's and that every array argument lives on it."""

    device: int

    def _to_device(self, array):
        return _on_current(np.ascontiguousarray(array))

    def _empty(self, shape, dtype):
        return _on_current(super()._empty(shape, dtype))

    def _check(self, launch) -> None:
        assert CURRENT_DEVICE[-1] == f"cuda:{self.device}", (launch.kernel, CURRENT_DEVICE)
        for arg in launch.args:
            if isinstance(arg, np.ndarray):
                assert _device_of(arg) == self.device, (launch.kernel, _device_of(arg))
        LAUNCHES.append(launch.kernel)

    def _execute(self, launch) -> None:
        self._check(launch)
        super()._execute(launch)

    def _execute_generated(self, kernel, launch) -> None:
        self._check(launch)
        super()._execute_generated(kernel, launch)


LAUNCHES: list[str] = []


@pytest.mark.parametrize("mode", ["fused", "per_op"])
@pytest.mark.parametrize("method", ["adjoint", "parameter_shift"])
def test_a_cuda_1_network_never_touches_device_0(kernels, mode: str, method: str) -> None:
    """Two emulated devices: a network on cuda:1, called while cuda:0 is current, builds its
    runners, tables, buffers and outputs on cuda:1 and launches every kernel there (forward,
    backward, vector-Jacobian product), and gives cuda:1 arrays back; an input on cuda:0 is
    refused before any work, naming both devices."""

    class Fused(_BoundRunner, HostFusedLauncher):
        device = 1

    class PerOp(_BoundRunner, HostPerOpLauncher):
        device = 1

    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    kwargs = dict(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
    )
    network = EstimatorQNN(**kwargs, gradient_method=method, device="cpu")
    reference = EstimatorQNN(**kwargs, device="cpu")
    emulation = Emulation(kernels, fused=Fused, per_op=PerOp)
    emulation(mode)
    emulation.move(network, EmulatedGpu(TaggingNumpy(), "cuda:1", np.dtype("complex128")))
    rng = np.random.default_rng(4)
    x, w = rng.uniform(0, 1, (4, 3)), rng.uniform(0, 1, ansatz.num_parameters)
    g = rng.normal(size=(4, 1))
    CURRENT_DEVICE.append("cuda:1")  # the caller makes its arrays on cuda:1 ...
    try:
        x1, w1, g1 = _on_current(x), _on_current(w), _on_current(g)
    finally:
        CURRENT_DEVICE.pop()  # ... then calls with cuda:0 current
    LAUNCHES.clear()
    out = network.forward(x1, w1)
    grads = network.backward(x1, w1)
    products = network.vjp(x1, w1, g1)
    assert LAUNCHES, "no kernel ran"
    for value in (out, *grads, *products):
        assert _device_of(value) == 1
    np.testing.assert_allclose(np.asarray(out), reference.forward(x, w), atol=1e-10)
    for got, expected in zip(grads, reference.backward(x, w), strict=True):
        np.testing.assert_allclose(np.asarray(got), expected, atol=1e-10)
    for got, expected in zip(products, reference.vjp(x, w, g), strict=True):
        np.testing.assert_allclose(np.asarray(got), expected, atol=1e-10)
    x0 = _on_current(x)  # made with cuda:0 current
    LAUNCHES.clear()
    with pytest.raises(
        ValueError, match=r"input_data is on cuda:0, but the network runs on cuda:1"
    ):
        network.forward(x0, w1)
    with pytest.raises(ValueError, match=r"weights is on cuda:0.*device='cuda:0'"):
        network.backward(x1, _on_current(w))
    assert not LAUNCHES

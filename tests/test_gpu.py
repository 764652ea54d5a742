"""On a CUDA device (CuPy), what is specific to it: CuPy arrays in and out, device selection,
chunking on the device, the fused adjoint kernel that auto picks, and the GPU variants (fused
kernel, per-op kernels, block engine) at workload sizes against the NumPy engine. The values and
gradients of every variant against independent references are the conformance suite's
(``test_conformance.py``, its ``cupy-*`` engines). Marked ``gpu``: skipped where no device
answers (see conftest). On such a machine the rest of the suite runs on CuPy too, since
``device="auto"`` picks the GPU."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.quantum_info import SparsePauliOp

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._sim.protocols import Capability
from gpuqnn.examples import parity, zz_real_amplitudes

from circuits import assert_same_passes, layered_network, observables
from engines import engines_marked

pytestmark = pytest.mark.gpu

TOL = {"complex128": 1e-10, "complex64": 2e-4}


def cupy():
    import cupy as cp  # noqa: PLC0415 - only on a CUDA machine

    return cp


def _matches_the_numpy_engine(engine, cls, kwargs, inputs, weights, atol: float) -> None:
    """A network on the CuPy ``engine`` gives the NumPy engine's values and gradients."""
    reference = cls(**{**kwargs, "dtype": "complex128"}, device="cpu")
    assert_same_passes(engine(cls, **kwargs), reference, inputs, weights, atol)


@pytest.mark.parametrize("engine", engines_marked("gpu"), indirect=True)
@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
@pytest.mark.parametrize("method", ["parameter_shift", "adjoint"])
def test_gpu_variants_at_workload_size_estimator(engine, method: str, dtype: str) -> None:
    """Each GPU variant on more qubits and samples than the conformance suite (which the
    emulation could not afford) against the NumPy engine."""
    qc, x, w = layered_network(3, 6)
    rng = np.random.default_rng(3)
    kwargs = {
        "circuit": qc,
        "observables": observables(6, rng),
        "input_params": x,
        "weight_params": w,
        "input_gradients": True,
        "gradient_method": method,
        "dtype": dtype,
    }
    inputs, weights = rng.uniform(-2, 2, (33, 2)), rng.uniform(-2, 2, 5)
    _matches_the_numpy_engine(engine, EstimatorQNN, kwargs, inputs, weights, TOL[dtype])


@pytest.mark.parametrize("engine", engines_marked("gpu"), indirect=True)
def test_gpu_variants_at_workload_size_sampler(engine) -> None:
    """Each GPU variant on an 8-qubit sampler, 64 samples, against the NumPy engine."""
    qc, feature_map, ansatz = zz_real_amplitudes(8, reps=3)
    kwargs = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "input_gradients": True,
        "interpret": parity,
        "output_shape": 2,
    }
    rng = np.random.default_rng(4)
    inputs = rng.uniform(0, 2 * np.pi, (64, 8))
    weights = rng.uniform(0, 2 * np.pi, ansatz.num_parameters)
    _matches_the_numpy_engine(engine, SamplerQNN, kwargs, inputs, weights, 1e-10)


def test_cupy_arrays_in_give_cupy_arrays_out() -> None:
    cp = cupy()
    qc, x, w = layered_network(5, 4)
    kwargs = {
        "circuit": qc,
        "observables": [SparsePauliOp("ZZZZ"), SparsePauliOp("XIYI")],
        "input_params": x,
        "weight_params": w,
        "input_gradients": True,
    }
    gpu = EstimatorQNN(**kwargs, device="gpu")
    rng = np.random.default_rng(5)
    inputs, weights = rng.uniform(-1, 1, (2, 3, 2)), rng.uniform(-1, 1, 5)
    out = gpu.forward(cp.asarray(inputs), cp.asarray(weights))
    assert isinstance(out, cp.ndarray) and out.dtype == cp.float64
    host = gpu.forward(inputs, weights)
    assert isinstance(host, np.ndarray) and host.shape == out.shape == (2, 3, 2)
    np.testing.assert_allclose(cp.asnumpy(out), host, rtol=0, atol=1e-12)
    grads = gpu.backward(cp.asarray(inputs), cp.asarray(weights))
    for device_grad, host_grad in zip(grads, gpu.backward(inputs, weights), strict=True):
        assert isinstance(device_grad, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(device_grad), host_grad, rtol=0, atol=1e-12)


def test_auto_picks_the_gpu_and_cpu_stays_cpu() -> None:
    qc, x, w = layered_network(6, 2)
    assert EstimatorQNN(circuit=qc, input_params=x, weight_params=w).device == "cuda:0"
    assert EstimatorQNN(circuit=qc, input_params=x, weight_params=w, device="cpu").device == "cpu"


def test_large_batch_is_chunked_on_the_device() -> None:
    """A small max_memory on the device gives the same numbers as one big call."""
    qc, feature_map, ansatz = zz_real_amplitudes(10, reps=2)
    kwargs = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "input_gradients": True,
    }
    rng = np.random.default_rng(7)
    inputs = rng.uniform(0, np.pi, (300, 10))
    weights = rng.uniform(0, np.pi, ansatz.num_parameters)
    whole = EstimatorQNN(**kwargs, device="gpu")
    chunked = EstimatorQNN(**kwargs, device="gpu", max_memory=8 << 20)
    assert_same_passes(chunked, whole, inputs, weights, 1e-11)


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_fused_adjoint_kernel_on_the_device(dtype: str) -> None:
    """auto takes the fused adjoint kernel for a 12-qubit network; its backward pass and
    vector-Jacobian product match the CPU engine."""
    from gpuqnn._internals import simulator_of  # noqa: PLC0415

    qc, feature_map, ansatz = zz_real_amplitudes(12, reps=1)
    kwargs = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "input_gradients": True,
    }
    reference = EstimatorQNN(**kwargs, device="cpu")
    gpu = EstimatorQNN(**kwargs, device="gpu", dtype=dtype)
    sim = simulator_of(gpu)
    columns = list(range(gpu.num_inputs + gpu.num_weights))
    assert Capability.ADJOINT in sim.runner.capabilities and sim.method(columns) == "adjoint"
    assert sim.method(columns, vjp=True) == "adjoint"
    rng = np.random.default_rng(12)
    x, w = rng.uniform(0, 1, (64, 12)), rng.uniform(-1, 1, ansatz.num_parameters)
    g = rng.normal(size=(64, 1))
    for got, expected in zip(gpu.backward(x, w), reference.backward(x, w), strict=True):
        np.testing.assert_allclose(got, expected, atol=TOL[dtype])
    for got, expected in zip(gpu.vjp(x, w, g), reference.vjp(x, w, g), strict=True):
        np.testing.assert_allclose(got, expected, atol=TOL[dtype] * 10)

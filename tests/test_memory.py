"""``max_memory`` bounds the peak of every forward and backward pass: measured with tracemalloc
(NumPy reports its allocations to it), the memory a pass adds beyond the arrays it returns stays
under the bound, for both gradient methods, several observables and an interpreted sampler, and
the chunked results equal the unbounded ones."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from qiskit.quantum_info import SparsePauliOp

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn.examples import parity, zz_real_amplitudes

OBSERVABLES = [
    SparsePauliOp("ZZZZZZ"),
    SparsePauliOp.from_list([("XXIIYZ", 0.5), ("IZIZIZ", 1.0), ("YIIIIX", 0.2)]),
]


def network(kind: str, method: str, max_memory: int | None):
    qc, feature_map, ansatz = zz_real_amplitudes(6, reps=2)
    common = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "input_gradients": True,
        "gradient_method": method,
        "max_memory": max_memory,
        "engine": "numpy",  # the block engine's byte models (the native engine holds a row)
    }
    if kind == "estimator":
        return EstimatorQNN(**common, observables=OBSERVABLES)
    return SamplerQNN(**common, interpret=parity, output_shape=2)


def measured(run) -> tuple[object, int]:
    """The call's result and the bytes it allocated at its peak beyond what it returns."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = run()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    arrays = result if isinstance(result, tuple) else (result,)
    returned = sum(a.nbytes for a in arrays if a is not None)
    return result, peak - returned


@pytest.mark.parametrize("max_memory", [1 << 20, 4 << 20], ids=["1MiB", "4MiB"])
@pytest.mark.parametrize("method", ["adjoint", "parameter_shift"])
@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_passes_stay_within_max_memory(kind: str, method: str, max_memory: int) -> None:
    rng = np.random.default_rng(3)
    inputs = rng.uniform(0, 2 * np.pi, (240, 6))
    weights = rng.uniform(0, 2 * np.pi, 18)
    bounded, free = network(kind, method, max_memory), network(kind, method, None)
    forward, extra = measured(lambda: bounded.forward(inputs, weights))
    assert extra <= max_memory, f"forward held {extra} bytes"
    np.testing.assert_allclose(forward, free.forward(inputs, weights), rtol=0, atol=1e-12)
    backward, extra = measured(lambda: bounded.backward(inputs, weights))
    assert extra <= max_memory, f"backward held {extra} bytes"
    for a, b in zip(backward, free.backward(inputs, weights), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_auto_takes_parameter_shift_when_an_adjoint_sample_does_not_fit() -> None:
    small = network("estimator", "auto", 48 * 1024)
    assert small.resolved_gradient_method() == "parameter_shift"
    assert network("estimator", "auto", None).resolved_gradient_method() == "adjoint"
    with pytest.raises(ValueError, match="max_memory=.*too small.*adjoint"):
        network("estimator", "adjoint", 48 * 1024).backward(np.zeros((2, 6)), np.zeros(18))


def test_too_small_for_one_row_fails_at_construction_with_sizes() -> None:
    with pytest.raises(ValueError, match="6 qubits.*bytes.*max_memory=2048"):
        network("estimator", "auto", 2048)


@pytest.mark.parametrize("method", ["adjoint", "parameter_shift"])
def test_nothing_that_grows_with_the_batch_exceeds_max_memory(method: str) -> None:
    """At a batch whose (B, J) products, input copy, finiteness mask and list of chunk ranges
    alone pass the bound (issue 19: 11-13 MB over 1 MB at 100k rows), ``vjp`` and ``backward``
    still hold no more than ``max_memory`` besides what they return: the weights' products
    are summed chunk by chunk, the inputs are not copied, and chunks are not listed."""
    bound, batch = 1 << 20, 3000
    rng = np.random.default_rng(4)
    inputs = rng.uniform(0, 2 * np.pi, (batch, 6))
    weights = rng.uniform(0, 2 * np.pi, 18)
    cotangent = rng.normal(size=(batch, 2))
    bounded = network("estimator", method, bound)
    # first-call costs (threadpoolctl's import, shift plans) do not grow with the batch
    bounded.vjp(inputs[:300], weights, cotangent[:300])
    bounded.backward(inputs[:300], weights)
    grads, extra = measured(lambda: bounded.vjp(inputs, weights, cotangent))
    assert extra <= bound, f"vjp held {extra} bytes"
    expected = network("estimator", method, None).vjp(inputs, weights, cotangent)
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    _, extra = measured(lambda: bounded.backward(inputs, weights))
    assert extra <= bound, f"backward held {extra} bytes"

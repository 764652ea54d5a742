"""Huge but finite gate angles stay physical; angles that overflow float64 are refused
(issue 19: zz_feature_map inputs from about 3e7 gave probabilities summing to 264)."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.circuit.library import real_amplitudes, zz_feature_map
from qiskit.quantum_info import SparsePauliOp, Statevector

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._sim.expi import ExpI

FEATURES = zz_feature_map(3)
ANSATZ = real_amplitudes(3, reps=1)
CIRCUIT = FEATURES.compose(ANSATZ)
WEIGHTS = np.linspace(0.1, 0.8, ANSATZ.num_parameters)


def _networks(dtype: str) -> tuple[SamplerQNN, EstimatorQNN]:
    common = {
        "circuit": CIRCUIT,
        "input_params": FEATURES.parameters,
        "weight_params": ANSATZ.parameters,
        "dtype": dtype,
    }
    return SamplerQNN(**common), EstimatorQNN(observables=SparsePauliOp("ZZZ"), **common)


def test_expi_is_exact_for_any_finite_angle():
    phi = np.array([0.3, -2.5, 1e3, 1.6e6, 1.7e6, 1e7, -3e9, 1e15, -7.3e20, 1e300, -1.7e308])
    out = np.empty(phi.shape, dtype=np.complex128)
    ExpI()(phi.copy(), out)
    np.testing.assert_allclose(out, np.exp(1j * phi), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_outputs_stay_physical_for_huge_inputs(dtype):
    sampler, estimator = _networks(dtype)
    x = np.array([[1.0, 2.0, 3.0]]) * np.array([[3e7], [1e10], [1e15], [1e100], [1e153]])
    probabilities = sampler.forward(x, WEIGHTS)
    assert np.all(probabilities >= -1e-6) and np.all(probabilities <= 1 + 1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(np.abs(estimator.forward(x, WEIGHTS)) <= 1 + 1e-6)
    _none, grad = estimator.backward(x, WEIGHTS)
    assert np.all(np.isfinite(grad))


def test_large_inputs_match_qiskit_where_qiskit_is_accurate():
    sampler, _estimator = _networks("complex128")
    x = np.array([[1.0, 2.0, 3.0]]) * np.array([[10.0], [300.0], [2e3]])  # angles up to 7e7
    expected = [
        Statevector(CIRCUIT.assign_parameters([*row, *WEIGHTS])).probabilities() for row in x
    ]
    np.testing.assert_allclose(sampler.forward(x, WEIGHTS), expected, atol=1e-6)


def test_angles_that_overflow_are_refused_naming_input_data():
    sampler, estimator = _networks("complex128")
    x = np.array([[1.0, 2.0, 3.0]]) * 1e154  # 2 (pi - x)(pi - y) overflows to inf
    for call in (sampler.forward, estimator.forward, estimator.backward):
        with pytest.raises(ValueError, match="input_data.*overflows float64"):
            call(x, WEIGHTS)

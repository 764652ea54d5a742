"""Which user-supplied primitives and gradients the simulator can stand in for.

The simulator computes exact statevector results. It serves a network only when the primitives the
user passed (or the defaults) would compute those same exact values; anything else (shots,
hardware, noisy simulators, stochastic gradients) runs through qiskit-machine-learning's code.
gpuqnn's own primitives count as exact in their exact modes (``Estimator`` with
``default_precision=0``, ``Sampler`` with ``shots=None``), as do its gradients over them; in
their noisy or shot modes the network calls them like any other primitive.
"""

from __future__ import annotations

from typing import Any

from qiskit_machine_learning.gradients import (
    LinCombEstimatorGradient,
    LinCombSamplerGradient,
    ParamShiftEstimatorGradient,
    ParamShiftSamplerGradient,
)

from .primitives._exactness import exact_estimator, exact_sampler
from .primitives.gradients import EstimatorGradient, SamplerGradient

__all__ = [
    "exact_estimator",
    "exact_estimator_gradient",
    "exact_sampler",
    "exact_sampler_gradient",
]


def exact_estimator_gradient(gradient: Any) -> bool:
    """Whether ``gradient`` is an exact analytic gradient over an exact estimator."""
    if type(gradient) in (ParamShiftEstimatorGradient, EstimatorGradient):
        return exact_estimator(gradient._estimator, 0.0)
    if type(gradient) is LinCombEstimatorGradient:
        return (
            exact_estimator(gradient._estimator, 0.0)
            and getattr(gradient._derivative_type, "name", "") == "REAL"
        )
    return False


def exact_sampler_gradient(gradient: Any) -> bool:
    """Whether ``gradient`` is an exact analytic gradient over an exact sampler."""
    if type(gradient) in (ParamShiftSamplerGradient, LinCombSamplerGradient, SamplerGradient):
        return exact_sampler(gradient._sampler)
    return False

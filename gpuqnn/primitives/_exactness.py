"""Whether a primitive computes exact values: gpuqnn's own in their exact modes, and qiskit's
and qiskit-machine-learning's exact statevector primitives.

Used by the gradients of this package (which run the simulator over an exact primitive) and by
the networks (:mod:`gpuqnn._exact`).
"""

from __future__ import annotations

from typing import Any

from qiskit.primitives import StatevectorEstimator
from qiskit_machine_learning.primitives import QMLEstimator, QMLSampler

from .estimator import Estimator
from .sampler import Sampler


def exact_estimator(estimator: Any, precision: float | None) -> bool:
    """Whether ``estimator`` run with ``precision`` gives exact expectation values."""
    if isinstance(estimator, Estimator):
        # exact mode ignores the precision, like QMLEstimator; with a noise model its values
        # are those of the density matrix, which a network's own simulator would not give
        return estimator.exact and estimator.noise_model is None
    if isinstance(estimator, QMLEstimator):
        return bool(getattr(estimator, "_exact_mode", False))
    if type(estimator) is StatevectorEstimator:
        default = getattr(estimator, "default_precision", None)
        return precision == 0 and default == 0
    return False


def exact_sampler(sampler: Any) -> bool:
    """Whether ``sampler`` gives exact probabilities."""
    if isinstance(sampler, Sampler):
        return sampler.exact and sampler.noise_model is None
    return isinstance(sampler, QMLSampler) and bool(getattr(sampler, "_exact_mode", False))

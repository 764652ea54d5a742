"""Fast primitives: qiskit V2 primitives and qiskit-machine-learning gradients on gpuqnn's cache.

Pass them wherever qiskit-machine-learning or qiskit-algorithms take a primitive (``VQC``,
``VQR``, qiskit-machine-learning's own ``EstimatorQNN``/``SamplerQNN``, ``VQE``, ...)::

    from gpuqnn.primitives import Estimator, Sampler
    vqc = VQC(feature_map=..., ansatz=..., sampler=Sampler())

- :class:`Estimator` (``BaseEstimatorV2``): exact expectation values by default;
  ``default_precision > 0`` adds seeded Gaussian noise like ``StatevectorEstimator``.
- :class:`Sampler` (``BaseSamplerV2``): exact probabilities by default (:class:`ExactProbabilities`
  per classical register, like qiskit-machine-learning's ``QMLSampler``); ``shots=int`` samples
  seeded ``BitArray``s like ``StatevectorSampler``.
- :class:`EstimatorGradient` / :class:`SamplerGradient`: analytic parameter-shift gradients from
  the simulator, in qiskit-machine-learning's gradient result formats.
"""

from __future__ import annotations

from ._containers import ExactProbabilities, ExactSamplerPubResult
from .estimator import Estimator
from .gradients import EstimatorGradient, SamplerGradient
from .sampler import Sampler

__all__ = [
    "Estimator",
    "EstimatorGradient",
    "ExactProbabilities",
    "ExactSamplerPubResult",
    "Sampler",
    "SamplerGradient",
]

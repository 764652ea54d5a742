"""gpuqnn: fast, batched statevector drop-in replacements for qiskit-machine-learning's QNNs.

``from gpuqnn import EstimatorQNN, SamplerQNN`` instead of
``from qiskit_machine_learning.neural_networks import EstimatorQNN, SamplerQNN``.
"""

from __future__ import annotations

from .estimator_qnn import EstimatorQNN
from .sampler_qnn import SamplerQNN

__version__ = "0.1.0"

__all__ = ["EstimatorQNN", "SamplerQNN", "__version__"]

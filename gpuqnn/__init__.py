"""gpuqnn: fast, batched statevector drop-in replacements for qiskit-machine-learning's QNNs.

``from gpuqnn import EstimatorQNN, SamplerQNN`` instead of
``from qiskit_machine_learning.neural_networks import EstimatorQNN, SamplerQNN``;
``gpuqnn.TorchConnector`` (needs PyTorch) and the primitives in :mod:`gpuqnn.primitives`
replace qiskit-machine-learning's ``TorchConnector`` and exact primitives the same way.
"""

from __future__ import annotations

from typing import Any

from ._profile import CallRecord, Profile, profile
from .estimator_qnn import EstimatorQNN
from .sampler_qnn import SamplerQNN

__version__ = "0.1.0"

__all__ = [
    "CallRecord",
    "EstimatorQNN",
    "Profile",
    "SamplerQNN",
    "TorchConnector",
    "__version__",
    "profile",
]


def __getattr__(name: str) -> Any:
    # TorchConnector imports torch, which takes seconds and is optional: load it on first use.
    if name == "TorchConnector":
        from .torch_connector import TorchConnector  # noqa: PLC0415

        return TorchConnector
    raise AttributeError(f"module 'gpuqnn' has no attribute {name!r}")

"""pytest plugin for qiskit-machine-learning's own test suite: gpuqnn's networks stand in.

Loaded with ``-p gpuqnn_qml_compat`` in the subprocess that :mod:`tests.test_qml_compat` starts,
before any test module is imported. It replaces qiskit-machine-learning's ``EstimatorQNN``,
``SamplerQNN`` and ``TorchConnector`` by gpuqnn's wherever qiskit-machine-learning's modules
hold them (its packages, and the modules of VQC/VQR and the other algorithms that imported the
names at import time), so that the test modules, which import them later, get gpuqnn's too.
"""

from __future__ import annotations

import importlib
import sys

import qiskit_machine_learning.connectors as _connectors
import qiskit_machine_learning.neural_networks as _networks

import gpuqnn

_ORIGINALS = {
    _networks.EstimatorQNN: gpuqnn.EstimatorQNN,
    _networks.SamplerQNN: gpuqnn.SamplerQNN,
    _connectors.TorchConnector: gpuqnn.TorchConnector,
}
# modules that bind the classes at import time; imported now so that the sweep below sees them
_USERS = (
    "qiskit_machine_learning.algorithms",
    "qiskit_machine_learning.algorithms.classifiers.vqc",
    "qiskit_machine_learning.algorithms.regressors.vqr",
    "qiskit_machine_learning.neural_networks.effective_dimension",
)


def _patch() -> int:
    for name in _USERS:
        importlib.import_module(name)
    replaced = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("qiskit_machine_learning") or module is None:
            continue
        for attribute, value in list(vars(module).items()):
            replacement = _ORIGINALS.get(value) if isinstance(value, type) else None
            if replacement is not None:
                setattr(module, attribute, replacement)
                replaced += 1
    return replaced


REPLACED = _patch()


def pytest_report_header(config):  # noqa: ARG001 - pytest hook signature
    return (
        f"gpuqnn_qml_compat: gpuqnn from {gpuqnn.__file__} stands in for EstimatorQNN, "
        f"SamplerQNN and TorchConnector ({REPLACED} module attributes replaced)"
    )

"""The qiskit peers: qiskit-machine-learning's networks with their default primitives, and on
qiskit-aer's exact statevector ``EstimatorV2``."""

from __future__ import annotations

from qiskit_machine_learning.neural_networks import EstimatorQNN, SamplerQNN

from benchmarks.implementations import Implementation, NetworkImplementation, Options, Unsupported
from benchmarks.workloads import QNNSpec


def qiskit_ml(spec: QNNSpec, options: Options) -> Implementation:
    """qiskit-machine-learning's network with its default primitives and gradients."""
    del options  # the reference has no device choice
    cls = EstimatorQNN if spec.kind == "estimator" else SamplerQNN
    return NetworkImplementation(cls(**spec.qiskit_kwargs()))


def qiskit_aer(spec: QNNSpec, options: Options) -> Implementation:
    """qiskit-machine-learning's EstimatorQNN on qiskit-aer's exact statevector EstimatorV2.

    Raises:
        Unsupported: a sampler workload (Aer's SamplerV2 samples shots only).
    """
    if spec.kind != "estimator":
        raise Unsupported("qiskit-aer's SamplerV2 samples shots; it has no exact probabilities")
    from qiskit_aer.primitives import EstimatorV2  # noqa: PLC0415 - optional peer

    device = "GPU" if options.device == "gpu" else "CPU"
    estimator = EstimatorV2(
        options={"backend_options": {"method": "statevector", "device": device}}
    )
    # default_precision 0: exact expectation values (Aer adds Gaussian noise otherwise)
    network = EstimatorQNN(**spec.qiskit_kwargs(), estimator=estimator, default_precision=0.0)
    return NetworkImplementation(network, label=f"qiskit-aer EstimatorV2, statevector on {device}")

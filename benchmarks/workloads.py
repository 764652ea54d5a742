"""The networks the benchmarks time, described independently of any implementation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit.circuit import Parameter, QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from gpuqnn.examples import (
    parity,
    tutorial_estimator_circuit,
    tutorial_sampler_circuit,
    zz_real_amplitudes,
)


@dataclass(frozen=True)
class QNNSpec:
    """An implementation-independent description of one network.

    Attributes:
        kind: ``"estimator"`` or ``"sampler"``.
        circuit: The parametrized circuit (no measurements).
        input_params: Parameters bound to the input features.
        weight_params: Parameters bound to the trainable weights.
        observables: Estimator observables; ``None`` means the default ``Z^n``.
        interpret: Sampler interpret function; ``None`` means the raw bitstring distribution.
        output_shape: Sampler output shape; required when ``interpret`` is given.
    """

    kind: str
    circuit: QuantumCircuit
    input_params: tuple[Parameter, ...]
    weight_params: tuple[Parameter, ...]
    observables: tuple[SparsePauliOp, ...] | None = None
    interpret: Callable[[int], int] | None = None
    output_shape: int | None = None

    @property
    def num_qubits(self) -> int:
        """Qubits of the circuit."""
        return self.circuit.num_qubits

    @property
    def num_outputs(self) -> int:
        """Outputs per sample (O): observables, ``output_shape`` or ``2**n`` probabilities."""
        if self.kind == "estimator":
            return 1 if self.observables is None else len(self.observables)
        return self.output_shape if self.interpret is not None else 2**self.num_qubits

    def qiskit_kwargs(self) -> dict[str, Any]:
        """Constructor keyword arguments for qiskit-machine-learning-style network classes."""
        kwargs: dict[str, Any] = {
            "circuit": self.circuit,
            "input_params": list(self.input_params),
            "weight_params": list(self.weight_params),
        }
        if self.kind == "estimator" and self.observables is not None:
            kwargs["observables"] = list(self.observables)
        if self.kind == "sampler" and self.interpret is not None:
            kwargs["interpret"] = self.interpret
            kwargs["output_shape"] = self.output_shape
        return kwargs

    def random_data(self, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``(batch, I)`` inputs and ``(W,)`` weights, uniform in [0, 2 pi), float64."""
        rng = np.random.default_rng(seed)
        inputs = rng.uniform(0.0, 2 * np.pi, size=(batch, len(self.input_params)))
        weights = rng.uniform(0.0, 2 * np.pi, size=len(self.weight_params))
        return inputs, weights


@dataclass(frozen=True)
class Workload:
    """A network plus the batch it is timed at.

    Attributes:
        name: Short name used on the command line and in the table.
        build: Builds the network description.
        batch: Number of samples per pass.
        ref_batch: Default number of samples the slow (scaled) peers are measured on.
    """

    name: str
    build: Callable[[], QNNSpec]
    batch: int
    ref_batch: int


def tutorial_estimator() -> QNNSpec:
    """The qiskit QNN tutorial's EstimatorQNN: 1 qubit, observable ``Y``."""
    qc, inp, weight = tutorial_estimator_circuit()
    return QNNSpec("estimator", qc, (inp,), (weight,), observables=(SparsePauliOp("Y"),))


def tutorial_sampler() -> QNNSpec:
    """The qiskit QNN tutorial's SamplerQNN: 2 qubits, 4 weights, no interpret."""
    qc, inputs, weights = tutorial_sampler_circuit()
    return QNNSpec("sampler", qc, tuple(inputs), tuple(weights))


def zz_estimator(num_qubits: int) -> QNNSpec:
    """ZZ feature map + RealAmplitudes EstimatorQNN with the default ``Z^n`` observable."""
    qc, feature_map, ansatz = zz_real_amplitudes(num_qubits)
    return QNNSpec("estimator", qc, tuple(feature_map.parameters), tuple(ansatz.parameters))


def zz_sampler_parity(num_qubits: int) -> QNNSpec:
    """ZZ feature map + RealAmplitudes SamplerQNN with the parity interpret (2 outputs)."""
    qc, feature_map, ansatz = zz_real_amplitudes(num_qubits)
    return QNNSpec(
        "sampler",
        qc,
        tuple(feature_map.parameters),
        tuple(ansatz.parameters),
        interpret=parity,
        output_shape=2,
    )


def zz_sampler_probs(num_qubits: int) -> QNNSpec:
    """ZZ feature map + RealAmplitudes SamplerQNN without interpret: all ``2**n``
    probabilities are outputs."""
    qc, feature_map, ansatz = zz_real_amplitudes(num_qubits)
    return QNNSpec("sampler", qc, tuple(feature_map.parameters), tuple(ansatz.parameters))


def zz_kernel_tables(num_qubits: int, dtype: str = "complex128") -> tuple[Any, list[int]]:
    """The CUDA kernels' encoded program of :func:`zz_estimator` (a
    :class:`gpuqnn._cuda.tables.KernelTables`, built on the CPU) and the slots a backward
    pass with input gradients differentiates by (every slot)."""
    from benchmarks.internals import (
        encode_tables,  # noqa: PLC0415
        simulator_of,  # noqa: PLC0415
    )
    from gpuqnn import EstimatorQNN  # noqa: PLC0415 - workloads stay importable without it

    spec = zz_estimator(num_qubits)
    simulator = simulator_of(EstimatorQNN(**spec.qiskit_kwargs(), device="cpu", dtype=dtype))
    columns = range(len(spec.input_params) + len(spec.weight_params))
    kp = encode_tables(simulator.program, simulator.readout)
    return kp, simulator.differentiated_slots(columns)


WORKLOADS: tuple[Workload, ...] = (
    Workload("tutorial-estimator", tutorial_estimator, batch=1024, ref_batch=1024),
    Workload("tutorial-sampler", tutorial_sampler, batch=1024, ref_batch=1024),
    Workload("zz8-estimator", lambda: zz_estimator(8), batch=256, ref_batch=16),
    Workload("zz8-sampler-parity", lambda: zz_sampler_parity(8), batch=256, ref_batch=16),
    Workload("zz12-estimator", lambda: zz_estimator(12), batch=64, ref_batch=16),
)
"""The CPU benchmark's workloads (the foundation issue's), in table order."""

GPU_WORKLOADS: tuple[Workload, ...] = (
    Workload("zz8-estimator", lambda: zz_estimator(8), batch=4096, ref_batch=16),
    Workload("zz8-sampler-parity", lambda: zz_sampler_parity(8), batch=4096, ref_batch=16),
    Workload("zz12-estimator", lambda: zz_estimator(12), batch=1024, ref_batch=8),
    Workload("zz16-estimator", lambda: zz_estimator(16), batch=256, ref_batch=1),
)
"""The GPU benchmark's workloads: the issue's 8-qubit estimator at batch 4096 first; 12 qubits
(the fused kernel's limit in complex128) and 16 qubits (per-op kernels) beside it."""


TRAIN_WORKLOADS: tuple[Workload, ...] = (
    Workload("zz8-estimator", lambda: zz_estimator(8), batch=256, ref_batch=16),
    Workload("zz8-sampler-parity", lambda: zz_sampler_parity(8), batch=256, ref_batch=16),
    Workload("zz8-sampler-probs", lambda: zz_sampler_probs(8), batch=256, ref_batch=16),
    Workload("zz10-sampler-probs", lambda: zz_sampler_probs(10), batch=64, ref_batch=16),
    Workload("zz12-estimator", lambda: zz_estimator(12), batch=64, ref_batch=16),
)
"""The training-step benchmark's workloads (issue 13): 1, 2, 256 and 1024 outputs per sample."""


def by_name(workloads: tuple[Workload, ...], names: list[str]) -> list[Workload]:
    """The workloads named, in table order."""
    return [w for w in workloads if w.name in names]

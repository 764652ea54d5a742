"""The networks the benchmarks time, described independently of any implementation."""

from __future__ import annotations

import functools
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
    """One network, independent of any implementation: ``kind`` estimator or sampler, its
    observables (None: ``Z^n``) or interpret and output shape (None: all probabilities)."""

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
    """A network, the batch it is timed at and the samples the scaled peers run by default."""

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


def zz_network(num_qubits: int, kind: str = "estimator", **readout: Any) -> QNNSpec:
    """ZZ feature map + RealAmplitudes as ``kind`` (default observable ``Z^n``; a sampler
    without ``interpret`` gives all ``2**n`` probabilities)."""
    qc, feature_map, ansatz = zz_real_amplitudes(num_qubits)
    return QNNSpec(kind, qc, tuple(feature_map.parameters), tuple(ansatz.parameters), **readout)


def zz_estimator(num_qubits: int) -> QNNSpec:
    """The ZZ EstimatorQNN with the default ``Z^n`` observable."""
    return zz_network(num_qubits)


def zz_sampler_parity(num_qubits: int) -> QNNSpec:
    """The ZZ SamplerQNN with the parity interpret (2 outputs)."""
    return zz_network(num_qubits, "sampler", interpret=parity, output_shape=2)


@functools.cache
def zz_kernel_tables(num_qubits: int, dtype: str = "complex128") -> tuple[Any, list[int]]:
    """The CUDA kernels' encoded tables of :func:`zz_estimator` (built on the CPU) and the
    slots a backward pass with input gradients differentiates by (built once per process:
    treat them as read-only)."""
    from benchmarks.internals import encode_tables, simulator_of
    from gpuqnn import EstimatorQNN

    spec = zz_estimator(num_qubits)
    simulator = simulator_of(EstimatorQNN(**spec.qiskit_kwargs(), device="cpu", dtype=dtype))
    columns = range(len(spec.input_params) + len(spec.weight_params))
    kp = encode_tables(simulator.program, simulator.readout)
    return kp, simulator.differentiated_slots(columns)


@functools.cache
def zz_kernel_slot_sets(num_qubits: int, dtype: str = "complex128") -> tuple[Any, dict]:
    """:func:`zz_kernel_tables` and the slots of both backward passes the benchmarks time:
    ``{"inputs+weights": slots, "weights": slots}`` (with and without input gradients)."""
    from benchmarks.internals import encode_tables, simulator_of
    from gpuqnn import EstimatorQNN

    spec = zz_estimator(num_qubits)
    simulator = simulator_of(EstimatorQNN(**spec.qiskit_kwargs(), device="cpu", dtype=dtype))
    inputs, total = len(spec.input_params), len(spec.input_params) + len(spec.weight_params)
    kp = encode_tables(simulator.program, simulator.readout)
    return kp, {
        "inputs+weights": simulator.differentiated_slots(range(total)),
        "weights": simulator.differentiated_slots(range(inputs, total)),
    }


WORKLOADS: tuple[Workload, ...] = (
    Workload("tutorial-estimator", tutorial_estimator, batch=1024, ref_batch=1024),
    Workload("tutorial-sampler", tutorial_sampler, batch=1024, ref_batch=1024),
    Workload("zz8-estimator", lambda: zz_estimator(8), batch=256, ref_batch=16),
    Workload("zz8-sampler-parity", lambda: zz_sampler_parity(8), batch=256, ref_batch=16),
    Workload("zz12-estimator", lambda: zz_estimator(12), batch=64, ref_batch=16),
)
"""The CPU benchmark's workloads, in table order."""

GPU_WORKLOADS: tuple[Workload, ...] = (
    Workload("zz8-estimator", lambda: zz_estimator(8), batch=4096, ref_batch=16),
    Workload("zz8-sampler-parity", lambda: zz_sampler_parity(8), batch=4096, ref_batch=16),
    Workload("zz12-estimator", lambda: zz_estimator(12), batch=1024, ref_batch=8),
    Workload("zz16-estimator", lambda: zz_estimator(16), batch=256, ref_batch=1),
)
"""The GPU benchmark's: issue 4's first; 12 qubits (the fused kernel's limit) and 16 (per-op)."""


TRAIN_WORKLOADS: tuple[Workload, ...] = (
    Workload("zz8-estimator", lambda: zz_estimator(8), batch=256, ref_batch=16),
    Workload("zz8-sampler-parity", lambda: zz_sampler_parity(8), batch=256, ref_batch=16),
    Workload("zz8-sampler-probs", lambda: zz_network(8, "sampler"), batch=256, ref_batch=16),
    Workload("zz10-sampler-probs", lambda: zz_network(10, "sampler"), batch=64, ref_batch=16),
    Workload("zz12-estimator", lambda: zz_estimator(12), batch=64, ref_batch=16),
)
"""The training-step benchmark's (issue 13): 1, 2, 256 and 1024 outputs per sample."""


def by_name(workloads: tuple[Workload, ...], names: list[str]) -> list[Workload]:
    """The workloads named, in table order."""
    return [w for w in workloads if w.name in names]

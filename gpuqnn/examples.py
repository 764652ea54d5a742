"""Example circuits: qiskit's QNN tutorial networks and the benchmark workloads' circuits.

Used by the main job (``python -m gpuqnn``) and by ``benchmarks/``; handy in notebooks too.
"""

from __future__ import annotations

from qiskit.circuit import Parameter, ParameterVector, QuantumCircuit
from qiskit.circuit.library import real_amplitudes, zz_feature_map


def parity(bitstring: int) -> int:
    """The tutorial's SamplerQNN ``interpret``: parity of the measured bit string."""
    return bin(bitstring).count("1") % 2


def tutorial_estimator_circuit() -> tuple[QuantumCircuit, Parameter, Parameter]:
    """The tutorial's EstimatorQNN circuit ``h; ry(input1); rx(weight1)`` on one qubit.

    Returns:
        The circuit, its input parameter and its weight parameter.
    """
    inp, weight = Parameter("input1"), Parameter("weight1")
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.ry(inp, 0)
    qc.rx(weight, 0)
    return qc, inp, weight


def tutorial_sampler_circuit() -> tuple[QuantumCircuit, ParameterVector, ParameterVector]:
    """The tutorial's SamplerQNN circuit: two qubits, two inputs, four weights.

    Returns:
        The circuit, its input parameters and its weight parameters.
    """
    inputs, weights = ParameterVector("input", 2), ParameterVector("weight", 4)
    qc = QuantumCircuit(2)
    qc.ry(inputs[0], 0)
    qc.ry(inputs[1], 1)
    qc.cx(0, 1)
    qc.ry(weights[0], 0)
    qc.ry(weights[1], 1)
    qc.cx(0, 1)
    qc.ry(weights[2], 0)
    qc.ry(weights[3], 1)
    return qc, inputs, weights


def zz_real_amplitudes(num_qubits: int, reps: int = 3
                       ) -> tuple[QuantumCircuit, QuantumCircuit, QuantumCircuit]:
    """``zz_feature_map(n, reps=1)`` followed by ``real_amplitudes(n, reps)``.

    Returns:
        The composed circuit, the feature map (its parameters are the inputs) and the ansatz
        (its parameters are the weights).
    """
    feature_map = zz_feature_map(num_qubits, reps=1)
    ansatz = real_amplitudes(num_qubits, reps=reps)
    qc = QuantumCircuit(num_qubits)
    qc.compose(feature_map, inplace=True)
    qc.compose(ansatz, inplace=True)
    return qc, feature_map, ansatz

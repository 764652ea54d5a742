"""Translate a workload's qiskit circuit, observables and interpret into a PennyLane quantum
function, gate by gate, for the PennyLane peers.

Wires: qiskit qubit ``q`` is wire ``n - 1 - q`` (see :mod:`benchmarks.translation`, which this
shares with the TensorCircuit-ng peers), so that ``qml.probs`` over wires ``0 .. n-1`` is indexed
by qiskit's integer bit strings and a ``SparsePauliOp`` label's i-th character acts on wire i.
Gate angles are qiskit ``ParameterExpression``s; each is compiled once (from its sympy form) into
a function of the parameters evaluated with the interface's array module (torch, ``jax.numpy``
or PennyLane's autograd NumPy), so sums, products such as ZZFeatureMap's ``(pi - x0)(pi - x1)``,
powers and elementary functions stay differentiable and broadcast over the batch.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pennylane as qml

from benchmarks.translation import (
    SKIPPED,
    Env,
    compile_expression,
    interpret_matrix,
    pauli_terms,
    require_inputs,
    wires,
)
from benchmarks.workloads import QNNSpec

__all__ = [
    "compile_expression",
    "interpret_matrix",
    "observables",
    "quantum_function",
    "stack_outputs",
    "translate_gates",
]

_GATES: dict[str, tuple[Callable[..., Any], int]] = {
    "h": (qml.Hadamard, 0),
    "x": (qml.PauliX, 0),
    "y": (qml.PauliY, 0),
    "z": (qml.PauliZ, 0),
    "s": (qml.S, 0),
    "sdg": (qml.adjoint(qml.S), 0),
    "t": (qml.T, 0),
    "tdg": (qml.adjoint(qml.T), 0),
    "sx": (qml.SX, 0),
    "cx": (qml.CNOT, 0),
    "cy": (qml.CY, 0),
    "cz": (qml.CZ, 0),
    "swap": (qml.SWAP, 0),
    "ccx": (qml.Toffoli, 0),
    "p": (qml.PhaseShift, 1),
    "rx": (qml.RX, 1),
    "ry": (qml.RY, 1),
    "rz": (qml.RZ, 1),
    "u": (qml.U3, 3),
    "rxx": (qml.IsingXX, 1),
    "ryy": (qml.IsingYY, 1),
    "rzz": (qml.IsingZZ, 1),
    "crx": (qml.CRX, 1),
    "cry": (qml.CRY, 1),
    "crz": (qml.CRZ, 1),
    "cp": (qml.ControlledPhaseShift, 1),
}
"""qiskit gate name -> (PennyLane operation with the same matrix in qiskit's qubit order
mapped to reversed wires, number of angles)."""


@dataclass(frozen=True)
class _Gate:
    """One gate of the translated circuit."""

    operation: Callable[..., Any]
    wires: tuple[int, ...]
    angles: tuple[Callable[[Env], Any], ...]


def translate_gates(spec: QNNSpec, math: ModuleType) -> list[_Gate]:
    """The circuit's gates as PennyLane operations on reversed wires.

    Raises:
        ValueError: the circuit holds an instruction without a translation (its name is in the
            message) or a complex or untranslatable angle.
    """
    circuit = spec.circuit
    gates = []
    for instruction in circuit.data:
        name = instruction.operation.name
        if name in SKIPPED:
            continue
        if name not in _GATES:
            raise ValueError(
                f"the PennyLane peers cannot translate the instruction {name!r}; "
                f"known: {sorted(_GATES)}"
            )
        operation, num_angles = _GATES[name]
        params = instruction.operation.params
        if len(params) != num_angles:
            raise ValueError(
                f"instruction {name!r} has {len(params)} parameters, expected {num_angles}"
            )
        angles = tuple(compile_expression(p, math) for p in params)
        gates.append(_Gate(operation, wires(circuit, instruction), angles))
    return gates


def pauli_observable(label: str, coeff: float = 1.0) -> Any:
    """The PennyLane operator of a Pauli label (character i on wire i) times ``coeff``."""
    paulis = {"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}
    factors = [paulis[c](i) for i, c in enumerate(label) if c != "I"]
    term = functools.reduce(operator.matmul, factors) if factors else qml.Identity(0)
    return term if coeff == 1.0 else qml.s_prod(float(coeff), term)


def observables(spec: QNNSpec) -> list[Any]:
    """The estimator's observables as PennyLane operators (default ``Z^n``).

    Raises:
        ValueError: an observable has a complex coefficient (not Hermitian).
    """
    result = []
    for observable in pauli_terms(spec):
        terms = [pauli_observable(label, c) for label, c in observable]
        result.append(terms[0] if len(terms) == 1 else qml.sum(*terms))
    return result


def quantum_function(spec: QNNSpec, math: ModuleType) -> Callable[[Any, Any], Any]:
    """A PennyLane quantum function ``(inputs, weights) -> measurements`` of the network.

    ``inputs`` is ``(B, I)`` (each feature's column broadcasts over the batch) and ``weights``
    is ``(W,)``. It returns one ``qml.expval`` per observable (estimator) or ``qml.probs`` of
    all wires (sampler; apply :func:`interpret_matrix` to the result).

    Raises:
        ValueError: the network has no inputs (the batch is carried by broadcasting them), or
            see :func:`translate_gates`.
    """
    require_inputs(spec, "PennyLane")
    gates = translate_gates(spec, math)
    input_names = [p.name for p in spec.input_params]
    weight_names = [p.name for p in spec.weight_params]
    measured = observables(spec) if spec.kind == "estimator" else None
    all_wires = list(range(spec.num_qubits))

    def circuit(inputs: Any, weights: Any) -> Any:
        env = {name: inputs[:, i] for i, name in enumerate(input_names)}
        env.update({name: weights[j] for j, name in enumerate(weight_names)})
        for gate in gates:
            gate.operation(*(angle(env) for angle in gate.angles), wires=gate.wires)
        if measured is None:
            return qml.probs(wires=all_wires)
        return tuple(qml.expval(observable) for observable in measured)

    return circuit


def stack_outputs(
    values: Any, math: ModuleType, num_outputs: int, interpret: Any | None = None
) -> Any:
    """A QNode's result as ``(B, O)`` outputs: expectation values stacked along the last
    axis, or probabilities times the interpret matrix (an array of ``math``'s kind)."""
    if isinstance(values, Sequence):
        values = math.stack(list(values), -1) if len(values) > 1 else values[0][..., None]
    if interpret is not None:
        values = values @ interpret
    return math.reshape(values, (-1, num_outputs))

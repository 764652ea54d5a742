"""Translate a workload's qiskit circuit, observables and interpret into a PennyLane quantum
function, gate by gate, for the PennyLane peers.

Wires: qiskit qubit ``q`` is wire ``n - 1 - q``, so that ``qml.probs`` over wires ``0 .. n-1``
is indexed by qiskit's integer bit strings and a ``SparsePauliOp`` label's i-th character acts
on wire i. Gate angles are qiskit ``ParameterExpression``s; each is compiled once (from its sympy
form) into a function of the parameters evaluated with the interface's array module (torch or
PennyLane's autograd NumPy), so sums, products such as ZZFeatureMap's ``(pi - x0)(pi - x1)``,
powers and elementary functions stay differentiable and broadcast over the batch.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pennylane as qml
import sympy
from qiskit.circuit import ParameterExpression

from benchmarks.workloads import QNNSpec

Env = Mapping[str, Any]
"""Parameter name -> value: a (B,) array for an input feature, a scalar for a weight."""

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

_SKIPPED = {"barrier", "id", "delay", "global_phase"}
"""Instructions without an effect on the outputs (a global phase is unobservable)."""

_FUNCTIONS = {
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "exp": "exp",
    "log": "log",
    "asin": "arcsin",
    "acos": "arccos",
    "atan": "arctan",
    "Abs": "abs",
}
"""sympy function name -> the array module's function of the same meaning."""


def compile_expression(expr: Any, math: ModuleType) -> Callable[[Env], Any]:
    """A function ``env -> value`` computing ``expr`` with ``math``'s functions.

    Args:
        expr: a sympy expression (from ``ParameterExpression.sympify()``), a qiskit
            ``ParameterExpression`` or a real number.
        math: array module with ``sin``, ``cos``, ``exp``, ... (``torch`` or
            ``pennylane.numpy``).

    Raises:
        ValueError: ``expr`` holds a complex constant or a function without a translation.
    """
    if isinstance(expr, ParameterExpression):
        expr = expr.sympify()
    if not isinstance(expr, sympy.Basic):
        expr = sympy.sympify(expr)
    if isinstance(expr, sympy.Symbol):
        name = expr.name
        return lambda env: env[name]
    if expr.is_number:
        if not expr.is_real:
            raise ValueError(f"gate angle {expr} is not real")
        value = float(expr)
        return lambda env: value
    args = [compile_expression(arg, math) for arg in expr.args]
    if isinstance(expr, sympy.Add):
        return lambda env: functools.reduce(operator.add, (f(env) for f in args))
    if isinstance(expr, sympy.Mul):
        return lambda env: functools.reduce(operator.mul, (f(env) for f in args))
    if isinstance(expr, sympy.Pow):
        base, exponent = args
        return lambda env: base(env) ** exponent(env)
    name = type(expr).__name__
    if isinstance(expr, sympy.Function) and name in _FUNCTIONS and len(args) == 1:
        function, (arg,) = getattr(math, _FUNCTIONS[name]), args
        return lambda env: function(arg(env))
    raise ValueError(f"cannot translate the parameter expression {expr} ({name}) to PennyLane")


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
    n = circuit.num_qubits
    gates = []
    for instruction in circuit.data:
        name = instruction.operation.name
        if name in _SKIPPED:
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
        wires = tuple(n - 1 - circuit.find_bit(q).index for q in instruction.qubits)
        angles = tuple(compile_expression(p, math) for p in params)
        gates.append(_Gate(operation, wires, angles))
    return gates


def pauli_observable(label: str, coeff: complex = 1.0) -> Any:
    """The PennyLane operator of a Pauli label (character i on wire i) times ``coeff``."""
    paulis = {"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}
    factors = [paulis[c](i) for i, c in enumerate(label) if c != "I"]
    term = functools.reduce(operator.matmul, factors) if factors else qml.Identity(0)
    return term if coeff == 1.0 else qml.s_prod(float(np.real(coeff)), term)


def observables(spec: QNNSpec) -> list[Any]:
    """The estimator's observables as PennyLane operators (default ``Z^n``).

    Raises:
        ValueError: an observable has a complex coefficient (not Hermitian).
    """
    if spec.observables is None:
        return [pauli_observable("Z" * spec.num_qubits)]
    result = []
    for observable in spec.observables:
        coeffs = np.asarray(observable.coeffs)
        if np.any(np.abs(coeffs.imag) > 1e-12):
            raise ValueError(f"observable {observable} has complex coefficients")
        terms = [
            pauli_observable(label, c)
            for label, c in zip(observable.paulis.to_labels(), coeffs.real, strict=True)
        ]
        result.append(terms[0] if len(terms) == 1 else qml.sum(*terms))
    return result


def interpret_matrix(spec: QNNSpec) -> np.ndarray | None:
    """The sampler's interpret as a (2**n, output_shape) 0/1 matrix, or None without one."""
    if spec.interpret is None:
        return None
    matrix = np.zeros((2**spec.num_qubits, spec.output_shape))
    for index in range(2**spec.num_qubits):
        matrix[index, spec.interpret(index)] = 1.0
    return matrix


def quantum_function(spec: QNNSpec, math: ModuleType) -> Callable[[Any, Any], Any]:
    """A PennyLane quantum function ``(inputs, weights) -> measurements`` of the network.

    ``inputs`` is ``(B, I)`` (each feature's column broadcasts over the batch) and ``weights``
    is ``(W,)``. It returns one ``qml.expval`` per observable (estimator) or ``qml.probs`` of
    all wires (sampler; apply :func:`interpret_matrix` to the result).

    Raises:
        ValueError: the network has no inputs (the batch is carried by broadcasting them), or
            see :func:`translate_gates`.
    """
    if not spec.input_params:
        raise ValueError(
            "the PennyLane peers broadcast the inputs over the batch; this network has none"
        )
    gates = translate_gates(spec, math)
    input_names = [p.name for p in spec.input_params]
    weight_names = [p.name for p in spec.weight_params]
    measured = observables(spec) if spec.kind == "estimator" else None
    wires = list(range(spec.num_qubits))

    def circuit(inputs: Any, weights: Any) -> Any:
        env = {name: inputs[:, i] for i, name in enumerate(input_names)}
        env.update({name: weights[j] for j, name in enumerate(weight_names)})
        for gate in gates:
            gate.operation(*(angle(env) for angle in gate.angles), wires=gate.wires)
        if measured is None:
            return qml.probs(wires=wires)
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

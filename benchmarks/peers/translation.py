"""What the gate-by-gate translations (PennyLane, TensorCircuit-ng) share, with no optional
package: angles compiled from qiskit ``ParameterExpression``s, the interpret as a matrix, the
observables as Pauli terms, and the wire order: qiskit qubit ``q`` is wire ``n - 1 - q``, so the
peers' probabilities are indexed by qiskit's integers and a Pauli label's i-th character acts on
wire i."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import numpy as np
import sympy
from qiskit.circuit import CircuitInstruction, ParameterExpression, QuantumCircuit

from benchmarks.workloads import QNNSpec

Env = Mapping[str, Any]  # parameter name -> value ((B,) array for an input, scalar for a weight)
SKIPPED = frozenset({"barrier", "id", "delay", "global_phase"})  # no effect on the outputs
ROTATIONS = ("p", "rx", "ry", "rz", "rxx", "ryy", "rzz", "crx", "cry", "crz", "cp")
ANGLES = {**dict.fromkeys(ROTATIONS, 1), "u": 3}
"""qiskit gate name -> its angles, for the parametrized gates both translations know by name."""

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
    """A function ``env -> value`` computing ``expr`` (sympy, a ``ParameterExpression`` or a
    real number) with the array module ``math``'s functions; ``ValueError`` for a complex
    constant or a function without a translation."""
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
    raise ValueError(f"cannot translate the parameter expression {expr} ({name})")


def gate_angles(operation: Any, math: ModuleType) -> tuple[Callable[[Env], Any], ...]:
    """The compiled angles of a gate known by name; ``ValueError`` when their count is not
    :data:`ANGLES`' (none for a gate without angles)."""
    params, expected = operation.params, ANGLES.get(operation.name, 0)
    if len(params) != expected:
        raise ValueError(
            f"instruction {operation.name!r} has {len(params)} parameters, expected {expected}"
        )
    return tuple(compile_expression(p, math) for p in params)


def wires(circuit: QuantumCircuit, instruction: CircuitInstruction) -> tuple[int, ...]:
    """The instruction's qubits as wires (qubit ``q`` -> ``n - 1 - q``), in its own order."""
    n = circuit.num_qubits
    return tuple(n - 1 - circuit.find_bit(q).index for q in instruction.qubits)


def interpret_matrix(spec: QNNSpec) -> np.ndarray | None:
    """The sampler's interpret as a (2**n, output_shape) 0/1 matrix, or None without one."""
    if spec.interpret is None:
        return None
    matrix = np.zeros((2**spec.num_qubits, spec.output_shape))
    for index in range(2**spec.num_qubits):
        matrix[index, spec.interpret(index)] = 1.0
    return matrix


def pauli_terms(spec: QNNSpec) -> list[list[tuple[str, float]]]:
    """The estimator's observables as lists of (Pauli label, real coefficient) (default
    ``Z^n``); ``ValueError`` for a complex coefficient."""
    if spec.observables is None:
        return [[("Z" * spec.num_qubits, 1.0)]]
    result = []
    for observable in spec.observables:
        coeffs = np.asarray(observable.coeffs)
        if np.any(np.abs(coeffs.imag) > 1e-12):
            raise ValueError(f"observable {observable} has complex coefficients")
        labels = observable.paulis.to_labels()
        result.append([(label, float(c)) for label, c in zip(labels, coeffs.real, strict=True)])
    return result


def require_inputs(spec: QNNSpec, peer: str) -> None:
    """Raise ``ValueError`` when the network has no inputs: peers that carry the batch in the
    inputs (broadcast or ``vmap``) have nothing to carry it in."""
    if not spec.input_params:
        raise ValueError(f"the {peer} peers carry the batch in the inputs; this network has none")

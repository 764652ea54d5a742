"""Exact ``exp(-i t H)`` for evolution gates whose time is a parameter expression.

qiskit's ``PauliEvolutionGate`` is defined by a product formula (one Lie-Trotter step by
default), which is not ``exp(-i t H)`` when the terms of H do not commute, and
``HamiltonianGate`` has no definition while its time is unbound. Here the time-independent
Hermitian H on the gate's k qubits is diagonalised once, ``H = V diag(lam) V^dagger``, and

    exp(-i t H) = V exp(-i t diag(lam)) V^dagger,
    exp(-i t diag(lam)) = prod_S exp(-i t c_S Z_S),  c = WHT(lam) / 2**k,

where S runs over the non-empty subsets of the k qubits (``Z_S`` the product of their Z's) and
the Walsh-Hadamard transform is taken in qiskit's bit order. Each factor is, up to a global
phase, a phase ``exp(2 i c_S t)`` where the parity of S's bits is 1: a ``PHASE`` op whose slot
angle is the expression ``2 c_S t``, so the angle table differentiates it like any rotation
angle. The identity term ``c_0`` is a global phase and is dropped (no output can observe it; a
controlled evolution arrives as a ``PauliEvolutionGate`` of the controlled operator, where the
projector terms carry the phase). V and V^dagger are constant ops (none when H is diagonal).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from qiskit.circuit import ParameterExpression
from qiskit.circuit.library import HamiltonianGate, PauliEvolutionGate
from qiskit.quantum_info import SparseObservable, SparsePauliOp

_ATOL = 1e-12  # off-diagonal entries below this: H is diagonal
_DROP = 1e-14  # Walsh coefficients below this (relative to H's scale) are zero


class PhaseTerm(NamedTuple):
    """One factor ``exp(i angle * parity(bits))`` of the diagonal evolution.

    Attributes:
        bits: the gate's qubit positions (0..k-1) whose parity is phased, ascending.
        factor: the angle is ``factor * t``.
    """

    bits: tuple[int, ...]
    factor: float


class Evolution(NamedTuple):
    """``exp(-i t H)`` as ``basis diag basis^dagger``.

    Attributes:
        basis: (2**k, 2**k) complex unitary V, or None when H is diagonal.
        terms: the phase factors of ``exp(-i t diag(lam))`` (global phase dropped).
    """

    basis: np.ndarray | None
    terms: tuple[PhaseTerm, ...]


def is_evolution(gate: Any) -> bool:
    """Whether ``gate`` is an evolution gate whose time is an unbound parameter expression."""
    if isinstance(gate, PauliEvolutionGate):
        time = gate.params[0]
    elif isinstance(gate, HamiltonianGate):
        time = gate.params[1]
    else:
        return False
    return isinstance(time, ParameterExpression) and bool(time.parameters)


def evolution_time(gate: Any) -> ParameterExpression:
    """The time expression of an evolution gate (see :func:`is_evolution`)."""
    time: ParameterExpression = gate.params[0 if isinstance(gate, PauliEvolutionGate) else 1]
    return time


def hamiltonian(gate: Any) -> np.ndarray:
    """The (2**k, 2**k) complex Hermitian matrix H of an evolution gate.

    Args:
        gate: a ``PauliEvolutionGate`` (its operator, or the sum of its list of operators; a
            controlled one holds the controlled operator) or a ``HamiltonianGate``. qiskit
            refuses parameterised, complex (non-Hermitian) coefficients and non-Hermitian
            matrices when it builds them, so H is a constant Hermitian matrix here.
    """
    if isinstance(gate, HamiltonianGate):
        return np.asarray(gate.params[0], dtype=complex)
    operators = gate.operator if isinstance(gate.operator, list) else [gate.operator]
    matrix = np.zeros((2**gate.num_qubits,) * 2, dtype=complex)
    for operator in operators:
        if isinstance(operator, SparseObservable):
            operator = SparsePauliOp.from_sparse_observable(operator)
        matrix += operator.to_matrix()
    return matrix


def diagonalise(matrix: np.ndarray) -> Evolution:
    """``exp(-i t H)`` for the Hermitian ``matrix`` H as a basis change and phase terms.

    Args:
        matrix: (2**k, 2**k) complex Hermitian H.

    Returns:
        The basis V (None for a diagonal H) and the phase terms of ``exp(-i t diag(lam))``.
    """
    dim = matrix.shape[0]
    basis: np.ndarray | None
    if np.allclose(matrix, np.diag(np.diag(matrix)), atol=_ATOL, rtol=0):
        eigenvalues, basis = np.diag(matrix).real.copy(), None
    else:
        eigenvalues, basis = np.linalg.eigh((matrix + matrix.conj().T) / 2)
    # Walsh-Hadamard transform: c_S = sum_j lam_j (-1)^popcount(j & S) / dim
    coeffs = eigenvalues.astype(float)
    h = 1
    while h < dim:
        coeffs = coeffs.reshape(-1, 2, h)
        coeffs = np.stack([coeffs[:, 0] + coeffs[:, 1], coeffs[:, 0] - coeffs[:, 1]], axis=1)
        h *= 2
    coeffs = coeffs.reshape(dim) / dim
    scale = max(1.0, float(np.abs(eigenvalues).max(initial=0.0)))
    k = dim.bit_length() - 1
    terms = tuple(
        # exp(-i t c Z_S) = exp(-i t c) exp(2 i c t parity_S)
        PhaseTerm(tuple(b for b in range(k) if s >> b & 1), 2.0 * float(coeffs[s]))
        for s in range(1, dim)
        if abs(coeffs[s]) > _DROP * scale
    )
    return Evolution(basis, terms)


def parity_mask(width: int) -> np.ndarray:
    """(2**width,) float 0/1: the parity of each local index's bits."""
    index = np.arange(2**width)
    parity = np.zeros(2**width, dtype=np.int64)
    for b in range(width):
        parity ^= (index >> b) & 1
    return parity.astype(float)

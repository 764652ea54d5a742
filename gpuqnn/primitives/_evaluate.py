"""Batched evaluations shared by the primitives and their gradients.

Every request for one circuit (all parameter sets of all pubs or gradient items that carry the
same circuit) is served by ONE simulator call: identical parameter rows are evaluated once, and a
few distinct observables share one readout. Shapes: N requested rows, P parameters, U distinct
rows, O observables, J differentiated parameters, M measured clbits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import Pauli, SparseObservable, SparsePauliOp
from qiskit.quantum_info.operators.base_operator import BaseOperator

from .._compile import Program
from .._sim.backend import Backend
from .._sim.readout import PauliReadout, ProbabilityReadout
from ._cache import SimulatorCache

SHARED_OBSERVABLES = 16
"""Up to this many distinct observables of one circuit share one readout (every row gets every
observable); beyond, each observable gets its own simulator call over the rows that need it."""

_PAULI_LETTERS = frozenset("IXYZ")

ObservableKey = tuple[tuple[str, ...], tuple[complex, ...]]
"""What :func:`observable_key` returns: a Pauli sum's labels and coefficients."""


def as_pauli_sum(observable: Any) -> SparsePauliOp:
    """A ``SparsePauliOp`` of an observable: an ``ObservablesArray`` element (a mapping of
    Pauli or ``SparseObservable`` labels to coefficients), a ``SparseObservable``, a ``Pauli``,
    a ``SparsePauliOp`` or any operator.

    Raises:
        TypeError: ``observable`` cannot be converted.
    """
    if isinstance(observable, SparsePauliOp):
        return observable
    if isinstance(observable, Pauli):
        return SparsePauliOp(observable)
    if isinstance(observable, SparseObservable):
        return SparsePauliOp.from_sparse_observable(observable)
    if isinstance(observable, Mapping):
        items = [(str(label), complex(coeff)) for label, coeff in observable.items()]
        if all(set(label) <= _PAULI_LETTERS for label, _ in items):
            return SparsePauliOp.from_list(items)
        return SparsePauliOp.from_sparse_observable(SparseObservable.from_list(items))
    if isinstance(observable, BaseOperator):
        return SparsePauliOp.from_operator(observable)
    raise TypeError(f"cannot use {type(observable).__name__} as an observable")


def observable_key(observable: SparsePauliOp) -> ObservableKey:
    """A hashable key of a Pauli sum (its labels and coefficients)."""
    return (tuple(observable.paulis.to_labels()), tuple(complex(c) for c in observable.coeffs))


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows and, for each row, the index of its distinct row.

    Args:
        rows: (N, P) float64.

    Returns:
        (U, P) float64 distinct rows and (N,) int64 indices into them.
    """
    if rows.shape[0] == 0:
        return rows, np.zeros(0, dtype=np.int64)
    if rows.shape[1] == 0:
        return rows[:1], np.zeros(rows.shape[0], dtype=np.int64)
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1)


def _pauli_readout(
    observables: Sequence[SparsePauliOp],
) -> Callable[[Program, Backend], PauliReadout]:
    def make(program: Program, backend: Backend) -> PauliReadout:
        return PauliReadout(list(observables), program.qubit_map, program.num_qubits, backend)

    return make


def pauli_values(
    cache: SimulatorCache,
    key: str,
    circuit: QuantumCircuit,
    rows: np.ndarray,
    obs_ids: np.ndarray,
    observables: Sequence[SparsePauliOp],
    columns: Sequence[int] | None = None,
) -> np.ndarray:
    """Expectation values (or their derivatives) of one observable per row.

    Args:
        cache: the primitive's cache.
        key: ``circuit``'s structural key.
        circuit: the circuit; row columns follow ``circuit.parameters``.
        rows: (N, P) float64 parameter values.
        obs_ids: (N,) int64 index into ``observables`` of each row's observable.
        observables: the O distinct observables.
        columns: None for values; else the J parameter columns to differentiate by.

    Returns:
        (N,) float64 values, or (N, J) float64 derivatives.
    """
    num = rows.shape[0]
    out = np.zeros((num,) if columns is None else (num, len(columns)))
    if num == 0:
        return out
    keys = [observable_key(op) for op in observables]
    if len(observables) <= SHARED_OBSERVABLES:
        groups = [(np.arange(len(observables)), np.ones(num, dtype=bool))]
    else:
        groups = [(np.array([u]), obs_ids == u) for u in np.unique(obs_ids)]
    for members, selected in groups:
        simulator = cache.simulator(
            key,
            circuit,
            ("pauli", tuple(keys[u] for u in members)),
            _pauli_readout([observables[int(u)] for u in members]),
        )
        distinct, inverse = unique_rows(rows[selected])
        local = np.searchsorted(members, obs_ids[selected])
        if columns is None:
            table = cache.backend.to_host(simulator.forward(distinct))
            out[selected] = table[inverse, local]
        else:
            table = cache.backend.to_host(simulator.backward(distinct, list(columns)))
            out[selected] = table[inverse, local, :]
    return out


def measured_clbits(program: Program) -> list[int]:
    """The clbits with a final measurement, in clbit order (bit j of a joint key is the j-th)."""
    return sorted(program.measurements)


def _joint_readout(program: Program, backend: Backend) -> ProbabilityReadout:
    clbits = measured_clbits(program)
    key_bits = [int(program.qubit_map[program.measurements[c]]) for c in clbits]
    return ProbabilityReadout(
        key_bits, program.num_qubits, None, (2 ** len(clbits),), None, backend
    )


def joint_probabilities(
    cache: SimulatorCache,
    key: str,
    circuit: QuantumCircuit,
    rows: np.ndarray,
    columns: Sequence[int] | None = None,
) -> tuple[np.ndarray, list[int]]:
    """Probabilities (or their derivatives) of the measured clbits' joint outcomes.

    Args:
        cache: the primitive's cache.
        key: ``circuit``'s structural key.
        circuit: the circuit; row columns follow ``circuit.parameters``.
        rows: (N, P) float64 parameter values.
        columns: None for probabilities; else the J parameter columns to differentiate by.

    Returns:
        (N, 2**M) float64 probabilities, or (N, 2**M, J) derivatives, where bit j of the
        outcome index is the j-th measured clbit; and the M measured clbit indices.
    """
    program = cache.program(key, circuit)
    clbits = measured_clbits(program)
    simulator = cache.simulator(key, circuit, "joint", _joint_readout)
    distinct, inverse = unique_rows(rows)
    if columns is None:
        table = simulator.forward(distinct)
    else:
        table = simulator.backward(distinct, list(columns))
    return cache.backend.to_host(table)[inverse], clbits


def group_by_key(keys: Sequence[str]) -> dict[str, list[int]]:
    """Item indices per key, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return groups


def check_finite(values: np.ndarray, what: str) -> None:
    """Raise ValueError if ``values`` (float64, any shape) holds NaN or infinite entries;
    ``what`` names them in the message."""
    if values.size and not np.all(np.isfinite(values)):
        raise ValueError(f"{what} must be finite, but they hold NaN or infinite values")

"""Gradients of expectation values and of sampling probabilities on the batched cache.

:class:`EstimatorGradient` and :class:`SamplerGradient` subclass qiskit-machine-learning's
parameter-shift gradients. With an exact primitive (gpuqnn's in exact mode, ``QMLEstimator`` /
``QMLSampler`` in exact mode, an exact ``StatevectorEstimator``) the simulator computes the
analytic parameter-shift gradients of all circuits that share a structure in one call; with a
primitive that is not exact (precision, shots, hardware) they run qiskit-machine-learning's
parameter-shift code on that primitive, unchanged (which is still fast on gpuqnn's primitives).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit.circuit import Parameter, QuantumCircuit
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
from qiskit.providers import Options
from qiskit.quantum_info import SparsePauliOp
from qiskit.quantum_info.operators.base_operator import BaseOperator
from qiskit.transpiler.passmanager import BasePassManager
from qiskit_machine_learning.gradients import (
    EstimatorGradientResult,
    ParamShiftEstimatorGradient,
    ParamShiftSamplerGradient,
    SamplerGradientResult,
)
from qiskit_machine_learning.gradients.utils import DerivativeType

from ._cache import SimulatorCache
from ._evaluate import (
    ObservableKey,
    as_pauli_sum,
    check_finite,
    group_by_key,
    joint_probabilities,
    observable_key,
    pauli_values,
)
from ._exactness import exact_estimator, exact_sampler
from .estimator import Estimator
from .sampler import Sampler


def _cache_of(primitive: Any, own: list[SimulatorCache]) -> SimulatorCache:
    """The primitive's simulator cache if it is gpuqnn's, else a default one made once."""
    cache = getattr(primitive, "_cache", None)
    if isinstance(cache, SimulatorCache):
        return cache
    if not own:
        own.append(SimulatorCache("auto", "complex128", None, 32))
    return own[0]


def _columns(circuit: QuantumCircuit, parameters: Sequence[Parameter]) -> list[int]:
    """The positions of ``parameters`` in ``circuit.parameters``."""
    index = {p: j for j, p in enumerate(circuit.parameters)}
    return [index[p] for p in parameters]


def _rows(
    parameter_values: Sequence[Sequence[float]] | np.ndarray, members: Sequence[int]
) -> np.ndarray:
    """(len(members), P) float64 parameter values of the given items, checked to be finite."""
    rows = np.array([np.asarray(parameter_values[i], dtype=float).reshape(-1) for i in members])
    check_finite(rows, "parameter_values")
    return rows


class EstimatorGradient(ParamShiftEstimatorGradient):
    """Analytic gradients of expectation values, computed by gpuqnn's cache.

    Same arguments and results as qiskit-machine-learning's ``ParamShiftEstimatorGradient``
    (``run(circuits, observables, parameter_values, parameters=None)``, one gradient array per
    circuit over the requested parameters, in their order). The simulator serves exact estimators
    (the default, gpuqnn's exact :class:`Estimator`); for any other estimator this is
    qiskit-machine-learning's parameter shift on that estimator.

    Args:
        estimator: the estimator; None for gpuqnn's exact :class:`Estimator`.
        options: primitive options for the delegated path (ignored by the cache).
        derivative_type: only ``DerivativeType.REAL`` (parameter shift gives real derivatives).
        pass_manager: used on the delegated path only; the simulator simulates the circuits as
            given.

    Raises:
        ValueError: a derivative type other than REAL.
    """

    def __init__(
        self,
        estimator: BaseEstimatorV2 | None = None,
        options: Options | None = None,
        derivative_type: DerivativeType = DerivativeType.REAL,
        pass_manager: BasePassManager | None = None,
    ) -> None:
        if derivative_type != DerivativeType.REAL:
            raise ValueError(
                f"derivative_type must be DerivativeType.REAL (parameter shift "
                f"gives real derivatives), got {derivative_type!r}"
            )
        super().__init__(
            Estimator() if estimator is None else estimator, options, derivative_type, pass_manager
        )
        self._own_cache: list[SimulatorCache] = []

    @property
    def engine_serves(self) -> bool:
        """Whether the simulator computes the gradients (the estimator is exact)."""
        return exact_estimator(self._estimator, 0.0)

    def _run(
        self,
        circuits: Sequence[QuantumCircuit],
        observables: Sequence[BaseOperator],
        parameter_values: Sequence[Sequence[float]] | np.ndarray,
        parameters: Sequence[Sequence[Parameter]],
        **options: Any,
    ) -> EstimatorGradientResult:
        if not self.engine_serves:
            return super()._run(circuits, observables, parameter_values, parameters, **options)
        cache = _cache_of(self._estimator, self._own_cache)
        gradients: list[Any] = [None] * len(circuits)
        op_memo: dict[int, Any] = {}
        for key, members in group_by_key(cache.keys(circuits)).items():
            circuit = circuits[members[0]]
            rows = _rows(parameter_values, members)
            observables_: list[SparsePauliOp] = []
            ids: list[int] = []
            index: dict[ObservableKey, int] = {}
            for i in members:
                op = op_memo.get(id(observables[i]))
                if op is None:
                    op = op_memo[id(observables[i])] = as_pauli_sum(observables[i])
                ids.append(index.setdefault(observable_key(op), len(observables_)))
                if ids[-1] == len(observables_):
                    observables_.append(op)
            wanted = [_columns(circuits[i], parameters[i]) for i in members]
            columns = sorted({c for cols in wanted for c in cols})
            position = {c: j for j, c in enumerate(columns)}
            table = (
                pauli_values(cache, key, circuit, rows, np.array(ids), observables_, columns)
                if columns
                else np.zeros((len(members), 0))
            )
            for n, i in enumerate(members):
                gradients[i] = table[n, [position[c] for c in wanted[n]]]
        return EstimatorGradientResult(
            gradients=gradients,
            metadata=[{"parameters": list(p)} for p in parameters],
            options=Options(**options),
        )


class SamplerGradient(ParamShiftSamplerGradient):
    """Analytic gradients of sampling probabilities, computed by gpuqnn's cache.

    Same arguments and results as qiskit-machine-learning's ``ParamShiftSamplerGradient``
    (``run(circuits, parameter_values, parameters=None)``; per circuit, per requested parameter,
    a dict from outcome to derivative). Outcomes are the integers of all the circuit's clbits
    (clbit 0 least significant), which for a circuit with one register, such as
    ``measure_all``'s ``meas``, are that register's values. The simulator serves exact samplers
    (the default, gpuqnn's exact :class:`Sampler`); for any other sampler this is
    qiskit-machine-learning's parameter shift on that sampler.

    Args:
        sampler: the sampler; None for gpuqnn's exact :class:`Sampler`.
        options: primitive options for the delegated path (ignored by the cache).
        pass_manager: used on the delegated path only; the simulator simulates the circuits as
            given.
    """

    def __init__(
        self,
        sampler: BaseSamplerV2 | None = None,
        options: Options | None = None,
        pass_manager: BasePassManager | None = None,
    ) -> None:
        super().__init__(Sampler() if sampler is None else sampler, options, pass_manager)
        self._own_cache: list[SimulatorCache] = []

    @property
    def engine_serves(self) -> bool:
        """Whether the simulator computes the gradients (the sampler is exact)."""
        return exact_sampler(self._sampler)

    def _run(
        self,
        circuits: Sequence[QuantumCircuit],
        parameter_values: Sequence[Sequence[float]] | np.ndarray,
        parameters: Sequence[Sequence[Parameter]],
        **options: Any,
    ) -> SamplerGradientResult:
        if not self.engine_serves:
            # qiskit-machine-learning annotates the sampler gradients' _run without the
            # np.ndarray its run passes on (its estimator gradients' _run has it)
            return super()._run(circuits, parameter_values, parameters, **options)  # type: ignore[arg-type]
        cache = _cache_of(self._sampler, self._own_cache)
        gradients: list[Any] = [None] * len(circuits)
        for key, members in group_by_key(cache.keys(circuits)).items():
            circuit = circuits[members[0]]
            if circuit.num_clbits == 0:
                raise ValueError(
                    f"circuit {members[0]} has no classical bits: add "
                    "measurements (e.g. circuit.measure_all()) to sample it"
                )
            rows = _rows(parameter_values, members)
            wanted = [_columns(circuits[i], parameters[i]) for i in members]
            columns = sorted({c for cols in wanted for c in cols})
            position = {c: j for j, c in enumerate(columns)}
            table, measured = joint_probabilities(cache, key, circuit, rows, columns)
            outcomes = np.arange(table.shape[1], dtype=np.int64)
            keys = np.zeros_like(outcomes)
            for j, clbit in enumerate(measured):
                keys |= ((outcomes >> j) & 1) << clbit
            for n, i in enumerate(members):
                per_param = []
                for c in wanted[n]:
                    column = table[n, :, position[c]]
                    nonzero = np.flatnonzero(column)
                    per_param.append(
                        dict(zip(keys[nonzero].tolist(), column[nonzero].tolist(), strict=True))
                    )
                gradients[i] = per_param
        return SamplerGradientResult(
            gradients=gradients,
            metadata=[{"parameters": list(p)} for p in parameters],
            options=Options(**options),
        )

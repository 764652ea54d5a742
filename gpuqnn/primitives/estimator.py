"""gpuqnn's Estimator: a ``BaseEstimatorV2`` on the batched statevector cache."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from qiskit.primitives import BaseEstimatorV2
from qiskit.primitives.containers import DataBin, EstimatorPubLike, PrimitiveResult, PubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.primitive_job import PrimitiveJob
from qiskit.providers import Options
from qiskit.quantum_info import SparsePauliOp

from .._aer_noise import noise_table
from .._options import check_precision, check_seed, document_options
from ._cache import SimulatorCache, SimulatorOwner
from ._evaluate import as_pauli_sum, check_finite, group_by_key, pauli_values


@document_options
class Estimator(SimulatorOwner, BaseEstimatorV2):
    """Exact (or seeded noisy) expectation values from gpuqnn's batched statevector cache.

    A drop-in for qiskit's ``StatevectorEstimator`` and qiskit-machine-learning's
    ``QMLEstimator``: the same pubs (circuits, observable arrays, parameter bindings, broadcast
    to the pub's shape), the same result containers.

    - ``default_precision=0`` (default) is **exact mode**, like ``QMLEstimator``: expectation
      values are exact and any ``precision`` passed to :meth:`run` or in a pub is ignored (so
      qiskit-machine-learning's EstimatorQNN, which always passes its ``default_precision``,
      gets exact values). gpuqnn's networks given this estimator use their own simulator directly.
    - ``default_precision > 0`` is **noisy mode**, like ``StatevectorEstimator``: each value
      gets Gaussian noise of standard deviation ``precision`` (the pub's, else :meth:`run`'s,
      else ``default_precision``), drawn from ``numpy.random.default_rng(seed)`` created per pub
      as ``StatevectorEstimator`` does, so equal seeds give equal values; ``stds`` reports the
      noise's standard deviation (``StatevectorEstimator`` reports 0).

    Each distinct circuit is compiled once per estimator (cached by its structure, LRU-bounded
    by ``cache_size``); all parameter sets of all pubs that share a circuit are evaluated in one
    simulator call, identical parameter sets once.

    Args:
        default_precision: 0 for exact values, > 0 for noisy values (see above).
        seed: seed (int or numpy Generator) of the noise; None for fresh entropy.
        {options: device, dtype, max_memory, threads, noise_model}
        cache_size: how many compiled circuits to keep.

    Raises:
        ValueError: an invalid option.
        TypeError: an invalid seed.
        RuntimeError: ``device="gpu"``/``"cuda"``/``"cuda:N"`` without a usable GPU, or under
            ``torchrun`` a ``LOCAL_RANK`` not below the number of visible devices.
    """

    def __init__(
        self,
        *,
        default_precision: float = 0.0,
        seed: np.random.Generator | int | None = None,
        device: str = "auto",
        dtype: str = "complex128",
        max_memory: int | str | None = None,
        cache_size: int = 32,
        threads: int | None = None,
        noise_model: Any = None,
    ) -> None:
        self._default_precision = check_precision(default_precision, "default_precision")
        check_seed(seed)
        self._seed = seed
        self._cache = SimulatorCache(
            device, dtype, max_memory, cache_size, threads, noise_table(noise_model)
        )
        self._noise_model = noise_model

    @property
    def default_precision(self) -> float:
        """The default precision; 0 means exact mode."""
        return self._default_precision

    @property
    def exact(self) -> bool:
        """Whether this estimator returns exact expectation values (``default_precision == 0``)."""
        return self._default_precision == 0

    @property
    def noise_model(self) -> Any:
        """The ``qiskit_aer.noise.NoiseModel`` simulated (exactly, over density matrices), or
        None."""
        return self._noise_model

    @property
    def options(self) -> Options:
        """The estimator's options (as qiskit ``Options``, for gradient classes that read them)."""
        return Options(default_precision=self._default_precision, seed=self._seed)

    def __repr__(self) -> str:
        mode = "exact" if self.exact else f"default_precision={self._default_precision}"
        return f"Estimator({mode}, device='{self.device}', dtype='{self.dtype}')"

    def run(
        self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None
    ) -> PrimitiveJob[PrimitiveResult[PubResult]]:
        """Estimate expectation values of the pubs.

        Args:
            pubs: estimator pubs ``(circuit, observables[, parameter_values[, precision]])``.
            precision: noise level for pubs without their own (noisy mode only; ignored in
                exact mode).

        Returns:
            A job whose result holds one ``PubResult`` per pub with ``data.evs`` and
            ``data.stds`` (float64 arrays of the pub's shape).

        Raises:
            ValueError: an invalid precision, pub or parameter value (NaN/inf).
        """
        if precision is not None:
            precision = check_precision(precision, "precision")
        if self.exact:
            precision = 0.0
        elif precision is None:
            precision = self._default_precision
        coerced = [EstimatorPub.coerce(pub, precision) for pub in pubs]
        values = [pub.parameter_values.as_array(pub.circuit.parameters) for pub in coerced]
        for i, array in enumerate(values):
            check_finite(array, f"the parameter values of pub {i}")
        job: PrimitiveJob[PrimitiveResult[PubResult]] = PrimitiveJob(self._run, coerced, values)
        job._submit()
        return job

    def _run(
        self, pubs: list[EstimatorPub], values: list[np.ndarray]
    ) -> PrimitiveResult[PubResult]:
        results = []
        for pub, evs in zip(pubs, self._expectation_values(pubs, values), strict=True):
            precision = 0.0 if self.exact else float(pub.precision)
            stds = np.zeros_like(evs)
            if precision > 0:
                rng = np.random.default_rng(self._seed)
                evs = np.asarray(rng.normal(evs, precision), dtype=np.float64).reshape(evs.shape)
                stds = np.full_like(evs, precision)
            results.append(
                PubResult(
                    DataBin(evs=evs, stds=stds, shape=evs.shape),
                    metadata={
                        "target_precision": precision,
                        "exact": precision == 0,
                        "circuit_metadata": pub.circuit.metadata,
                    },
                )
            )
        return PrimitiveResult(results, metadata={"version": 2})

    def _expectation_values(
        self, pubs: list[EstimatorPub], values: list[np.ndarray]
    ) -> list[np.ndarray]:
        """Exact expectation values of each pub, shape ``pub.shape``, float64.

        ``values[i]`` is pub i's (*parameter shape, P) float64 parameter values.
        """
        cache = self._cache
        keys = cache.keys([pub.circuit for pub in pubs])
        out = [np.zeros(pub.shape) for pub in pubs]
        for key, members in group_by_key(keys).items():
            circuit = pubs[members[0]].circuit
            rows, obs_ids, slots = [], [], []
            observables: list[SparsePauliOp] = []
            index: dict[tuple[tuple[str, float], ...], int] = {}
            offset = 0
            for i in members:
                pub = pubs[i]
                param_shape = pub.parameter_values.shape
                flat = values[i].reshape(int(np.prod(param_shape)), values[i].shape[-1])
                ids = np.empty(pub.observables.shape, dtype=np.int64)
                for pos in np.ndindex(pub.observables.shape):
                    element = pub.observables[pos]
                    raw = tuple(sorted(element.items()))
                    if raw not in index:
                        index[raw] = len(observables)
                        observables.append(as_pauli_sum(element))
                    ids[pos] = index[raw]
                row_ids = np.arange(flat.shape[0]).reshape(param_shape)
                row_b, ids_b = np.broadcast_arrays(row_ids, ids)
                rows.append(flat)
                obs_ids.append(ids_b.reshape(-1))
                slots.append((i, offset + row_b.reshape(-1)))
                offset += flat.shape[0]
            all_rows = np.concatenate(rows)
            row_index = np.concatenate([s for _, s in slots])
            evs = pauli_values(
                cache, key, circuit, all_rows[row_index], np.concatenate(obs_ids), observables
            )
            start = 0
            for i, s in slots:
                out[i] = evs[start : start + s.size].reshape(pubs[i].shape)
                start += s.size
        return out

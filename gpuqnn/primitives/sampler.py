"""gpuqnn's Sampler: a ``BaseSamplerV2`` on the batched statevector cache."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.primitives import BaseSamplerV2
from qiskit.primitives.containers import DataBin, PrimitiveResult, SamplerPubLike, SamplerPubResult
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.primitives.primitive_job import PrimitiveJob
from qiskit.providers import Options

from .._aer_noise import noise_table
from .._options import check_positive_int, check_seed, document_options
from ._cache import SimulatorCache, SimulatorOwner
from ._containers import (
    ExactProbabilities,
    ExactSamplerPubResult,
    RegisterMap,
    bit_array,
    sample_outcomes,
)
from ._evaluate import check_finite, group_by_key, joint_probabilities


def register_sources(circuit: QuantumCircuit, measured: list[int]) -> dict[str, list[int]]:
    """For each classical register, the joint outcome bit each of its bits reads (-1: none).

    Args:
        circuit: the circuit.
        measured: the measured clbit indices; bit j of a joint outcome is ``measured[j]``.
    """
    position = {clbit: j for j, clbit in enumerate(measured)}
    return {
        creg.name: [position.get(circuit.find_bit(bit).index, -1) for bit in creg]
        for creg in circuit.cregs
    }


@document_options
class Sampler(SimulatorOwner, BaseSamplerV2):
    """Exact probabilities (or seeded shots) from gpuqnn's batched statevector cache.

    A drop-in for qiskit-machine-learning's ``QMLSampler`` and qiskit's ``StatevectorSampler``:
    the same pubs (circuits with final measurements, parameter bindings), one data field per
    classical register in each pub result.

    - ``shots=None`` (default) is **exact mode**, like ``QMLSampler``: each register's field is
      an :class:`ExactProbabilities` (``get_counts``/``get_int_counts`` give dyadic counts whose
      normalised values are the exact probabilities to about 1e-11, ``get_probabilities`` and the
      dense ``probabilities`` array give them directly); shots passed to :meth:`run` or in a pub
      are ignored. gpuqnn's networks given this sampler use their own simulator directly, and
      qiskit-machine-learning's SamplerQNN (and so VQC) reads exact probabilities from it.
    - ``shots=int`` is **shot mode**, like ``StatevectorSampler``: each register's field is a
      ``BitArray`` of that many shots (or :meth:`run`'s, or the pub's), sampled from the exact
      distribution with ``numpy.random.default_rng(seed)`` created per pub, so equal seeds give
      equal samples; the elements of a pub get independent samples.

    Each distinct circuit is compiled once per sampler (cached by its structure, LRU-bounded by
    ``cache_size``); all parameter sets of all pubs that share a circuit are evaluated in one
    simulator call, identical parameter sets once.

    Args:
        shots: None for exact probabilities; a positive int for that many shots by default.
        seed: seed (int or numpy Generator) of the shots; None for fresh entropy.
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
        shots: int | None = None,
        seed: np.random.Generator | int | None = None,
        device: str = "auto",
        dtype: str = "complex128",
        max_memory: int | str | None = None,
        cache_size: int = 32,
        threads: int | None = None,
        noise_model: Any = None,
    ) -> None:
        self._shots = None if shots is None else check_positive_int(shots, "shots")
        check_seed(seed)
        self._seed = seed
        self._cache = SimulatorCache(
            device, dtype, max_memory, cache_size, threads, noise_table(noise_model)
        )
        self._noise_model = noise_model

    @property
    def default_shots(self) -> int | None:
        """Shots per pub by default; None in exact mode."""
        return self._shots

    @property
    def exact(self) -> bool:
        """Whether this sampler returns exact probabilities (``shots=None``)."""
        return self._shots is None

    @property
    def noise_model(self) -> Any:
        """The ``qiskit_aer.noise.NoiseModel`` simulated (exactly, over density matrices), or
        None."""
        return self._noise_model

    @property
    def options(self) -> Options:
        """The sampler's options (as qiskit ``Options``, for gradient classes that read them)."""
        return Options(default_shots=self._shots, seed=self._seed)

    def __repr__(self) -> str:
        mode = "exact" if self.exact else f"shots={self._shots}"
        return f"Sampler({mode}, device='{self.device}', dtype='{self.dtype}')"

    def run(
        self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None
    ) -> PrimitiveJob[PrimitiveResult[SamplerPubResult]]:
        """Sample (or give the exact distributions of) the pubs' classical registers.

        Args:
            pubs: sampler pubs ``(circuit[, parameter_values[, shots]])``.
            shots: shots for pubs without their own (shot mode only; ignored in exact mode).

        Returns:
            A job whose result holds one pub result per pub, with one field per classical
            register: an :class:`ExactProbabilities` (exact mode) or a ``BitArray`` (shots).

        Raises:
            ValueError: invalid shots, pubs or parameter values (NaN/inf).
        """
        if shots is not None:
            shots = check_positive_int(shots, "shots")
        if self.exact:
            shots = 1  # pubs need a shot count to validate; exact mode does not use it
        elif shots is None:
            shots = self._shots
        coerced = [SamplerPub.coerce(pub, shots) for pub in pubs]
        values = [pub.parameter_values.as_array(pub.circuit.parameters) for pub in coerced]
        for i, array in enumerate(values):
            check_finite(array, f"the parameter values of pub {i}")
        if any(len(pub.circuit.cregs) == 0 for pub in coerced):
            warnings.warn(
                "One of your circuits has no output classical registers and so the result "
                "will be empty. Did you mean to add measurement instructions?",
                UserWarning,
                stacklevel=2,
            )
        job: PrimitiveJob[PrimitiveResult[SamplerPubResult]] = PrimitiveJob(
            self._run, coerced, values
        )
        job._submit()
        return job

    def _run(
        self, pubs: list[SamplerPub], values: list[np.ndarray]
    ) -> PrimitiveResult[SamplerPubResult]:
        results = []
        registers: dict[
            tuple[tuple[int, ...], int], RegisterMap
        ] = {}  # shared by the pubs of one circuit
        joints = self._joint_probabilities(pubs, values)
        layouts: dict[int, dict[str, list[int]]] = {}
        for pub, (joint, measured) in zip(pubs, joints, strict=True):
            sources = layouts.get(id(pub.circuit))
            if sources is None:
                sources = layouts[id(pub.circuit)] = register_sources(pub.circuit, measured)
            if self.exact:
                fields: dict[str, Any] = {}
                for name, bits in sources.items():
                    key = (tuple(bits), joint.shape[-1])
                    if key not in registers:
                        registers[key] = RegisterMap(bits, joint.shape[-1])
                    fields[name] = ExactProbabilities(joint, registers[key])
                results.append(
                    ExactSamplerPubResult(
                        DataBin(**fields, shape=pub.shape),
                        metadata={
                            "shots": None,
                            "exact": True,
                            "circuit_metadata": pub.circuit.metadata,
                        },
                    )
                )
                continue
            rng = np.random.default_rng(self._seed)
            samples = sample_outcomes(joint.reshape(-1, joint.shape[-1]), pub.shots, rng)
            samples = samples.reshape(*pub.shape, pub.shots)
            fields = {name: bit_array(samples, bits) for name, bits in sources.items()}
            results.append(
                SamplerPubResult(
                    DataBin(**fields, shape=pub.shape),
                    metadata={"shots": pub.shots, "circuit_metadata": pub.circuit.metadata},
                )
            )
        return PrimitiveResult(results, metadata={"version": 2})

    def _joint_probabilities(
        self, pubs: list[SamplerPub], values: list[np.ndarray]
    ) -> list[tuple[np.ndarray, list[int]]]:
        """Per pub: (*pub.shape, 2**M) joint probabilities of its measured clbits, and them.

        ``values[i]`` is pub i's (*pub.shape, P) float64 parameter values.
        """
        cache = self._cache
        keys = cache.keys([pub.circuit for pub in pubs])
        out: list[Any] = [None] * len(pubs)
        for key, members in group_by_key(keys).items():
            flats = []
            for i in members:
                flats.append(values[i].reshape(int(np.prod(pubs[i].shape)), values[i].shape[-1]))
            table, measured = joint_probabilities(
                cache, key, pubs[members[0]].circuit, np.concatenate(flats)
            )
            start = 0
            for i, flat in zip(members, flats, strict=True):
                rows = table[start : start + flat.shape[0]]
                out[i] = (rows.reshape(*pubs[i].shape, rows.shape[-1]), measured)
                start += flat.shape[0]
        return out

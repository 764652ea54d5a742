"""A qiskit-aer ``NoiseModel`` read into the compiler's :class:`~._compile.noise.NoiseTable`.

qiskit-aer is optional (``pip install gpuqnn[noise]``): it is imported here only, and only when
a network or primitive is given a noise model. Every quantum error becomes its superoperator
(Kraus, unitary-mixture and reset errors alike: qiskit-aer's own ``to_quantumchannel``), every
single-qubit readout error a readout channel. What cannot be honoured is refused here, or by
the compiler when the circuit needs it, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._compile.noise import NoiseTable, readout_channel

_EXTRA = "pip install 'gpuqnn[noise]'"


def noise_table(noise_model: Any) -> NoiseTable | None:
    """``noise_model`` checked and converted (None stays None).

    Args:
        noise_model: a ``qiskit_aer.noise.NoiseModel``, or None.

    Raises:
        TypeError: it is something else.
        ImportError: qiskit-aer cannot be imported.
        ValueError: it holds what gpuqnn cannot simulate (non-local errors, a readout error
            on several qubits for all qubits).
    """
    if noise_model is None:
        return None
    module = type(noise_model).__module__
    if not module.startswith("qiskit_aer"):
        raise TypeError(
            "noise_model must be a qiskit_aer.noise.NoiseModel, got "
            f"{type(noise_model).__module__}.{type(noise_model).__name__}"
        )
    try:
        from qiskit_aer.noise import NoiseModel  # noqa: PLC0415 - optional dependency
    except ImportError as exc:  # pragma: no cover - a NoiseModel implies qiskit-aer
        raise ImportError(f"noise_model needs qiskit-aer ({_EXTRA})") from exc
    if not isinstance(noise_model, NoiseModel):
        raise TypeError(
            f"noise_model must be a qiskit_aer.noise.NoiseModel, got {type(noise_model).__name__}"
        )
    nonlocal_errors = getattr(noise_model, "_nonlocal_quantum_errors", None)
    if nonlocal_errors:
        raise ValueError(
            "noise_model has non-local errors (an error on other qubits than its "
            "instruction's), which gpuqnn does not simulate"
        )
    default = {name: _superop(error) for name, error in noise_model._default_quantum_errors.items()}
    local = {
        (name, tuple(int(q) for q in qubits)): _superop(error)
        for name, errors in noise_model._local_quantum_errors.items()
        for qubits, error in errors.items()
    }
    readout_default = None
    if noise_model._default_readout_error is not None:
        probabilities = np.asarray(noise_model._default_readout_error.probabilities, dtype=float)
        if probabilities.shape != (2, 2):
            raise ValueError(
                "noise_model has a readout error on several qubits for all qubits; gpuqnn "
                "simulates single-qubit readout errors"
            )
        readout_default = readout_channel(probabilities)
    readout_local = {}
    for qubits, error in noise_model._local_readout_errors.items():
        probabilities = np.asarray(error.probabilities, dtype=float)
        key = tuple(int(q) for q in qubits)
        readout_local[key] = readout_channel(probabilities) if len(key) == 1 else probabilities
    return NoiseTable(
        default=default,
        local=local,
        readout_default=readout_default,
        readout_local=readout_local,
        native=frozenset(_native_gates()),
        delay_noise=bool(getattr(noise_model, "_custom_noise_passes", None)),
    )


def _superop(error: Any) -> np.ndarray:
    """A ``QuantumError``'s (4**k, 4**k) superoperator (column-stacking, qiskit's ``SuperOp``)."""
    return np.asarray(error.to_quantumchannel().data, dtype=complex)


def _native_gates() -> list[str]:
    """The gates qiskit-aer's density-matrix simulator runs as they are (others need a
    decomposition, and their errors attach to what they are decomposed into)."""
    from qiskit_aer.backends.backend_utils import BASIS_GATES  # noqa: PLC0415

    return list(BASIS_GATES["density_matrix"])


@dataclass(frozen=True)
class AerEstimator:
    """What gpuqnn reads from a qiskit-aer ``EstimatorV2``.

    Attributes:
        exact: whether its values are exact (the density-matrix method, or the statevector
            method without noise, in double precision): then the engine can stand in for it.
        noise_model: its noise model, or None.
        reason: why it is not exact ("" if it is).
    """

    exact: bool
    noise_model: Any
    reason: str = ""


def aer_estimator(estimator: Any) -> AerEstimator | None:
    """``estimator`` read as a qiskit-aer ``EstimatorV2``; None for any other primitive (and
    qiskit-aer is not imported for it)."""
    cls = type(estimator)
    if not cls.__module__.startswith("qiskit_aer.primitives") or cls.__name__ != "EstimatorV2":
        return None
    options = getattr(estimator, "options", None)
    backend_options = dict(getattr(options, "backend_options", None) or {})
    noise_model = backend_options.pop("noise_model", None)
    method = backend_options.pop("method", "automatic")
    precision = backend_options.pop("precision", "double")
    backend_options.pop("max_parallel_threads", None)
    backend_options.pop("device", None)
    if precision != "double":
        return AerEstimator(False, noise_model, f"its precision is {precision!r}")
    if backend_options:
        return AerEstimator(False, noise_model, f"its backend options {sorted(backend_options)}")
    if method == "density_matrix" or (method in ("statevector", "automatic") and not noise_model):
        return AerEstimator(True, noise_model)
    return AerEstimator(
        False, noise_model, f"its method {method!r} with a noise model is not the density matrix"
    )

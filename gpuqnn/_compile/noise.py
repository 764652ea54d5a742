"""A noise model as the compiler uses it: which channel follows which instruction, as plain
arrays (no qiskit-aer here; :mod:`gpuqnn._aer_noise` converts a ``qiskit_aer`` ``NoiseModel``).

The meaning is qiskit-aer's: an error attached to an instruction name on specific qubits, or
else on all qubits, is applied after each such instruction on its qubits; an error on
``measure`` is applied before the (final) measurement, then the readout error of the measured
qubit. A readout error is kept as a channel too: it dephases the qubit and mixes its
populations by the assignment probabilities, which is what a final measurement then reports.

Superoperators use the column-stacking convention of qiskit's ``SuperOp``: for k qubits,
``vec(rho)[i + 2**k j] = rho[i, j]``, bit t of i and of j being the t-th qubit of the
instruction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Channel = tuple[np.ndarray, tuple[int, ...]]
"""A (4**k, 4**k) complex superoperator and the k circuit qubits it acts on."""


@dataclass(frozen=True)
class NoiseTable:
    """Channels per instruction, from a noise model.

    Attributes:
        default: instruction name -> the superoperator applied after it on whatever qubits it
            acts on (an error "on all qubits").
        local: (instruction name, qubits) -> the superoperator applied after it on those
            qubits, in that order; it takes precedence over ``default``.
        readout_default: the (4, 4) readout channel of every measured qubit, or None.
        readout_local: qubits -> their readout channel (takes precedence over the default).
        native: instruction names kept as they are; other gates are decomposed through their
            definitions, so that errors attach to the gates a noisy simulator would run.
        delay_noise: whether the model adds relaxation during ``delay`` instructions (which
            the compiler refuses).
    """

    default: dict[str, np.ndarray] = field(default_factory=dict)
    local: dict[tuple[str, tuple[int, ...]], np.ndarray] = field(default_factory=dict)
    readout_default: np.ndarray | None = None
    readout_local: dict[tuple[int, ...], np.ndarray] = field(default_factory=dict)
    native: frozenset[str] = frozenset()
    delay_noise: bool = False

    def after(self, name: str, qubits: tuple[int, ...]) -> list[Channel]:
        """The channels that follow instruction ``name`` on circuit ``qubits`` (at most one)."""
        superop = self.local.get((name, qubits))
        if superop is None:
            superop = self.default.get(name)
        if superop is None:
            return []
        if superop.shape[0] != 4 ** len(qubits):
            raise ValueError(
                f"the noise model's error on '{name}' acts on "
                f"{int(np.log2(superop.shape[0])) // 2} qubits, but the circuit applies "
                f"'{name}' to {len(qubits)} qubits {list(qubits)}"
            )
        return [(superop, qubits)]

    def measurement(self, qubit: int) -> list[Channel]:
        """The channels before a final measurement of circuit ``qubit``: the error on
        ``measure``, then its readout error."""
        channels = self.after("measure", (qubit,))
        readout = self.readout_local.get((qubit,), self.readout_default)
        if readout is not None:
            channels.append((readout, (qubit,)))
        return channels

    def check_readout(self, measured: set[int]) -> None:
        """Refuse readout errors on several qubits at once that a circuit measures: their
        outcomes are correlated, which per-qubit channels cannot express.

        Raises:
            ValueError: such an error is on qubits the circuit measures.
        """
        for qubits in self.readout_local:
            if len(qubits) > 1 and measured.intersection(qubits):
                raise ValueError(
                    f"the noise model has a correlated readout error on qubits {list(qubits)}, "
                    "which gpuqnn does not simulate; use single-qubit readout errors"
                )


def readout_channel(probabilities: np.ndarray) -> np.ndarray:
    """The (4, 4) channel of a single-qubit readout error: dephase, then move the population
    of ``|i>`` to ``|j>`` with probability ``probabilities[i, j]`` (qiskit-aer's
    ``ReadoutError`` rows: the true state; columns: the recorded outcome)."""
    superop = np.zeros((4, 4), dtype=complex)
    for i in range(2):
        for j in range(2):
            superop[j + 2 * j, i + 2 * i] = probabilities[i, j]
    return superop

"""Result containers of the Sampler: exact register distributions and seeded shot samples.

:class:`ExactProbabilities` is the exact-mode counterpart of qiskit's ``BitArray``: it answers
``get_counts``/``get_int_counts`` (with dyadic counts, as qiskit-machine-learning's exact
``QMLSampler`` does, so that code which normalises counts gets the exact probabilities) and
``get_probabilities``, and exposes the dense probabilities as an array. All registers of a pub
share one table of joint outcome probabilities of the measured clbits; a register reads some of
its bits. Shapes: M measured clbits (2**M joint outcomes), K distinct values of one register.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from qiskit.primitives.containers import BitArray, SamplerPubResult

_DYADIC_TOL = 1e-12
_DYADIC_MAX_K = 40
_DENSE_LIMIT_BITS = 24


class RegisterMap:
    """How one register reads the joint outcomes.

    Args:
        sources: (num_bits,) for each register bit i (least significant first), the joint
            outcome bit it reads, or -1 for a bit that is never measured (always 0).
        num_outcomes: 2**M joint outcomes.
    """

    def __init__(self, sources: Sequence[int], num_outcomes: int) -> None:
        self.sources = tuple(int(s) for s in sources)
        self.num_bits = len(self.sources)
        outcomes = np.arange(num_outcomes, dtype=np.int64)
        wide = self.num_bits > 62
        values: Any = np.zeros(num_outcomes, dtype=object if wide else np.int64)
        for i, source in enumerate(self.sources):
            if source >= 0:
                bit = (outcomes >> source) & 1
                values = values + (bit.astype(object) << i if wide else bit << i)
        self.values: np.ndarray
        self.inverse: np.ndarray
        self.values, self.inverse = (
            np.unique(values, return_inverse=True) if num_outcomes else (values, values)
        )
        """(K,) distinct register values; (2**M,) index of each outcome's value."""
        self.identity = bool(np.array_equal(self.inverse, outcomes))
        self._labels: list[str] | None = None

    @property
    def labels(self) -> list[str]:
        """(K,) bit strings of the distinct values (most significant bit first)."""
        if self._labels is None:
            self._labels = [format(int(v), f"0{self.num_bits}b") for v in self.values]
        return self._labels

    def marginal(self, joint: np.ndarray) -> np.ndarray:
        """(..., 2**M) joint probabilities -> (..., K) probabilities of the register values."""
        if self.identity:
            return joint
        flat = joint.reshape(-1, joint.shape[-1])
        out = np.zeros((flat.shape[0], len(self.values)))
        # numpy's stubs reject a tuple index in ufunc.at, which numpy accepts
        np.add.at(out, (slice(None), self.inverse), flat)  # type: ignore[arg-type]
        return out.reshape(*joint.shape[:-1], len(self.values))


def dyadic_counts(probabilities: np.ndarray, shots: int | None) -> np.ndarray:
    """Integer counts of one distribution, like qiskit-machine-learning's exact sampler.

    With ``shots``, ``round(p * shots)``; without, the counts of the smallest power of two
    2**k (k <= 40) at which every probability is within 1e-12 of a multiple of 2**-k, with the
    rounding remainder given to the most likely outcome, so that counts / 2**k are the exact
    probabilities to about 1e-11 (1e-12 per outcome, the remainder on the most likely one).

    Args:
        probabilities: (K,) float64.
        shots: number of shots, or None.

    Returns:
        (K,) int64 counts.
    """
    p: np.ndarray = np.clip(probabilities, 0.0, None)
    if shots is not None:
        rounded: np.ndarray = np.rint(p * shots).astype(np.int64)
        return rounded
    # the smallest k at which every p fits; every p fits at k = 40 (2**-41 < 1e-12)
    scale = 2.0 ** np.arange(_DYADIC_MAX_K + 1)[:, None]
    fits = np.all(np.abs(p - np.rint(p * scale) / scale) <= _DYADIC_TOL, axis=1)
    low = int(np.argmax(fits))
    total = 1 << low
    counts = np.rint(p * float(total)).astype(np.int64)
    if counts.size and counts.sum() != total:
        counts[int(np.argmax(p))] += total - int(counts.sum())
    return counts


class ExactProbabilities:
    """Exact outcome probabilities of one classical register, for every element of a pub.

    The exact-mode result of :class:`gpuqnn.primitives.Sampler`, in place of a ``BitArray``.

    Args:
        joint: (*shape, 2**M) float64 probabilities of the joint outcomes of the measured clbits.
        register: how this register reads the joint outcomes.
    """

    def __init__(self, joint: np.ndarray, register: RegisterMap) -> None:
        self._joint = joint
        self._register = register

    @classmethod
    def from_sources(cls, joint: np.ndarray, sources: Sequence[int]) -> ExactProbabilities:
        """A register whose bit i reads joint outcome bit ``sources[i]`` (-1: always 0)."""
        return cls(joint, RegisterMap(sources, joint.shape[-1]))

    @property
    def shape(self) -> tuple[int, ...]:
        """The pub's shape."""
        return tuple(self._joint.shape[:-1])

    @property
    def ndim(self) -> int:
        """Number of axes of :attr:`shape`."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape))

    @property
    def num_bits(self) -> int:
        """Bits of the register."""
        return self._register.num_bits

    @property
    def num_shots(self) -> None:
        """None: the distribution is exact, not sampled."""
        return None

    @property
    def probabilities(self) -> np.ndarray:
        """(*shape, 2**num_bits) float64 probability of each register value.

        Raises:
            ValueError: the register has more than 24 bits (use :meth:`get_probabilities`).
        """
        if self.num_bits > _DENSE_LIMIT_BITS:
            raise ValueError(
                f"a dense array of a {self.num_bits}-bit register would hold "
                f"2**{self.num_bits} values; use get_probabilities()"
            )
        out = np.zeros((*self.shape, 2**self.num_bits))
        out[..., self._register.values.astype(np.int64)] = self._register.marginal(self._joint)
        return out

    def __getitem__(self, index: Any) -> ExactProbabilities:
        index = index if isinstance(index, tuple) else (index,)
        if Ellipsis in index or len(index) > self.ndim:
            raise IndexError(f"index {index!r} does not fit the shape {self.shape}")
        return ExactProbabilities(self._joint[index], self._register)

    def __repr__(self) -> str:
        return f"ExactProbabilities(shape={self.shape}, num_bits={self.num_bits})"

    def _locations(self, loc: int | tuple[int, ...] | None) -> np.ndarray:
        """(L, K) register probabilities at ``loc`` (one row) or at every location."""
        joint = self._joint if loc is None else self._joint[loc]
        if loc is not None and joint.ndim != 1:
            raise IndexError(f"loc {loc!r} does not select one element of shape {self.shape}")
        return self._register.marginal(joint).reshape(-1, len(self._register.values))

    def get_probabilities(self, loc: int | tuple[int, ...] | None = None) -> Any:
        """Probability of each outcome with nonzero probability, keyed by bit string.

        Args:
            loc: which element; None for a pub of shape () (else an object array of dicts).

        Returns:
            ``dict[str, float]``, or for ``loc=None`` and a non-scalar shape an object array
            of such dicts.
        """
        labels = self._register.labels
        rows = self._locations(loc)
        dicts = [{labels[k]: float(row[k]) for k in np.flatnonzero(row)} for row in rows]
        if loc is not None or self.shape == ():
            return dicts[0]
        out = np.empty(self.shape, dtype=object)
        for i, pos in enumerate(np.ndindex(self.shape)):
            out[pos] = dicts[i]
        return out

    def _counts(self, loc: int | tuple[int, ...] | None, shots: int | None) -> dict[int, int]:
        total: dict[int, int] = {}
        for row in self._locations(loc):
            counts = dyadic_counts(row, shots)
            for k in np.flatnonzero(counts):
                total[int(k)] = total.get(int(k), 0) + int(counts[k])
        return total

    def get_counts(
        self, loc: int | tuple[int, ...] | None = None, shots: int | None = None
    ) -> dict[str, int]:
        """Counts keyed by bit string: of one element, or summed over all (``loc=None``).

        Without ``shots`` the counts are dyadic (see :func:`dyadic_counts`), so counts divided
        by their total are the exact probabilities to about 1e-11; with ``shots``,
        ``round(p * shots)``.
        """
        labels = self._register.labels
        return {labels[k]: v for k, v in self._counts(loc, shots).items()}

    def get_int_counts(
        self, loc: int | tuple[int, ...] | None = None, shots: int | None = None
    ) -> dict[int, int]:
        """Like :meth:`get_counts`, keyed by the outcome's integer value."""
        values = self._register.values
        return {int(values[k]): v for k, v in self._counts(loc, shots).items()}

    @staticmethod
    def concatenate_bits(items: Sequence[ExactProbabilities]) -> ExactProbabilities:
        """Join registers of the same pub along the bits (the first one least significant,
        as ``BitArray.concatenate_bits``).

        Raises:
            ValueError: no items, or items of different pubs.
        """
        if not items:
            raise ValueError("no registers to concatenate")
        joint = items[0]._joint
        if any(item._joint is not joint for item in items):
            raise ValueError("only registers of the same pub result can be concatenated")
        sources = [s for item in items for s in item._register.sources]
        return ExactProbabilities.from_sources(joint, sources)


class ExactSamplerPubResult(SamplerPubResult):
    """A ``SamplerPubResult`` whose ``join_data`` also joins :class:`ExactProbabilities`."""

    def join_data(self, names: Iterable[str] | None = None) -> Any:
        """Join the data of several registers (all of them by default) along the bits.

        Raises:
            ValueError: no registers, or a name that does not exist.
        """
        names = list(self.data) if names is None else list(names)
        if not names:
            raise ValueError("No entry exists in the data bin.")
        for name in names:
            if name not in self.data:
                raise ValueError(f"Name '{name}' does not exist.")
        return ExactProbabilities.concatenate_bits([self.data[name] for name in names])


def sample_outcomes(probabilities: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``shots`` outcomes per row.

    Args:
        probabilities: (R, 2**M) float64 distributions.
        shots: samples per row.
        rng: the random generator.

    Returns:
        (R, shots) int64 outcome indices, in random order.
    """
    rows, outcomes = probabilities.shape
    p: np.ndarray = np.clip(probabilities, 0.0, None)
    p /= p.sum(axis=1, keepdims=True)
    counts = rng.multinomial(shots, p)
    samples = np.repeat(np.tile(np.arange(outcomes, dtype=np.int64), rows), counts.reshape(-1))
    return rng.permuted(samples.reshape(rows, shots), axis=1)


def bit_array(samples: np.ndarray, sources: Sequence[int]) -> BitArray:
    """A ``BitArray`` of one register from sampled joint outcomes.

    Args:
        samples: (*shape, shots) int64 joint outcome indices.
        sources: for each register bit (least significant first), the outcome bit it reads,
            or -1 for a bit that is always 0.

    Returns:
        The register's bit array, shape ``shape``, ``num_bits = len(sources)``.
    """
    num_bits = len(sources)
    pad = -num_bits % 8
    bits = np.zeros((*samples.shape, pad + num_bits), dtype=np.uint8)
    for i, source in enumerate(sources):
        if source >= 0:
            bits[..., pad + num_bits - 1 - i] = (samples >> source) & 1
    return BitArray(np.packbits(bits, axis=-1, bitorder="big"), num_bits)

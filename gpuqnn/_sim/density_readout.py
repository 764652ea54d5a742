"""Readouts of density matrices kept as vectors (:mod:`gpuqnn._compile.density`):
``v[i + D j] = rho[i, j]`` over 2n qubits, D = 2**n.

- :class:`DensityPauliReadout`: ``Tr(O rho)`` of Pauli-sum observables. A Pauli term
  ``c X^x Z^z`` contributes ``Re sum_b c (-1)**popcount(b & z) rho[b, b ^ x]``: one gather of D
  of the vector's D**2 entries per x mask, then a (D, O) weight matrix, as the pure readout does
  with ``conj(psi[b ^ x]) psi[b]``.
- :class:`DensityProbabilityReadout`: ``diag(rho)`` mapped through the pure readout's
  ``interpret`` index table.

Both are linear in the vector, ``out_o = Re <w_o|v>``, so the adjoint state of output o is the
constant ``w_o / 2`` (``d out_o = 2 Re <w_o / 2| dv>``), whatever the state.

Shapes: R rows, O outputs, D = 2**n, D2 = D**2 entries of a row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import Backend
from .protocols import Readout
from .readout import PauliReadout, ProbabilityReadout


class _LinearReadout:
    """``out[r, o] = Re sum_b W[b, o] v[r, index[b]]``, one gather per group of (index, W)."""

    def __init__(
        self, groups: list[tuple[np.ndarray, np.ndarray]], num_outputs: int, backend: Backend
    ) -> None:
        self.backend = backend
        self.num_outputs = num_outputs
        real = backend.real_dtype
        self._groups = [
            (
                backend.asarray(index),
                backend.asarray(weights.real, dtype=real),
                backend.asarray(weights.imag, dtype=real),
                backend.asarray(0.5 * np.conj(weights).T, dtype=backend.dtype),
                bool(np.any(weights.imag)),
            )
            for index, weights in groups
        ]

    def __call__(self, psi: Any) -> Any:
        """(R, D2) complex vectors on the backend -> (R, O) real outputs on the backend."""
        xp = self.backend.xp
        out = xp.zeros((psi.shape[0], self.num_outputs), dtype=self.backend.real_dtype)
        for index, w_real, w_imag, _half, imaginary in self._groups:
            gathered = psi[:, index]
            out += xp.ascontiguousarray(gathered.real) @ w_real
            if imaginary:
                out -= xp.ascontiguousarray(gathered.imag) @ w_imag
        return out

    def adjoint_states(self, psi: Any) -> Any:
        """(R, D2) vectors -> (R, O, D2) adjoint states ``w_o / 2`` (the same for every row)."""
        xp = self.backend.xp
        lam = xp.zeros((psi.shape[0], self.num_outputs, psi.shape[1]), dtype=psi.dtype)
        for index, _w_real, _w_imag, half, _imaginary in self._groups:
            lam[:, :, index] += half[None]
        return lam

    def cotangent_state(self, psi: Any, cotangent: Any) -> Any:
        """(R, D2) vectors and (R, O) real ``g`` -> (R, D2) ``sum_o g_o w_o / 2``."""
        xp = self.backend.xp
        g = cotangent.astype(self.backend.dtype)
        lam = xp.zeros_like(psi)
        for index, _w_real, _w_imag, half, _imaginary in self._groups:
            lam[:, index] += g @ half
        return lam


class DensityPauliReadout(_LinearReadout):
    """Expectation values ``Tr(O rho)`` of a :class:`~.readout.PauliReadout`'s observables.

    Args:
        pure: the readout of the same observables on the n-qubit states.
        num_qubits: n.
        backend: where the tables live.
    """

    def __init__(self, pure: PauliReadout, num_qubits: int, backend: Backend) -> None:
        dim = 2**num_qubits
        basis = np.arange(dim, dtype=np.int64)
        weights: dict[int, np.ndarray] = {}
        terms = pure.terms
        for xmask, zmask, coeff, output in zip(
            terms.xmask, terms.zmask, terms.coeff, terms.output, strict=True
        ):
            signs = 1 - 2 * (np.bitwise_count(basis & int(zmask)).astype(np.int64) & 1)
            column = weights.setdefault(int(xmask), np.zeros((dim, pure.num_outputs), complex))
            column[:, int(output)] += coeff * signs
        groups = [(basis + dim * (basis ^ x), w) for x, w in weights.items()]
        super().__init__(groups, pure.num_outputs, backend)


class DensityProbabilityReadout(_LinearReadout):
    """Interpreted probabilities ``diag(rho)`` of a :class:`~.readout.ProbabilityReadout`.

    Args:
        pure: the readout with the same interpretation on the n-qubit states.
        num_qubits: n.
        backend: where the tables live.
    """

    def __init__(self, pure: ProbabilityReadout, num_qubits: int, backend: Backend) -> None:
        dim = 2**num_qubits
        basis = np.arange(dim, dtype=np.int64)
        kept = np.flatnonzero(pure.index >= 0)
        weights = np.zeros((kept.size, pure.num_outputs))
        weights[np.arange(kept.size), pure.index[kept]] = 1.0
        super().__init__([(basis[kept] * (dim + 1), weights)], pure.num_outputs, backend)


def density_readout(pure: Readout, num_qubits: int, backend: Backend) -> Readout:
    """The readout of density vectors that gives what ``pure`` gives of n-qubit states.

    Raises:
        TypeError: ``pure`` is neither a Pauli nor a probability readout.
    """
    if isinstance(pure, PauliReadout):
        return DensityPauliReadout(pure, num_qubits, backend)
    if isinstance(pure, ProbabilityReadout):
        return DensityProbabilityReadout(pure, num_qubits, backend)
    raise TypeError(f"no density-matrix readout for {type(pure).__name__}")

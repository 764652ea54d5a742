"""``exp(i phi)`` for float64 NumPy arrays, about four times faster than ``cos`` + ``sin``.

NumPy evaluates float64 ``cos``/``sin`` with scalar libm calls (5-13 ns per element measured on
our machines; float32 has SIMD loops and is ~20x faster). Phase blocks need ``exp(i phi)`` for
every amplitude of every row, so this module computes it from a table of the N-th roots of unity
and a short polynomial: ``phi = k * 2 pi / N + r`` with ``|r| <= pi / N``, ``exp(i phi) =
T[k mod N] * exp(i r)``, where ``exp(i r)`` is its Taylor series to r**5 (the next terms are below
1e-17 for N = 1024). ``k * 2 pi / N`` is subtracted in two parts (Cody-Waite) so that ``r``
keeps full precision. Every step is a plain vectorised NumPy pass. The error is about 1e-16,
for any ``phi`` (measured against libm up to 1.6e6, where this path ends).

The two-part reduction is exact only while ``k`` fits in 28 bits (``|phi|`` up to about 1.6e6);
beyond that ``r`` would no longer be small and the polynomial would blow up (probabilities
summing to 264 at 1e15 rad). Angles that large are rare (unscaled features, timestamps), so they
take libm's ``cos``/``sin``, whose argument reduction is exact for any finite float64: the result
is ``exp(i phi)`` of the float64 ``phi`` given, as qiskit's own ``Statevector`` computes it.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np

_N = 1024
_STEP = 2 * np.pi / _N
# 2 pi / N from 60 digits of pi, in two parts: HI has 24 significant bits, so k * HI is exact
# for |k| < 2**29; LO is the rest, rounded once (an error of about 4e-26, 1e-17 rad at
# k = 2**28). Computed from float64's 2 pi / N instead, LO would be off by about 4e-19, which
# k = 2.6e8 turns into 1e-10 rad.
_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494")
with localcontext() as _context:
    _context.prec = 60
    _EXACT_STEP = 2 * _PI / _N
    _STEP_HI = float(np.float32(float(_EXACT_STEP)))
    _STEP_LO = float(_EXACT_STEP - Decimal(_STEP_HI))
_K_MAX = float(2**28)  # |k| up to this: k * _STEP_HI is exact and k fits an int64


class ExpI:
    """Evaluates ``exp(i phi)`` into a complex128 array, reusing its own scratch buffers."""

    def __init__(self) -> None:
        self._table = np.exp(2j * np.pi * np.arange(_N) / _N)

    def __call__(self, phi: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out = exp(1j * phi)``.

        Args:
            phi: float64 array of angles; overwritten (used as scratch).
            out: complex128 array of the same shape, written.

        Returns:
            ``out``.
        """
        with np.errstate(over="ignore"):  # beyond 1e306: inf, taken by the exact path below
            k = np.multiply(phi, 1.0 / _STEP)
        np.rint(k, out=k)
        huge = None
        if k.size and not (-_K_MAX <= k.min() and k.max() <= _K_MAX):  # rare: one reduction each
            huge = ~(np.abs(k) <= _K_MAX)  # NaN included
            exact = phi[huge]
            k[huge] = 0.0
            phi[huge] = 0.0
        index = k.astype(np.int64)
        index &= _N - 1
        np.take(self._table, index, out=out, mode="clip")
        part = np.multiply(k, _STEP_HI)
        phi -= part  # r = phi - k * step, in two parts (the first one exact)
        np.multiply(k, _STEP_LO, out=part)
        phi -= part
        r2 = np.multiply(phi, phi, out=part)
        # cos r = 1 - r^2/2 + r^4/24, sin r = r (1 - r^2/6 + r^4/120)
        np.multiply(r2, 1.0 / 120.0, out=k)
        k -= 1.0 / 6.0
        k *= r2
        k += 1.0
        k *= phi  # sin r
        np.multiply(r2, 1.0 / 24.0, out=phi)
        phi -= 0.5
        phi *= r2
        phi += 1.0  # cos r
        rotation = np.empty(out.shape, dtype=np.complex128)
        rotation.real = phi
        rotation.imag = k
        out *= rotation
        if huge is not None:
            out[huge] = np.cos(exact) + 1j * np.sin(exact)
        return out

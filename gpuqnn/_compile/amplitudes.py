"""qiskit-machine-learning's amplitude encoding (``raw_feature_vector``'s
``ParameterizedInitialize``) with unbound amplitudes, as a tree of controlled RY rotations.

``ParameterizedInitialize(a)`` on n qubits prepares ``a / |a|`` from |0...0> (qiskit-machine-
learning normalises, then ``initialize``s). For real amplitudes that state is prepared exactly by
a binary tree of rotations (Mottonen et al.), root first: for the qubit q = n-1, ..., 0 and every
value c of the qubits above it, an RY on q controlled by the qubits q+1..n-1 being c, with angle

- ``2 atan2(|a_right|, |a_left|)`` for q >= 1, the norms of the two halves of the block of
  amplitudes whose higher bits are c (the halves: bit q = 0 or 1);
- ``2 atan2(a_{2c+1}, a_{2c})`` for q = 0, signs included.

The angles are scale invariant, so the normalisation comes for free; they are the outputs of
one :class:`AmplitudeTree` slot function of the amplitude expressions, which the angle table
evaluates once per call and differentiates by the chain rule (exact gradients by the inputs).

Where a block of two or more amplitudes is all zero, the tree's angles are singular: the state
is still exact, but its derivatives by those amplitudes are not in the span of the angles'
derivatives, so a gradient by the inputs there is refused with a ``ValueError`` naming
``input_data`` (never approximated). An all-zero amplitude vector has no normalised state and
is refused too.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from qiskit.circuit import ParameterExpression
from qiskit_machine_learning.circuit.library.raw_feature_vector import ParameterizedInitialize
from qiskit_machine_learning.exceptions import QiskitMachineLearningError

from .angles import FunctionOutput


def is_amplitude_encoding(operation: Any) -> bool:
    """Whether ``operation`` is a ``ParameterizedInitialize`` with unbound amplitudes (qiskit
    cannot define those; bound ones are inlined by their ``initialize`` definition)."""
    return isinstance(operation, ParameterizedInitialize) and any(
        isinstance(p, ParameterExpression) and p.parameters for p in operation.params
    )


class AmplitudeTree:
    """The rotation angles of the state preparation of ``a / |a|``, as a slot function.

    Args:
        amplitudes: the 2**n amplitude expressions (real-valued).
        where: the user's instruction, for errors.

    Raises:
        QiskitMachineLearningError: an amplitude is complex (only real amplitudes are encoded).

    Outputs are numbered by node: the level of qubit q holds 2**(n-1-q) nodes, levels from
    q = n-1 (the root) down, node c of level q at ``2**(n-1-q) - 1 + c``.
    """

    def __init__(self, amplitudes: tuple[Any, ...], where: str) -> None:
        import sympy  # noqa: PLC0415 - only needed at compile time

        for i, amplitude in enumerate(amplitudes):
            if isinstance(amplitude, ParameterExpression):
                sym = amplitude.sympify()
                sym = sym.xreplace({s: sympy.Symbol(s.name, real=True) for s in sym.free_symbols})
                imaginary = sympy.simplify(sympy.im(sym)) != 0
            else:
                imaginary = complex(amplitude).imag != 0
            if imaginary:
                raise QiskitMachineLearningError(
                    f"{where} has the complex amplitude {amplitude} (amplitude {i}): only real "
                    "amplitudes can be encoded with unbound parameters"
                )
        self.inner: tuple[ParameterExpression | float, ...] = tuple(
            a if isinstance(a, ParameterExpression) else float(complex(a).real) for a in amplitudes
        )
        self.num_qubits = len(amplitudes).bit_length() - 1
        self.num_outputs = len(amplitudes) - 1
        self.where = where

    def outputs(self) -> list[tuple[int, int, FunctionOutput]]:
        """(qubit q, control value c, slot angle) of every node, root first."""
        n = self.num_qubits
        return [
            (q, c, FunctionOutput(self, 2 ** (n - 1 - q) - 1 + c))
            for q in range(n - 1, -1, -1)
            for c in range(2 ** (n - 1 - q))
        ]

    def _halves(self, inner: Any, q: int, xp: ModuleType) -> tuple[Any, Any]:
        """(B, 2**(n-1-q)) left and right values (q = 0) or norms (q >= 1) of level q."""
        blocks = inner.reshape(inner.shape[0], -1, 2, 2**q)
        if q == 0:
            return blocks[:, :, 0, 0], blocks[:, :, 1, 0]
        norms = xp.sqrt((blocks * blocks).sum(axis=3))
        return norms[:, :, 0], norms[:, :, 1]

    def values(self, inner: Any, xp: ModuleType) -> Any:
        """(B, F) angles at (B, 2**n) amplitudes.

        Raises:
            ValueError: a row's amplitudes are all zero.
        """
        if bool(xp.any(xp.all(inner == 0, axis=1))):
            raise ValueError(
                f"input_data holds a row whose amplitudes for {self.where} are all zero: the "
                "normalised state a/|a| is undefined there"
            )
        levels = [self._halves(inner, q, xp) for q in range(self.num_qubits - 1, -1, -1)]
        return xp.concatenate([2 * xp.arctan2(right, left) for left, right in levels], axis=1)

    def chain(self, inner: Any, inner_jacobian: Any, xp: ModuleType) -> Any:
        """(B, F, J) derivatives of the angles by J parameters.

        Args:
            inner: (B, 2**n) amplitudes.
            inner_jacobian: (B or 1, 2**n, J) their derivatives.
            xp: the array module.

        Raises:
            ValueError: a block of two or more amplitudes is all zero in some row, where the
                angles are singular.
        """
        batch, dim = inner.shape
        columns = inner_jacobian.shape[2]
        parts = []
        for q in range(self.num_qubits - 1, -1, -1):
            left, right = self._halves(inner, q, xp)
            squared = left * left + right * right  # (B, nodes): the block's squared norm
            if q == 0:
                # d/d a_left = -2 a_right / N^2, d/d a_right = 2 a_left / N^2
                factor = xp.stack([-right, left], axis=2)[:, :, :, None]
                local = 2 * factor / squared[:, :, None, None]
            else:
                if bool(xp.any((left == 0) | (right == 0))):
                    raise ValueError(
                        f"input_data holds a row with a block of {2**q} amplitudes of {self.where} "
                        "that are all zero: its rotation angles are singular there, so the "
                        "gradient by those inputs is not available (the values are exact)"
                    )
                # d/d a_i = -2 R a_i / (L N^2) on the left half, 2 L a_i / (R N^2) on the right
                factor = xp.stack([-right / left, left / right], axis=2)[:, :, :, None]
                blocks = inner.reshape(batch, -1, 2, 2**q)
                local = 2 * factor * blocks / squared[:, :, None, None]
            weighted = local.reshape(batch, dim, 1) * inner_jacobian
            parts.append(weighted.reshape(batch, -1, 2 ** (q + 1), columns).sum(axis=2))
        return xp.concatenate(parts, axis=1)

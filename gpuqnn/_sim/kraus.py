"""A noise channel on pure states, one trajectory per row: the block of a ``CHANNEL`` op in a
trajectory program (:mod:`gpuqnn._compile.trajectory`).

The channel's Kraus operators ``K_k`` (from its superoperator) are applied to every row, their
weights ``p_k = ||K_k psi||**2`` summed in order, and each row keeps the branch its uniform
random number ``u`` (the op's slot: one per sample, drawn by the caller) falls in, renormalised:
``psi <- K_k psi / sqrt(p_k)``, so that the average over rows is the channel's action on the
density matrix. Every copy of a sample (the shifted rows of a parameter-shift pass) uses the
sample's ``u``: common random numbers. The block has no adjoint (a trajectory is not a linear
map of the state) and no derivative by its slot.

Shapes: M copies, P samples, E extra axes, D = 2**n amplitudes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np
from qiskit.quantum_info import Kraus, SuperOp

from .._compile import Op, OpKind
from .backend import Backend
from .buffers import Buffers
from .gates import apply_op, make_view

PASSES_PER_KRAUS = 3.0
"""Passes over a row per Kraus operator: its product, its weight and the selection."""


def kraus_operators(superop: np.ndarray) -> list[np.ndarray]:
    """The Kraus operators of a (4**k, 4**k) superoperator (column-stacking), the negligible
    ones dropped."""
    operators = Kraus(SuperOp(superop)).data
    return [np.asarray(k, dtype=complex) for k in operators if np.linalg.norm(k) > 1e-12]


class KrausBlock:
    """One noise channel sampled per row (see the module docstring).

    Args:
        op: the ``CHANNEL`` op, its slot the uniform random number of each sample.
        num_qubits: simulated qubits n.
        backend: where the states live.
    """

    kind = "kraus"

    def __init__(self, op: Op, num_qubits: int, backend: Backend) -> None:
        if op.kind is not OpKind.CHANNEL or op.slot < 0:
            raise ValueError("a KrausBlock needs a CHANNEL op with a slot for its uniforms")
        self.xp = backend.xp
        self.backend = backend
        self.slots = np.asarray([op.slot], dtype=np.int64)
        self.operators = [
            Op(OpKind.DENSE, op.targets, data=kraus) for kraus in kraus_operators(op.superop)
        ]
        self.views = [make_view(kraus, num_qubits) for kraus in self.operators]

    @property
    def parametric(self) -> bool:
        return True

    def cost(self) -> float:
        """Passes over a row: each Kraus operator's product, weight and selection."""
        return PASSES_PER_KRAUS * len(self.operators)

    def prep_bytes(self) -> tuple[int, int]:
        """Bytes per sample of the uniforms."""
        return 8, 0

    def gradient_bytes(self) -> int:
        """None: the block has no derivative."""
        return 0

    def prepare(self, angles: Any, work: Buffers | None = None, key: str = "") -> Any:
        """(1, P) uniform random numbers of the samples (the slot's values)."""
        return angles[:, int(self.slots[0])].astype(self.backend.real_dtype, copy=False)[None]

    def apply(self, psi: Any, out: Any, scratch: Any, prep: Any, inplace: bool) -> Any:
        """Each row's sampled branch, renormalised, in ``psi`` (or ``out``)."""
        xp = self.xp
        target = psi if inplace else out
        shape = psi.shape
        # (1, P, 1...): per row; scaled below 1 so that rounding in the weights' sum (which
        # is 1 up to it) never leaves a row to a branch of weight 0
        uniform = prep.reshape(prep.shape + (1,) * (len(shape) - 3)) * (1.0 - 1e-9)
        chosen = xp.zeros_like(psi)
        below = xp.zeros(shape[:-1], dtype=self.backend.real_dtype)
        unset = xp.ones(shape[:-1], dtype=bool)
        branch = scratch
        last = len(self.operators) - 1
        for k, (kraus, view) in enumerate(zip(self.operators, self.views, strict=True)):
            branch[...] = psi
            apply_op(xp, kraus, view, branch, None)
            weight = xp.sum(xp.abs(branch) ** 2, axis=-1)
            below = below + weight
            take = unset & ((uniform < below) | (k == last))
            scale = xp.where(take, 1.0 / xp.sqrt(xp.maximum(weight, 1e-300)), 0.0)
            chosen += branch * scale[..., None]
            unset &= ~take
        target[...] = chosen
        return target

    def apply_adjoint(self, psi: Any, out: Any, scratch: Any, prep: Any, inplace: bool) -> NoReturn:
        raise ValueError(
            "a noise trajectory cannot be un-applied: trajectories take gradient_method="
            "'parameter_shift'"
        )

    def plan_shifts(self, entries: Sequence[tuple[int, float]]) -> NoReturn:
        raise ValueError("a noise location's random number is not differentiated")

    def shift_rows(self, rows: Any, shifts: Any, prep: Any, base: Any) -> NoReturn:
        raise ValueError("a noise location's random number is not differentiated")

    def gradient(self, lam: Any, phi: Any, prep: Any) -> NoReturn:
        raise ValueError(
            "a noise trajectory has no adjoint gradient: trajectories take gradient_method="
            "'parameter_shift'"
        )

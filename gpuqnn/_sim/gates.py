"""Gate-level kernels: one native op (see :mod:`gpuqnn._compile`) applied to a batch of states.

Written once against the array module, so NumPy and CuPy run the same code. A state tensor is
(M, P, *E, D): M copies of P samples, optional extra axes E (e.g. one adjoint state per output),
D = 2**n amplitudes. A k-qubit op views it with one axis per qubit it touches and works on its 2**k
strided sub-blocks, with controls fixed by indexing. Parametric ops take one angle per sample,
(1, P), which broadcasts over the copies and the extra axes.

Besides applying an op, the module applies its inverse (for the adjoint sweep) and reduces
``<lam| G |phi>`` for the generator G of a parametric op (its adjoint gradient).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._compile import Op, OpKind

_EPS = 1e-15


@dataclass(frozen=True)
class OpView:
    """How to view a state for one op: the reshape of the amplitude axis and each sub-block.

    Attributes:
        shape: the amplitude axis D reshaped so that every qubit of the op has an axis.
        blocks: per local index j (bit t of j = ``targets[t]``), the index of that sub-block in
            the reshaped amplitude axes, controls fixed to ``ctrl_state``.
        reduce_axes: the reshaped amplitude axes (negative), for reductions over a sub-block.
    """

    shape: tuple[int, ...]
    blocks: tuple[tuple[Any, ...], ...]
    reduce_axes: tuple[int, ...]


def make_view(op: Op, num_qubits: int) -> OpView:
    """The view of ``op`` on an ``num_qubits``-qubit state."""
    qubits = sorted(op.qubits, reverse=True)
    shape: list[int] = []
    axis: dict[int, int] = {}
    above = num_qubits
    for q in qubits:
        if above - q - 1 > 0:
            shape.append(2 ** (above - q - 1))
        axis[q] = len(shape)
        shape.append(2)
        above = q
    if above > 0:
        shape.append(2**above)
    blocks = []
    for j in range(2 ** len(op.targets)):
        index: list[Any] = [slice(None)] * len(shape)
        for c, q in enumerate(op.controls):
            index[axis[q]] = (op.ctrl_state >> c) & 1
        for t, q in enumerate(op.targets):
            index[axis[q]] = (j >> t) & 1
        blocks.append((Ellipsis, *index))
    ndim_left = len(shape) - len(op.qubits)  # axes left after integer indexing
    return OpView(tuple(shape), tuple(blocks), tuple(range(-ndim_left, 0)) if ndim_left else ())


def sub_blocks(psi: Any, view: OpView) -> list[Any]:
    """Views of ``psi`` (R, *E, D) on each of the op's sub-blocks."""
    shaped = psi.reshape(psi.shape[:-1] + view.shape)
    return [shaped[index] for index in view.blocks]


def inverse_op(op: Op) -> Op:
    """The inverse of a constant op (``dense``/``diag``/``perm``); parametric ops are inverted
    by negating their angle."""
    if op.kind is OpKind.DENSE:
        return Op(OpKind.DENSE, op.targets, op.controls, op.ctrl_state, op.matrix.conj().T.copy())
    if op.kind is OpKind.DIAG:
        return Op(OpKind.DIAG, op.targets, op.controls, op.ctrl_state, op.diagonal.conj())
    if op.kind is OpKind.PERM:
        inverse = np.argsort(op.index_source)
        return Op(
            OpKind.PERM, op.targets, op.controls, op.ctrl_state, op.phases[inverse].conj(), inverse
        )
    raise ValueError(f"op kind {op.kind.name} is parametric; invert it by negating its angle")


def apply_op(xp: Any, op: Op, view: OpView, psi: Any, theta: Any | None) -> None:
    """Apply ``op`` in place to ``psi`` (M, P, *E, D) with per-sample angles ``theta`` (1, P)
    (or (1, 1)) if parametric."""
    blocks = sub_blocks(psi, view)
    if op.slot >= 0:
        _PARAM_KERNELS[op.kind](xp, op, blocks, theta)
    else:
        _CONST_KERNELS[op.kind](op, blocks)


def generator_overlap(xp: Any, op: Op, view: OpView, lam: Any, phi: Any) -> Any:
    """``<lam| dU/dtheta U^dagger |phi>`` for the parametric ``op``, per row and extra index.

    For ``rot`` (exp(-i theta/2 G) on the controlled subspace) that is ``-i/2 <lam|G|phi>``; for
    ``phase`` it is ``i <lam|Pi|phi>`` with Pi the projector on the masked sub-blocks.

    Args:
        lam: (M, P, *E, D) complex adjoint states.
        phi: (M, P, D) complex states, broadcast against ``lam``.

    Returns:
        (M, P, *E) complex overlaps.
    """
    lam_blocks = sub_blocks(lam, view)
    phi_blocks = sub_blocks(_expand_like(phi, lam), view)
    total = None
    if op.kind is OpKind.ROT:
        for j, k in enumerate(op.index_source):
            # G[j, source(j)] = i * coeff_j, so dU U^dagger = -i/2 G contributes coeff_j / 2
            term = _sum_sub_block(xp, xp.conj(lam_blocks[j]) * phi_blocks[int(k)], view)
            term = term * (0.5 * op.coefficients[j])
            total = term if total is None else total + term
    else:  # phase
        for j, selected in enumerate(op.mask):
            if selected:
                term = _sum_sub_block(xp, xp.conj(lam_blocks[j]) * phi_blocks[j], view) * 1j
                total = term if total is None else total + term
    return total


def _expand_like(phi: Any, lam: Any) -> Any:
    """(M, P, D) -> (M, P, 1, ..., 1, D) so that it broadcasts against ``lam`` (M, P, *E, D)."""
    extra = lam.ndim - phi.ndim
    if extra <= 0:
        return phi
    return phi.reshape(phi.shape[:-1] + (1,) * extra + phi.shape[-1:])


def _sum_sub_block(xp: Any, values: Any, view: OpView) -> Any:
    if not view.reduce_axes:
        return values
    return xp.sum(values, axis=view.reduce_axes)


def _per_row(values: Any, ndim: int) -> Any:
    """(1, P) per-sample values -> (1, P, 1, ..., 1) against an ndim-dimensional sub-block
    (M, P, ...)."""
    return values.reshape(values.shape + (1,) * (ndim - values.ndim))


def _rot(xp: Any, op: Op, blocks: list[Any], theta: Any) -> None:
    """exp(-i theta/2 G): new_j = cos(theta/2) a_j + sin(theta/2) b_j a_source(j)."""
    ndim = blocks[0].ndim
    half = theta * 0.5
    c = _per_row(xp.cos(half), ndim)
    s = xp.sin(half)
    coeffs, source = op.coefficients, op.index_source
    done = set()
    for j, k in enumerate(source):
        if j in done:
            continue
        k = int(k)
        if k == j:
            blocks[j] *= c + _coefficient(s, coeffs[j], ndim)
            done.add(j)
            continue
        bj = _coefficient(s, coeffs[j], ndim)
        bk = _coefficient(s, coeffs[k], ndim)
        aj, ak = blocks[j], blocks[k]
        new_j = aj * c
        new_j += ak * bj
        ak *= c
        ak += aj * bk
        aj[...] = new_j
        done.update((j, k))


def _coefficient(s: Any, coeff: complex, ndim: int) -> Any:
    """Per-row sin(theta/2) * coeff, real when coeff is real."""
    if abs(coeff.imag) < _EPS:
        return _per_row(s * coeff.real, ndim)
    return _per_row(s * coeff, ndim)


def _phase(xp: Any, op: Op, blocks: list[Any], theta: Any) -> None:
    """exp(i theta) on the sub-blocks the op's mask selects."""
    factor = _per_row(xp.exp(1j * theta), blocks[0].ndim)
    for j, selected in enumerate(op.mask):
        if selected:
            blocks[j] *= factor


def _const_diag(op: Op, blocks: list[Any]) -> None:
    for j, d in enumerate(op.diagonal):
        if abs(d - 1.0) > _EPS:
            blocks[j] *= d.real if abs(d.imag) < _EPS else d


def _const_perm(op: Op, blocks: list[Any]) -> None:
    """new_j = phase_j * a_source(j), one temporary per cycle."""
    source, phases = op.index_source, op.phases
    seen = set()
    for start in range(len(source)):
        if start in seen:
            continue
        cycle = [start]
        seen.add(start)
        nxt = int(source[start])
        while nxt != start:
            cycle.append(nxt)
            seen.add(nxt)
            nxt = int(source[nxt])
        if len(cycle) == 1:
            if abs(phases[start] - 1.0) > _EPS:
                blocks[start] *= phases[start]
            continue
        saved = blocks[cycle[0]].copy()
        for dst, src in zip(cycle[:-1], cycle[1:], strict=True):
            _assign(blocks[dst], blocks[src], phases[dst])
        _assign(blocks[cycle[-1]], saved, phases[cycle[-1]])


def _assign(dst: Any, src: Any, phase: complex) -> None:
    if abs(phase - 1.0) < _EPS:
        dst[...] = src
    elif abs(phase.imag) < _EPS:
        dst[...] = src * phase.real
    else:
        dst[...] = src * phase


def _const_dense(op: Op, blocks: list[Any]) -> None:
    """new_i = sum_j M[i, j] a_j, skipping zero entries."""
    matrix = op.matrix
    new = []
    for i in range(matrix.shape[0]):
        acc = None
        for j in range(matrix.shape[1]):
            m = matrix[i, j]
            if abs(m) < _EPS:
                continue
            m = m.real if abs(m.imag) < _EPS else m
            term = blocks[j] * m
            if acc is None:
                acc = term
            else:
                acc += term
        new.append(acc)
    for i, value in enumerate(new):
        if value is None:
            blocks[i][...] = 0
        else:
            blocks[i][...] = value


_PARAM_KERNELS = {OpKind.ROT: _rot, OpKind.PHASE: _phase}
_CONST_KERNELS = {OpKind.DIAG: _const_diag, OpKind.PERM: _const_perm, OpKind.DENSE: _const_dense}

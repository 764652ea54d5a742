"""The batched statevector engine: evolves a (rows, 2**n) tensor of states op by op.

Written once against the backend's array module, so NumPy and CuPy run the same code. Each op is
one vectorised update of all active rows: the state tensor is viewed with one axis per qubit the
op touches, so a k-qubit op works on 2**k strided sub-blocks, with controls fixed by indexing.
Rows may start late: a parameter-shift row is copied from its sample's base row just before its
shifted op (see :func:`evolve`), so the common prefix is simulated once per sample.

Shapes: R rows, D = 2**n amplitudes, K angle slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._backend import Backend
from ._compile import Op, Program


@dataclass(frozen=True)
class _Plan:
    """How to view the state for one op: the reshape and the index of each sub-block."""

    shape: tuple[int, ...]
    blocks: tuple[tuple[Any, ...], ...]


def _plan(op: Op, num_qubits: int) -> _Plan:
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
        index: list[Any] = [slice(None)] * (len(shape) + 1)
        for c, q in enumerate(op.controls):
            index[axis[q] + 1] = (op.ctrl_state >> c) & 1
        for t, q in enumerate(op.targets):
            index[axis[q] + 1] = (j >> t) & 1
        blocks.append(tuple(index))
    return _Plan(tuple(shape), tuple(blocks))


class Engine:
    """Runs a program on a backend.

    Args:
        program: the compiled circuit.
        backend: array module, device and dtype.
    """

    def __init__(self, program: Program, backend: Backend) -> None:
        self.program = program
        self.backend = backend
        self.dim = 2**program.num_qubits
        self._plans = tuple(_plan(op, program.num_qubits) for op in program.ops)
        self.branch_points = _branch_points(program.ops)

    def evolve(self, angles: Any, num_base: int | None = None,
               branches: dict[int, Sequence[tuple[int, int, int, float]]] | None = None,
               active: Sequence[int] | None = None) -> Any:
        """Evolve rows from |0...0> through the program.

        Without ``branches`` every row starts in |0> and goes through every op. With
        ``branches``, only the first ``num_base`` rows start in |0>. Just before op i (or at the
        end, for i = number of ops), each (start, stop, k, shift) of ``branches[i]`` fills rows
        [start, stop) with copies of the base rows (tiled) and applies op k to them with the
        constant angle ``shift``: since op k is ``U(theta)`` and ``U(theta + shift) =
        U(shift) U(theta)``, and op k commutes with the ops between k and i, those rows then
        hold the state of the base rows with op k's angle shifted. Op i is applied to rows
        ``[:active[i]]``.

        Args:
            angles: (R, K) real array on the backend, each row's angle per slot.
            num_base: rows that start in |0> (default: all).
            branches: op index -> (start, stop, op, shift) row blocks to fill before that op.
            active: (num ops,) number of leading rows each op is applied to (default: all).

        Returns:
            (R, D) complex array of final states on the backend.
        """
        xp = self.backend.xp
        rows = angles.shape[0]
        num_base = rows if num_base is None else num_base
        psi = xp.zeros((rows, self.dim), dtype=self.backend.dtype)
        psi[:num_base, 0] = 1.0
        real = self.backend.real_dtype
        ops = self.program.ops
        for i in range(len(ops) + 1):
            for start, stop, k, shift in (branches or {}).get(i, ()):
                psi[start:stop].reshape(-1, num_base, self.dim)[...] = psi[:num_base]
                self._apply(psi[start:stop], k, xp.full(stop - start, shift, dtype=real))
            if i == len(ops):
                break
            r = rows if active is None else active[i]
            theta = angles[:r, ops[i].slot].astype(real, copy=False) if ops[i].slot >= 0 else None
            self._apply(psi[:r], i, theta)
        return psi

    def _apply(self, psi: Any, index: int, theta: Any) -> None:
        """Apply op ``index`` to all rows of ``psi`` (R, D), with (R,) angles if parametric."""
        op, plan = self.program.ops[index], self._plans[index]
        view = psi.reshape((psi.shape[0], *plan.shape))
        blocks = [view[idx] for idx in plan.blocks]
        if op.slot >= 0:
            _PARAM_KERNELS[op.kind](self.backend.xp, op, blocks, theta)
        else:
            _CONST_KERNELS[op.kind](op, blocks)


def _branch_points(ops: Sequence[Op]) -> tuple[int, ...]:
    """For each parametric op k, the first later op that does not commute with it (or the
    number of ops): a shifted copy of op k's angle can branch off the base rows there."""
    points = []
    for k, op in enumerate(ops):
        point = k + 1
        if op.slot >= 0:
            while point < len(ops) and op.commutes_with(ops[point]):
                point += 1
        points.append(point)
    return tuple(points)


def _per_row(values: Any, ndim: int) -> Any:
    """(R,) -> (R, 1, ..., 1) for broadcasting against an ndim-dimensional sub-block."""
    return values.reshape((values.shape[0],) + (1,) * (ndim - 1))


def _rot(xp: Any, op: Op, blocks: list[Any], theta: Any) -> None:
    """exp(-i theta/2 G): new_j = cos(theta/2) a_j + sin(theta/2) b_j a_source(j)."""
    ndim = blocks[0].ndim
    half = theta * 0.5
    c = _per_row(xp.cos(half), ndim)
    s = xp.sin(half)
    coeffs, source = op.matrix, op.source
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
    if abs(coeff.imag) < 1e-15:
        return _per_row(s * coeff.real, ndim)
    return _per_row(s * coeff, ndim)


def _phase(xp: Any, op: Op, blocks: list[Any], theta: Any) -> None:
    """exp(i theta) on the sub-blocks the op's mask selects."""
    factor = _per_row(xp.exp(1j * theta), blocks[0].ndim)
    for j, selected in enumerate(op.matrix):
        if selected:
            blocks[j] *= factor


def _const_diag(op: Op, blocks: list[Any]) -> None:
    for j, d in enumerate(op.matrix):
        if abs(d - 1.0) > 1e-15:
            blocks[j] *= d.real if abs(d.imag) < 1e-15 else d


def _const_perm(op: Op, blocks: list[Any]) -> None:
    """new_j = phase_j * a_source(j), one temporary per cycle."""
    source, phases = op.source, op.matrix
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
            if abs(phases[start] - 1.0) > 1e-15:
                blocks[start] *= phases[start]
            continue
        saved = blocks[cycle[0]].copy()
        for dst, src in zip(cycle[:-1], cycle[1:], strict=True):
            _assign(blocks[dst], blocks[src], phases[dst])
        _assign(blocks[cycle[-1]], saved, phases[cycle[-1]])


def _assign(dst: Any, src: Any, phase: complex) -> None:
    if abs(phase - 1.0) < 1e-15:
        dst[...] = src
    elif abs(phase.imag) < 1e-15:
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
            if abs(m) < 1e-15:
                continue
            m = m.real if abs(m.imag) < 1e-15 else m
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


_PARAM_KERNELS = {"rot": _rot, "phase": _phase}
_CONST_KERNELS = {"diag": _const_diag, "perm": _const_perm, "dense": _const_dense}


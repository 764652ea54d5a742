"""Fused blocks at run time: apply, un-apply and differentiate a block for a batch of rows.

Every block follows one protocol, written against the backend's array module:

- ``prepare(angles, work, key)`` turns the (R, K) angle table into the block's per-row data
  (phases, Kronecker matrices, angles), once per pass; big per-row data lives in the workspace
  ``work`` under ``key`` when one is given;
- ``apply(psi, out, scratch, prep, inplace)`` maps states (R, *E, D) to the block's output and
  returns the array that holds it: ``psi`` itself when ``inplace`` allows and the block works in
  place, else ``out`` (``scratch`` is a spare buffer of the same shape);
- ``apply_adjoint(...)`` does the same with the block's inverse;
- ``gradient(lam, phi, prep)`` gives ``2 Re <lam| d phi / d theta_k>`` for each slot k of the
  block from the adjoint states ``lam`` (R, *E, D) and the states ``phi`` (R, D) at the block's
  output: ``d phi / d theta_k = A_k phi`` for a per-row operator A_k (the derivative moved to the
  output frame), so no state is differentiated on its own.

E are optional extra axes (one adjoint state per network output); per-row data broadcasts over
them. Shape letters: R rows, E extra axes, D = 2**n amplitudes, K angle slots, Kb the block's slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._backend import Backend
from ._compile import Op, Program
from ._fusion import GATE, LAYER, PHASE, BlockSpec
from ._gates import Plan, apply_op, generator_overlap, inverse_op, make_plan
from ._workspace import Workspace

MAX_GROUP_QUBITS = 4
"""Qubits per Kronecker factor of a layer: 16 x 16 per-row matrices (measured fastest here)."""


def _broadcast_rows(values: Any, like: Any, trailing: int) -> Any:
    """(R, *T) per-row data -> (R, 1, ..., 1, *T) to broadcast against ``like`` (R, *E, ...)
    whose last ``trailing`` axes match T."""
    extra = like.ndim - trailing - 1
    if extra <= 0:
        return values
    return values.reshape(values.shape[:1] + (1,) * extra + values.shape[1:])


def _local_index(op: Op, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every basis state: the op's local index (bit t = ``targets[t]``) and whether the
    controls hold ``ctrl_state``."""
    local = np.zeros_like(basis)
    for t, q in enumerate(op.targets):
        local |= ((basis >> q) & 1) << t
    match = np.ones(basis.shape, dtype=bool)
    for c, q in enumerate(op.controls):
        match &= ((basis >> q) & 1) == ((op.ctrl_state >> c) & 1)
    return local, match


class PhaseBlock:
    """A run of diagonal and permutation ops: ``out(b) = c(b) exp(i sum_k theta_k F_k(b))
    psi(src(b))``.

    The ops are folded at construction, in order, into the output frame: a permutation re-indexes
    everything accumulated before it. Applying the block is one (R, Kb) @ (Kb, D) matmul, cos/sin
    and one gather-multiply; the gradients of all its slots are one (R*E, D) @ (D, Kb) matmul.

    Args:
        ops: the block's ops, diagonal or permutations, in order.
        num_qubits: simulated qubits n.
        backend: where the tables live.
    """

    kind = PHASE

    def __init__(self, ops: Sequence[Op], num_qubits: int, backend: Backend) -> None:
        self.xp = backend.xp
        self.backend = backend
        dim = 2**num_qubits
        basis = np.arange(dim, dtype=np.int64)
        src = basis.copy()
        const = np.ones(dim, dtype=complex)
        rows: list[np.ndarray] = []
        slots: list[int] = []
        for op in ops:
            local, match = _local_index(op, basis)
            if op.kind == "perm":
                new_local = op.source[local]
                moved = basis.copy()
                for t, q in enumerate(op.targets):
                    moved &= ~(1 << q)
                    moved |= ((new_local >> t) & 1) << q
                src_full = np.where(match, moved, basis)
                const = np.where(match, op.matrix[local], 1.0) * const[src_full]
                rows = [row[src_full] for row in rows]
                src = src[src_full]
            elif op.kind == "diag":
                const = const * np.where(match, op.matrix[local], 1.0)
            elif op.kind == "phase":
                rows.append(np.where(match, op.matrix[local].real, 0.0))
                slots.append(op.slot)
            elif op.kind == "rot":  # diagonal generator: coeff_j = -i g_j, g_j = +-1
                rows.append(np.where(match, op.matrix[local].imag * 0.5, 0.0))
                slots.append(op.slot)
            else:
                raise ValueError(f"op kind {op.kind!r} is not diagonal or a permutation")
        real = backend.real_dtype
        self.slots = np.asarray(slots, dtype=np.int64)
        self.table = backend.asarray(np.array(rows).reshape(len(rows), dim), dtype=real)
        self.table_t = backend.asarray(np.array(rows).reshape(len(rows), dim).T.copy(),
                                       dtype=real)
        identity = np.array_equal(src, basis)
        self.src = None if identity else backend.asarray(src)
        self.inv_src = None if identity else backend.asarray(np.argsort(src))
        trivial = np.allclose(const, 1.0, atol=1e-15, rtol=0)
        self.const = None if trivial else backend.asarray(const, dtype=backend.dtype)
        self.dtype = backend.dtype

    @property
    def parametric(self) -> bool:
        return self.slots.size > 0

    def prepare(self, angles: Any, work: Workspace | None = None, key: str = "") -> Any:
        """(R, K) real angles -> (R, D) complex phases ``c exp(i theta F)``, or (1, D) / None
        for a block without slots."""
        xp = self.xp
        if not self.parametric:
            return None if self.const is None else self.const[None]
        phi = angles[:, self.slots] @ self.table
        if work is None:
            phases = xp.empty(phi.shape, dtype=self.dtype)
        else:
            phases = work.get(key, phi.shape, self.dtype)
        self.backend.cis(phi, phases)
        if self.const is not None:
            phases *= self.const
        return phases

    def apply(self, psi: Any, out: Any, scratch: Any, prep: Any, inplace: bool) -> Any:
        xp = self.xp
        if self.src is not None:
            self.backend.gather(psi, self.src, out)
            psi, inplace = out, True
        if prep is None:
            if inplace:
                return psi
            out[...] = psi
            return out
        target = psi if inplace else out
        xp.multiply(psi, _broadcast_rows(prep, psi, 1), out=target)
        return target

    def apply_adjoint(self, psi: Any, out: Any, scratch: Any, prep: Any, inplace: bool) -> Any:
        """psi_in(src(b)) = conj(phase(b)) psi_out(b): multiply, then gather by src^-1."""
        xp = self.xp
        if prep is not None:
            if self.src is not None:
                target = scratch
            else:
                target = psi if inplace else out
            xp.multiply(psi, xp.conj(_broadcast_rows(prep, psi, 1)), out=target)
            psi = target
        if self.src is not None:
            self.backend.gather(psi, self.inv_src, out)
            return out
        if psi is out or inplace:
            return psi
        out[...] = psi
        return out

    def gradient(self, lam: Any, phi: Any, prep: Any) -> Any:
        """d phi / d theta_k = i F_k phi, so the gradient is -2 Im(conj(lam) phi) @ F^T."""
        xp = self.xp
        prod = xp.conj(lam)
        prod *= _broadcast_rows(phi, lam, 1)
        return (prod.imag @ self.table_t) * -2.0


@dataclass(frozen=True)
class _Factor:
    """One op of a layer on its qubit: a constant 2 x 2 matrix, or a parametric op."""

    op: Op
    matrix: np.ndarray | None  # constant (2, 2), else None
    slot_position: int  # position of its slot in the block's slots, or -1


@dataclass(frozen=True)
class _Group:
    """Layer qubits ``low .. low + size - 1``, one Kronecker factor."""

    low: int
    size: int


@dataclass
class LayerPrep:
    """Per-row data of a layer for one pass.

    Attributes:
        qubit_factors: per layer qubit, its factors' (R|1, 2, 2) matrices in order.
        kron: per group, the (R|1, G, G) Kronecker factor (G = 2**size): real for a real layer
            except at the bottom of the register, where it acts on the complex amplitudes'
            last axis and is complex.
    """

    qubit_factors: dict[int, list[Any]]
    kron: list[Any]


class LayerBlock:
    """Single-qubit ops without controls: per row, one 2 x 2 matrix per qubit (the product of its
    ops), applied as Kronecker factors over groups of up to :data:`MAX_GROUP_QUBITS` adjacent
    qubits with one batched matmul per group. Real layers (ry, h, x, z, ...) run on the real view
    of the complex states, a quarter of the arithmetic of a complex matmul.

    Args:
        ops: the layer's single-qubit ops, in an order valid per qubit.
        num_qubits: simulated qubits n.
        backend: array module and dtypes.
        max_group: qubits per Kronecker factor at most.
    """

    kind = LAYER

    def __init__(self, ops: Sequence[Op], num_qubits: int, backend: Backend,
                 max_group: int = MAX_GROUP_QUBITS) -> None:
        self.xp = backend.xp
        self.backend = backend
        self.num_qubits = num_qubits
        slots: list[int] = []
        self.factors: dict[int, list[_Factor]] = {}
        real = True
        for op in ops:
            q = op.targets[0]
            if op.slot >= 0:
                slots.append(op.slot)
                matrix, position = None, len(slots) - 1
                real &= op.kind == "rot" and bool(np.all(np.abs(op.matrix.imag) < 1e-15))
            else:
                matrix, position = _constant_matrix(op), -1
                real &= bool(np.all(np.abs(matrix.imag) < 1e-15))
            self.factors.setdefault(q, []).append(_Factor(op, matrix, position))
        self.slots = np.asarray(slots, dtype=np.int64)
        self.real = real
        self.groups = _groups(sorted(self.factors), max_group)
        self._constant_prep: LayerPrep | None = None
        if not slots:
            self._constant_prep = self.prepare(None)

    @property
    def parametric(self) -> bool:
        return self.slots.size > 0

    # ---- per-row matrices ---------------------------------------------------------------------
    def prepare(self, angles: Any, work: Workspace | None = None, key: str = "") -> LayerPrep:
        if self._constant_prep is not None:
            return self._constant_prep
        dtype = self.backend.real_dtype if self.real else self.backend.dtype
        per_qubit: dict[int, list[Any]] = {}
        mats: dict[int, Any] = {}
        for q, factors in self.factors.items():
            values = [self._factor_matrix(f, angles, dtype) for f in factors]
            per_qubit[q] = values
            total = values[0]
            for value in values[1:]:
                total = value @ total
            mats[q] = total
        kron = []
        for group in self.groups:
            k = mats[group.low]
            for q in range(group.low + 1, group.low + group.size):
                k = _kron(mats[q], k)
            if self.real and self._bottom(group):
                k = k.astype(self.backend.dtype)
            kron.append(k)
        return LayerPrep(per_qubit, kron)

    def _bottom(self, group: _Group) -> bool:
        """Whether the group holds qubit 0 but not every qubit: its axis is the last one of
        the amplitudes, where the real view of complex states interleaves re/im."""
        return group.low == 0 and group.size < self.num_qubits

    def _factor_matrix(self, factor: _Factor, angles: Any, dtype: Any) -> Any:
        xp = self.xp
        op = factor.op
        if factor.matrix is not None:
            matrix = factor.matrix.real if self.real else factor.matrix
            return xp.asarray(matrix, dtype=dtype)[None]
        theta = angles[:, op.slot]
        rows = theta.shape[0]
        if op.kind == "rot":
            half = theta * 0.5
            c, s = xp.cos(half), xp.sin(half)
            generator = np.zeros((2, 2), dtype=complex)
            generator[np.arange(2), op.source] = op.matrix
            generator = generator.real if self.real else generator
            eye = xp.eye(2, dtype=dtype)
            return (c[:, None, None] * eye[None]
                    + s[:, None, None] * xp.asarray(generator, dtype=dtype)[None])
        # phase: diag(1 or exp(i theta)) by the mask
        out = xp.zeros((rows, 2, 2), dtype=dtype)
        factor_value = xp.exp(1j * theta)
        for j in range(2):
            out[:, j, j] = factor_value if op.matrix[j] else 1.0
        return out

    # ---- apply --------------------------------------------------------------------------------
    def apply(self, psi: Any, out: Any, scratch: Any, prep: LayerPrep, inplace: bool) -> Any:
        return self._run(psi, out, scratch, prep.kron, adjoint=False)

    def apply_adjoint(self, psi: Any, out: Any, scratch: Any, prep: LayerPrep,
                      inplace: bool) -> Any:
        return self._run(psi, out, scratch, prep.kron, adjoint=True)

    def _run(self, psi: Any, out: Any, scratch: Any, kron: list[Any], adjoint: bool) -> Any:
        count = len(self.groups)
        # alternate between out and scratch so that the last group writes into out
        targets = [out if (count - i) % 2 == 1 else scratch for i in range(count)]
        source = psi
        for group, k, target in zip(self.groups, kron, targets, strict=True):
            self._apply_group(group, _dagger(self.xp, k) if adjoint else k, source, target)
            source = target
        return out

    def _apply_group(self, group: _Group, k: Any, psi: Any, out: Any) -> None:
        xp = self.xp
        n, low, size = self.num_qubits, group.low, group.size
        g = 2**size
        lead = psi.shape[:-1]
        above, below = 2 ** (n - low - size), 2**low
        kb = _broadcast_rows(k, psi, 1)  # (R|1, 1.., G, G)
        if self._bottom(group):  # the amplitudes' last axis: out = psi @ K^T
            view = psi.reshape(lead + (above, g))
            xp.matmul(view, kb.swapaxes(-1, -2), out=out.reshape(lead + (above, g)))
        else:
            real = self.real  # a real K acts on the real view, (re, im) riding along
            width = below * (2 if real else 1)
            source = psi.view(k.dtype) if real else psi
            target = out.view(k.dtype) if real else out
            if above == 1:
                xp.matmul(kb, source.reshape(lead + (g, width)),
                          out=target.reshape(lead + (g, width)))
            else:
                xp.matmul(kb[..., None, :, :], source.reshape(lead + (above, g, width)),
                          out=target.reshape(lead + (above, g, width)))

    # ---- gradient -----------------------------------------------------------------------------
    def gradient(self, lam: Any, phi: Any, prep: LayerPrep) -> Any:
        """Per group, the reduced cross matrix ``C[i, j] = sum_rest conj(lam[i, rest])
        phi[j, rest]`` (one batched matmul); per qubit its 2 x 2 partial trace; per slot
        ``2 Re sum H_k * C_q`` with ``H_k = A (dg g^-1) A^dagger`` (A: the qubit's ops after k).
        A real layer has real H_k, so only Re C is needed: a real matmul of the real views."""
        xp = self.xp
        needs_conj = not self.real or any(self._bottom(group) for group in self.groups)
        conj_phi = xp.conj(phi) if needs_conj else None
        lead = lam.shape[:-1]
        grad = xp.zeros(lead + (self.slots.size,), dtype=self.backend.real_dtype)
        for group in self.groups:
            cross = self._cross(group, lam, phi, conj_phi)
            for t in range(group.size):
                q = group.low + t
                factors = self.factors[q]
                if all(f.slot_position < 0 for f in factors):
                    continue
                reduced = _partial_trace(xp, cross, group.size, t)  # (R, *E, 2, 2)
                after = None  # product of the factors after the current one
                for f, value in zip(reversed(factors), reversed(prep.qubit_factors[q]),
                                    strict=True):
                    if f.slot_position >= 0:
                        h = self._generator(f)
                        if after is not None:
                            h = after @ h @ _dagger(xp, after)
                        hb = _broadcast_rows(h, reduced, 2)
                        grad[..., f.slot_position] = 2.0 * xp.sum(
                            (hb * reduced).real, axis=(-1, -2))
                    after = value if after is None else after @ value
        return grad

    def _cross(self, group: _Group, lam: Any, phi: Any, conj_phi: Any | None) -> Any:
        """The group's cross matrix (R, *E, G, G): complex, or its real part for a real layer.

        ``C = conj(D)`` with ``D[i, j] = sum_rest lam[i, rest] conj(phi[j, rest])``, so only
        ``phi`` (no output axis) is ever conjugated.
        """
        xp = self.xp
        n, low, size = self.num_qubits, group.low, group.size
        g = 2**size
        above, below = 2 ** (n - low - size), 2**low
        lead = lam.shape[:-1]
        if self._bottom(group):  # sum over the leading axis
            conj_b = _broadcast_rows(conj_phi, lam, 1)
            lam_v = lam.reshape(lead + (above, g))
            product = lam_v.swapaxes(-1, -2) @ conj_b.reshape(conj_b.shape[:-1] + (above, g))
            return product.real if self.real else xp.conj(product)
        phi_b = _broadcast_rows(phi if self.real else conj_phi, lam, 1)
        plead = phi_b.shape[:-1]
        if self.real:  # Re C = sum over (rest, re/im) of the real views
            real = self.backend.real_dtype
            lam_v = lam.view(real).reshape(lead + (above, g, 2 * below))
            phi_v = phi_b.view(real).reshape(plead + (above, g, 2 * below))
        else:
            lam_v = lam.reshape(lead + (above, g, below))
            phi_v = phi_b.reshape(plead + (above, g, below))
        if above == 1:
            product = lam_v[..., 0, :, :] @ phi_v[..., 0, :, :].swapaxes(-1, -2)
        else:
            product = (lam_v @ phi_v.swapaxes(-1, -2)).sum(axis=-3)
        return product if self.real else xp.conj(product)

    def _generator(self, factor: _Factor) -> Any:
        """dg/dtheta g^-1 of a parametric factor: C/2 for a rotation (new_j = cos a_j +
        sin coeff_j a_source(j)), i diag(mask) for a phase; shape (1, 2, 2) complex."""
        op = factor.op
        h = np.zeros((2, 2), dtype=complex)
        if op.kind == "rot":
            h[np.arange(2), op.source] = 0.5 * op.matrix
        else:
            h[np.arange(2), np.arange(2)] = 1j * op.matrix.real
        return self.xp.asarray(h, dtype=self.backend.dtype)[None]


def _constant_matrix(op: Op) -> np.ndarray:
    """The 2 x 2 matrix of a constant single-qubit op."""
    if op.kind == "dense":
        return np.asarray(op.matrix, dtype=complex)
    if op.kind == "diag":
        return np.diag(op.matrix).astype(complex)
    if op.kind == "perm":
        matrix = np.zeros((2, 2), dtype=complex)
        matrix[np.arange(2), op.source] = op.matrix
        return matrix
    raise ValueError(f"op kind {op.kind!r} is not constant")


def _groups(qubits: Sequence[int], max_group: int) -> tuple[_Group, ...]:
    """Runs of adjacent qubits split into groups of at most ``max_group``."""
    groups: list[_Group] = []
    run: list[int] = []
    for q in [*qubits, None]:
        if q is not None and run and q == run[-1] + 1:
            run.append(q)
            continue
        while run:
            take, run = run[:max_group], run[max_group:]
            groups.append(_Group(take[0], len(take)))
        run = [] if q is None else [q]
    return tuple(groups)


def _kron(a: Any, b: Any) -> Any:
    """Per-row Kronecker product: (R|1, m, m) x (R|1, p, p) -> (R|1, m p, m p), ``a`` on the
    high bits. The product runs along b's p*p entries (contiguous), then one transposing copy."""
    rows = max(a.shape[0], b.shape[0])
    m, p = a.shape[-1], b.shape[-1]
    outer = a.reshape(a.shape[0], m * m, 1) * b.reshape(b.shape[0], 1, p * p)
    return outer.reshape(rows, m, m, p, p).transpose(0, 1, 3, 2, 4).reshape(rows, m * p, m * p)


def _dagger(xp: Any, matrix: Any) -> Any:
    """Per-row conjugate transpose (a view for real matrices)."""
    if xp.iscomplexobj(matrix):
        matrix = xp.conj(matrix)
    return matrix.swapaxes(-1, -2)


def _partial_trace(xp: Any, cross: Any, size: int, bit: int) -> Any:
    """(..., G, G) -> (..., 2, 2): keep local bit ``bit`` of both indices, trace the others."""
    high, low = 2 ** (size - 1 - bit), 2**bit
    lead = cross.shape[:-2]
    view = cross.reshape(lead + (high, 2, low, high, 2, low))
    return xp.einsum("...hxlhyl->...xy", view)


class GateBlock:
    """One op on its own, with the gate-level kernels of :mod:`gpuqnn._gates`."""

    kind = GATE

    def __init__(self, op: Op, num_qubits: int, backend: Backend) -> None:
        self.xp = backend.xp
        self.backend = backend
        self.op = op
        self.plan: Plan = make_plan(op, num_qubits)
        self.inverse = None if op.slot >= 0 else inverse_op(op)
        self.slots = np.asarray([op.slot] if op.slot >= 0 else [], dtype=np.int64)

    @property
    def parametric(self) -> bool:
        return self.slots.size > 0

    def prepare(self, angles: Any, work: Workspace | None = None, key: str = "") -> Any:
        if not self.parametric:
            return None
        return angles[:, self.op.slot].astype(self.backend.real_dtype, copy=False)

    def apply(self, psi: Any, out: Any, scratch: Any, prep: Any, inplace: bool) -> Any:
        target = psi if inplace else out
        if target is not psi:
            target[...] = psi
        apply_op(self.xp, self.op, self.plan, target, prep)
        return target

    def apply_adjoint(self, psi: Any, out: Any, scratch: Any, prep: Any, inplace: bool) -> Any:
        target = psi if inplace else out
        if target is not psi:
            target[...] = psi
        if self.parametric:
            apply_op(self.xp, self.op, self.plan, target, -prep)
        else:
            apply_op(self.xp, self.inverse, self.plan, target, None)
        return target

    def gradient(self, lam: Any, phi: Any, prep: Any) -> Any:
        overlap = generator_overlap(self.xp, self.op, self.plan, lam, phi)
        return (2.0 * overlap.real)[..., None]


def build_blocks(program: Program, specs: Sequence[BlockSpec],
                 backend: Backend) -> list[PhaseBlock | LayerBlock | GateBlock]:
    """The run-time blocks of ``specs`` (from :func:`gpuqnn._fusion.fuse`) for ``backend``."""
    blocks: list[PhaseBlock | LayerBlock | GateBlock] = []
    n = program.num_qubits
    for spec in specs:
        ops = [program.ops[i] for i in spec.ops]
        if spec.kind == PHASE:
            blocks.append(PhaseBlock(ops, n, backend))
        elif spec.kind == LAYER:
            blocks.append(LayerBlock(ops, n, backend))
        else:
            blocks.append(GateBlock(ops[0], n, backend))
    return blocks

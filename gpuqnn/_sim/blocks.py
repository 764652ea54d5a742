"""Fused blocks at run time: apply, un-apply, shift and differentiate a block for a batch.

States are (M, P, *E, D): M copies of P samples (a parameter-shift pass holds one copy per
shifted slot and term; elsewhere M = 1), optional extra axes E (one adjoint state per network
output), D = 2**n amplitudes. Every row of a sample uses that sample's angles, so per-sample data
is computed once for P samples and broadcasts over the copies and the extra axes.

Every block follows one protocol, written against the backend's array module:

- ``prepare(angles, work, key)`` turns the (P, K) angle table into the block's per-sample data
  (phases, Kronecker matrices, angles), once per pass; big data lives in the buffers ``work``
  under ``key`` when one is given;
- ``apply(psi, out, scratch, prep, inplace)`` maps states to the block's output and returns the
  array that holds it: ``psi`` itself when ``inplace`` allows and the block works in place, else
  ``out`` (``scratch`` is a spare buffer of the same shape);
- ``apply_adjoint(...)`` does the same with the block's inverse;
- ``plan_shifts(entries)`` plans a pass's parameter-shift branches after the block: each
  (local slot index, shift) entry is one block of rows; the block orders the entries as it
  applies them best and precomputes what does not depend on the samples (:class:`Shifts`);
- ``shift_rows(rows, shifts, prep, base)`` fills rows (E, P, D) with the block's output ``base``
  (1, P, D) as it would have been with, for row block e, the angle of the slot of
  ``shifts.entries[e]`` increased by its shift: all of a block's branches in a few batched calls;
- ``gradient(lam, phi, prep)`` gives ``2 Re <lam| d phi / d theta_k>`` for each slot k of the
  block from the adjoint states ``lam`` (M, P, *E, D) and the states ``phi`` (M, P, D) at the
  block's output: ``d phi / d theta_k = A_k phi`` for a per-sample operator A_k (the derivative
  moved to the output frame), so no state is differentiated on its own.

Shape letters: M copies, P samples, E extra axes, D = 2**n, K angle slots, Kb the block's slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._compile import Op, OpKind, Program
from .backend import Backend
from .buffers import Buffers
from .fusion import GATE, LAYER, PHASE, BlockSpec
from .gates import OpView, apply_op, generator_overlap, inverse_op, make_view
from .kraus import KrausBlock

MAX_GROUP_QUBITS = 4
"""Qubits per Kronecker factor of a layer: 16 x 16 per-sample matrices (measured fastest)."""


def _per_sample(values: Any, like: Any, trailing: int) -> Any:
    """(P|1, *T) per-sample data -> (1, P|1, 1, ..., 1, *T) to broadcast against ``like``
    (M, P, *E, ...) whose last ``trailing`` axes match T."""
    extra = like.ndim - 2 - trailing
    return values.reshape((1, values.shape[0]) + (1,) * extra + values.shape[1:])


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


@dataclass(frozen=True)
class Shifts:
    """A block's parameter-shift branches for one pass (from its ``plan_shifts``).

    Attributes:
        entries: (local slot index, shift) per row block, in the order the block applies them.
        order: for each of ``entries``, its index in the entries the plan was made from.
        fixed: the block's sample-independent data for them (phase factors, angles, ...).
    """

    entries: tuple[tuple[int, float], ...]
    order: tuple[int, ...]
    fixed: Any


def _in_given_order(
    entries: Sequence[tuple[int, float]],
) -> tuple[tuple[tuple[int, float], ...], tuple[int, ...]]:
    return tuple(entries), tuple(range(len(entries)))


class PhaseBlock:
    """A run of diagonal and permutation ops: ``out(b) = c(b) exp(i sum_k theta_k F_k(b))
    psi(src(b))``.

    The ops are folded at construction, in order, into the output frame: a permutation re-indexes
    everything accumulated before it. Applying the block is one (P, Kb) @ (Kb, D) matmul, one
    ``exp(i .)`` and one gather-multiply; the gradients of all its slots are one
    (M P E, D) @ (D, Kb) matmul; shifting slot k multiplies by ``exp(i s F_k)``.

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
            if op.kind is OpKind.PERM:
                new_local = op.index_source[local]
                moved = basis.copy()
                for t, q in enumerate(op.targets):
                    moved &= ~(1 << q)
                    moved |= ((new_local >> t) & 1) << q
                src_full = np.where(match, moved, basis)
                const = np.where(match, op.phases[local], 1.0) * const[src_full]
                rows = [row[src_full] for row in rows]
                src = src[src_full]
            elif op.kind is OpKind.DIAG:
                const = const * np.where(match, op.diagonal[local], 1.0)
            elif op.kind is OpKind.PHASE:
                rows.append(np.where(match, op.mask[local].real, 0.0))
                slots.append(op.slot)
            elif op.kind is OpKind.ROT:  # diagonal generator: coeff_j = -i g_j, g_j = +-1
                rows.append(np.where(match, op.coefficients[local].imag * 0.5, 0.0))
                slots.append(op.slot)
            else:
                raise ValueError(f"op kind {op.kind.name} is not diagonal or a permutation")
        real = backend.real_dtype
        table = np.array(rows).reshape(len(rows), dim)
        self.slots = np.asarray(slots, dtype=np.int64)
        self.table = backend.asarray(table, dtype=real)
        self.table_t = backend.asarray(table.T.copy(), dtype=real)
        identity = np.array_equal(src, basis)
        self.src = None if identity else backend.asarray(src)
        self.inv_src = None if identity else backend.asarray(np.argsort(src))
        trivial = np.allclose(const, 1.0, atol=1e-15, rtol=0)
        self.const = None if trivial else backend.asarray(const, dtype=backend.dtype)
        self.dtype = backend.dtype

    @property
    def parametric(self) -> bool:
        return self.slots.size > 0

    def cost(self) -> float:
        """Passes over a row: the phases' ``exp(i .)`` and multiply (4 when parametric, else
        one multiply), plus one gather when the block permutes."""
        return (4.0 if self.parametric else 1.0) + (1.0 if self.src is not None else 0.0)

    def gradient_bytes(self) -> int:
        """No temporaries per output beyond the adjoint states themselves."""
        return 0

    def prep_bytes(self) -> tuple[int, int]:
        """Bytes per sample of ``prepare``'s result and of its temporaries: the (D,) phases;
        the angles' matmul and the four (D,) temporaries of ``exp(i .)``."""
        if not self.parametric:
            return 0, 0
        dim = self.table.shape[1]
        complex_bytes = np.dtype(self.dtype).itemsize
        return dim * complex_bytes, dim * (3 * complex_bytes // 2 + 8 + complex_bytes)

    def prepare(self, angles: Any, work: Buffers | None = None, key: str = "") -> Any:
        """(P, K) real angles -> (P, D) complex phases ``c exp(i theta F)``, or (1, D) / None
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
        xp.multiply(psi, _per_sample(prep, psi, 1), out=target)
        return target

    def apply_adjoint(self, psi: Any, out: Any, scratch: Any, prep: Any, inplace: bool) -> Any:
        """psi_in(src(b)) = conj(phase(b)) psi_out(b): multiply, then gather by src^-1."""
        xp = self.xp
        if prep is not None:
            if self.src is not None:
                target = scratch
            else:
                target = psi if inplace else out
            xp.multiply(psi, xp.conj(_per_sample(prep, psi, 1)), out=target)
            psi = target
        if self.src is not None:
            self.backend.gather(psi, self.inv_src, out)
            return out
        if psi is out or inplace:
            return psi
        out[...] = psi
        return out

    def plan_shifts(self, entries: Sequence[tuple[int, float]]) -> Shifts:
        """The (E, D) phase factors ``exp(i s_e F_local_e)`` of the branches."""
        xp = self.xp
        ordered, order = _in_given_order(entries)
        locals_ = np.array([local for local, _value in ordered])
        values = xp.asarray(np.array([value for _local, value in ordered]), dtype=self.table.dtype)
        factors = xp.empty((len(ordered), self.table.shape[1]), dtype=self.dtype)
        self.backend.cis(self.table[locals_] * values[:, None], factors)
        return Shifts(ordered, order, factors)

    def shift_rows(self, rows: Any, shifts: Shifts, prep: Any, base: Any) -> None:
        """Row block e = base * exp(i value_e F_local_e): each slot's phase function, in the
        output frame; one multiply for all branches."""
        rows[...] = base
        rows *= shifts.fixed[:, None, :]

    def gradient(self, lam: Any, phi: Any, prep: Any) -> Any:
        """d phi / d theta_k = i F_k phi, so the gradient is -2 Im(conj(lam) phi) @ F^T."""
        xp = self.xp
        prod = xp.conj(lam)
        prod *= _expand(phi, lam)
        return (prod.imag @ self.table_t) * -2.0


def _expand(phi: Any, lam: Any) -> Any:
    """(M, P, D) -> (M, P, 1, ..., 1, D) to broadcast against ``lam`` (M, P, *E, D)."""
    return phi.reshape(phi.shape[:-1] + (1,) * (lam.ndim - phi.ndim) + phi.shape[-1:])


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
    """Per-sample data of a layer for one pass.

    Attributes:
        qubit_factors: per layer qubit, its factors' (P|1, 2, 2) matrices in order.
        kron: per group, the (P|1, G, G) Kronecker factor (G = 2**size): real for a real layer
            except at the bottom of the register, where it acts on the complex amplitudes'
            last axis and is complex.
    """

    qubit_factors: dict[int, list[Any]]
    kron: list[Any]


class LayerBlock:
    """Single-qubit ops without controls: per sample, one 2 x 2 matrix per qubit (the product of
    its ops), applied as Kronecker factors over groups of up to :data:`MAX_GROUP_QUBITS` adjacent
    qubits with one batched matmul per group. Real layers (ry, h, x, z, ...) run on the real view
    of the complex states, a quarter of the arithmetic of a complex matmul.

    Args:
        ops: the layer's single-qubit ops, in an order valid per qubit.
        num_qubits: simulated qubits n.
        backend: array module and dtypes.
        max_group: qubits per Kronecker factor at most.
    """

    kind = LAYER

    def __init__(
        self,
        ops: Sequence[Op],
        num_qubits: int,
        backend: Backend,
        max_group: int = MAX_GROUP_QUBITS,
    ) -> None:
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
                real &= op.kind is OpKind.ROT and bool(np.all(np.abs(op.coefficients.imag) < 1e-15))
            else:
                matrix, position = _constant_matrix(op), -1
                real &= bool(np.all(np.abs(matrix.imag) < 1e-15))
            self.factors.setdefault(q, []).append(_Factor(op, matrix, position))
        self.slots = np.asarray(slots, dtype=np.int64)
        self.real = real
        self.dtype = backend.real_dtype if real else backend.dtype
        self.groups = _groups(sorted(self.factors), max_group)
        self._where: list[tuple[int, int]] = [(-1, -1)] * len(slots)  # slot -> (qubit, index)
        rot_slots, rot_gens, phase_slots, phase_masks = [], [], [], []
        for q, factors in self.factors.items():
            for i, factor in enumerate(factors):
                if factor.slot_position < 0:
                    continue
                self._where[factor.slot_position] = (q, i)
                op = factor.op
                if op.kind is OpKind.ROT:
                    generator = np.zeros((2, 2), dtype=complex)
                    generator[np.arange(2), op.index_source] = op.coefficients
                    rot_slots.append(factor.slot_position)
                    rot_gens.append(generator)
                else:
                    phase_slots.append(factor.slot_position)
                    phase_masks.append(op.mask.real)
        # all rotations of the layer at once: M = cos(t/2) I + sin(t/2) C, C[j, src j] = coeff_j
        self._rot_slots = np.asarray(rot_slots, dtype=np.int64)
        self._rot_gens = backend.asarray(
            (np.array(rot_gens).real if real else np.array(rot_gens)).reshape(-1, 2, 2),
            dtype=self.dtype,
        )
        self._phase_slots = np.asarray(phase_slots, dtype=np.int64)
        self._phase_masks = backend.asarray(np.array(phase_masks).reshape(-1, 2))
        self._constants = {
            (q, i): backend.asarray(m.real if real else m, dtype=self.dtype)[None]
            for q, factors in self.factors.items()
            for i, f in enumerate(factors)
            if f.slot_position < 0 and (m := f.matrix) is not None
        }
        self._slot_group = [  # slot position -> index of the Kronecker group of its qubit
            next(i for i, g in enumerate(self.groups) if g.low <= q < g.low + g.size)
            for q, _index in self._where
        ]
        self._fixed_generators = self._fixed_generator_tables()
        self._constant_prep: LayerPrep | None = None
        if not slots:
            self._constant_prep = self.prepare(None)

    @property
    def parametric(self) -> bool:
        return self.slots.size > 0

    def cost(self) -> float:
        """Passes over a row: one matmul per Kronecker group, a real one costing half."""
        return len(self.groups) * (1.0 if self.real else 2.0)

    def prep_bytes(self) -> tuple[int, int]:
        """Bytes per sample of ``prepare``'s result (the Kronecker factors, complex at worst)
        and of its temporaries (the outer products and their transposed copies)."""
        if not self.parametric:
            return 0, 0
        complex_bytes = np.dtype(self.backend.dtype).itemsize
        kron = sum(4**group.size for group in self.groups) * complex_bytes
        factors = 4 * sum(len(f) for f in self.factors.values()) * complex_bytes
        return kron + factors, 2 * kron

    def gradient_bytes(self) -> int:
        """Bytes per sample and output of ``gradient``'s temporaries: a group's cross matrix
        (before the sum over the qubits above it), its partial traces and products."""
        complex_bytes = np.dtype(self.backend.dtype).itemsize
        n = self.num_qubits

        def cross(group: _Group) -> int:  # a middle group's product keeps the axis above it
            middle = not self._bottom(group) and group.low + group.size < n
            return int(4**group.size * (2 ** (n - group.low - group.size) if middle else 1))

        return 3 * complex_bytes * max(cross(group) for group in self.groups)

    # ---- per-sample matrices -----------------------------------------------------------------
    def prepare(self, angles: Any, work: Buffers | None = None, key: str = "") -> LayerPrep:
        if self._constant_prep is not None:
            return self._constant_prep
        slot_mats = self._slot_matrices(angles)
        per_qubit: dict[int, list[Any]] = {}
        mats: dict[int, Any] = {}
        for q, factors in self.factors.items():
            values = [
                slot_mats[f.slot_position] if f.slot_position >= 0 else self._constants[(q, i)]
                for i, f in enumerate(factors)
            ]
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

    def _slot_matrices(self, angles: Any) -> dict[int, Any]:
        """Slot position -> (P, 2, 2) matrix of its op, all rotations in one expression."""
        xp = self.xp
        mats: dict[int, Any] = {}
        if self._rot_slots.size:
            half = angles[:, self.slots[self._rot_slots]] * 0.5  # (P, F)
            cos = xp.cos(half).astype(self.dtype, copy=False)[..., None, None]
            sin = xp.sin(half).astype(self.dtype, copy=False)[..., None, None]
            both = cos * xp.eye(2, dtype=self.dtype) + sin * self._rot_gens  # (P, F, 2, 2)
            for f, position in enumerate(self._rot_slots):
                mats[int(position)] = both[:, f]
        if self._phase_slots.size:
            theta = angles[:, self.slots[self._phase_slots]]  # (P, F)
            factor = xp.exp(1j * theta).astype(self.dtype, copy=False)
            rows = theta.shape[0]
            for f, position in enumerate(self._phase_slots):
                matrix = xp.zeros((rows, 2, 2), dtype=self.dtype)
                for j in range(2):
                    matrix[:, j, j] = factor[:, f] if self._phase_masks[f, j] else 1.0
                mats[int(position)] = matrix
        return mats

    def _bottom(self, group: _Group) -> bool:
        """Whether the group holds qubit 0 but not every qubit: its axis is the last one of
        the amplitudes, where the real view of complex states interleaves re/im."""
        return group.low == 0 and group.size < self.num_qubits

    # ---- apply --------------------------------------------------------------------------------
    def apply(self, psi: Any, out: Any, scratch: Any, prep: LayerPrep, inplace: bool) -> Any:
        return self._run(psi, out, scratch, prep.kron, adjoint=False)

    def apply_adjoint(
        self, psi: Any, out: Any, scratch: Any, prep: LayerPrep, inplace: bool
    ) -> Any:
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

    def _apply_group(
        self, group: _Group, k: Any, psi: Any, out: Any, per_sample: bool = True
    ) -> None:
        """out = K on the group's qubits of psi (M, P, *E, D); K is (P|1, G, G) per sample, or
        already shaped (M|1, P|1, G, G) against psi's leading axes when not ``per_sample``."""
        xp = self.xp
        n, low, size = self.num_qubits, group.low, group.size
        g = 2**size
        lead = psi.shape[:-1]
        above, below = 2 ** (n - low - size), 2**low
        kb = _per_sample(k, psi, 1) if per_sample else k  # (1|M, P|1, 1.., G, G)
        if self._bottom(group):  # the amplitudes' last axis: out = psi @ K^T
            view = psi.reshape(lead + (above, g))
            xp.matmul(view, kb.swapaxes(-1, -2), out=out.reshape(lead + (above, g)))
            return
        real = self.real  # a real K acts on the real view, (re, im) riding along
        width = below * (2 if real else 1)
        source = psi.view(k.dtype) if real else psi
        target = out.view(k.dtype) if real else out
        if above == 1:
            xp.matmul(kb, source.reshape(lead + (g, width)), out=target.reshape(lead + (g, width)))
        else:
            xp.matmul(
                kb[..., None, :, :],
                source.reshape(lead + (above, g, width)),
                out=target.reshape(lead + (above, g, width)),
            )

    def plan_shifts(self, entries: Sequence[tuple[int, float]]) -> Shifts:
        """Entries ordered by the Kronecker group of their qubit, one run per group; a run's
        (E, 1, G, G) factors are computed here when every slot's op is the last on its qubit
        (a fixed matrix), else per chunk from the samples' matrices."""
        order = tuple(sorted(range(len(entries)), key=lambda e: self._slot_group[entries[e][0]]))
        ordered = tuple(entries[e] for e in order)
        runs = []
        start = 0
        while start < len(ordered):
            key = self._slot_group[ordered[start][0]]
            stop = start + 1
            while stop < len(ordered) and self._slot_group[ordered[stop][0]] == key:
                stop += 1
            run = ordered[start:stop]
            fixed = all(self._is_last(local) for local, _value in run)
            kron = self._shift_kron(self.groups[key], run, None) if fixed else None
            runs.append((start, stop, self.groups[key], kron))
            start = stop
        return Shifts(ordered, order, tuple(runs))

    def shift_rows(self, rows: Any, shifts: Shifts, prep: LayerPrep, base: Any) -> None:
        """Shifting a slot's angle by s multiplies the output by ``A R(s) A^dagger`` on its
        qubit (A: the qubit's ops after the slot's, per sample; R(s): its op at angle s). The
        branches of one Kronecker group take one batched matmul with
        ``I ⊗ A R(s) A^dagger ⊗ I`` per branch."""
        xp = self.xp
        rows[...] = base
        for start, stop, group, fixed in shifts.fixed:
            kron = (
                fixed
                if fixed is not None
                else self._shift_kron(group, shifts.entries[start:stop], prep)
            )
            sub = rows[start:stop]
            result = xp.empty_like(sub)
            self._apply_group(group, kron, sub, result, per_sample=False)
            sub[...] = result

    def _is_last(self, local: int) -> bool:
        q, index = self._where[local]
        return index == len(self.factors[q]) - 1

    def _shift_kron(
        self, group: _Group, entries: Sequence[tuple[int, float]], prep: LayerPrep | None
    ) -> Any:
        """(E, P|1, G, G): per entry, its shift on its qubit, the identity on the group's
        other qubits; real for a real layer except at the bottom of the register. ``prep`` is
        needed only for slots with ops after theirs on the qubit."""
        xp = self.xp
        matrices = [self._shift_matrix(local, value, prep) for local, value in entries]
        rows = max(m.shape[0] for m in matrices)
        g = 2**group.size
        dtype = self.dtype if not self._bottom(group) else self.backend.dtype
        out = xp.zeros((len(entries), rows, g, g), dtype=dtype)
        for e, ((local, _value), matrix) in enumerate(zip(entries, matrices, strict=True)):
            q, _index = self._where[local]
            t = q - group.low
            high, low = 2 ** (group.size - 1 - t), 2**t
            eye_high = xp.eye(high, dtype=dtype)
            eye_low = xp.eye(low, dtype=dtype)
            kron = (
                eye_high[None, :, None, None, :, None, None]
                * matrix.astype(dtype, copy=False)[:, None, :, None, None, :, None]
                * eye_low[None, None, None, :, None, None, :]
            )
            out[e] = kron.reshape(matrix.shape[0], g, g)
        return out

    def _shift_matrix(self, local: int, value: float, prep: LayerPrep | None) -> Any:
        """(P|1, 2, 2) ``A R(value) A^dagger`` of the slot's op on its qubit."""
        xp = self.xp
        q, index = self._where[local]
        op = self.factors[q][index].op
        shift = np.zeros((2, 2), dtype=complex)
        if op.kind is OpKind.ROT:
            shift[np.arange(2), op.index_source] = np.sin(value / 2) * op.coefficients
            shift += np.cos(value / 2) * np.eye(2)
        else:
            shift[np.arange(2), np.arange(2)] = np.where(
                op.mask.real > 0.5, np.exp(1j * value), 1.0
            )
        matrix = xp.asarray(shift.real if self.real else shift, dtype=self.dtype)[None]
        after = prep.qubit_factors[q][index + 1 :] if prep is not None else ()
        if after:
            outer = after[0]
            for value_matrix in after[1:]:
                outer = value_matrix @ outer
            matrix = outer @ matrix @ _dagger(xp, outer)
        return matrix

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
        for group, (positions, fixed) in zip(self.groups, self._fixed_generators, strict=True):
            cross = self._cross(group, lam, phi, conj_phi)
            g = 2**group.size
            if positions:  # slots whose op is the last on its qubit: one product for all
                flat = cross.reshape(cross.shape[:-2] + (g * g,)) @ fixed
                grad[..., positions] = 2.0 * (flat.real if xp.iscomplexobj(flat) else flat)
            for t in range(group.size):
                q = group.low + t
                factors = self.factors[q]
                if all(f.slot_position < 0 or f is factors[-1] for f in factors):
                    continue
                reduced = _partial_trace(xp, cross, group.size, t)  # (M, P, *E, 2, 2)
                after = None  # product of the factors after the current one
                for f, value in zip(
                    reversed(factors), reversed(prep.qubit_factors[q]), strict=True
                ):
                    if f.slot_position >= 0 and after is not None:
                        h = after @ self._generator(f) @ _dagger(xp, after)
                        hb = _per_sample(h, reduced, 2)
                        grad[..., f.slot_position] = 2.0 * xp.sum(
                            (hb * reduced).real, axis=(-1, -2)
                        )
                    after = value if after is None else after @ value
        return grad

    def _fixed_generator_tables(self) -> list[tuple[list[int], Any]]:
        """Per group: the slots whose op is the last on its qubit (their output-frame
        generator ``dg g^-1`` is fixed) and a (G*G, n) matrix whose column k is the flattened
        ``I ⊗ H_k ⊗ I``, so that their gradients are ``2 Re(C_flat @ matrix)``."""
        tables = []
        for group in self.groups:
            positions, columns = [], []
            for t in range(group.size):
                factors = self.factors[group.low + t]
                last = factors[-1]
                if last.slot_position < 0:
                    continue
                h = self.backend.to_host(self._generator(last))[0]
                full = np.kron(np.kron(np.eye(2 ** (group.size - 1 - t)), h), np.eye(2**t))
                positions.append(last.slot_position)
                columns.append(full.reshape(-1))
            dtype = self.backend.real_dtype if self.real else self.backend.dtype
            matrix = np.array(columns).T if columns else np.zeros((4**group.size, 0))
            tables.append(
                (positions, self.backend.asarray(matrix.real if self.real else matrix, dtype=dtype))
            )
        return tables

    def _cross(self, group: _Group, lam: Any, phi: Any, conj_phi: Any | None) -> Any:
        """The group's cross matrix (M, P, *E, G, G): complex, or its real part for a real
        layer. ``C = conj(D)`` with ``D[i, j] = sum_rest lam[i, rest] conj(phi[j, rest])``, so
        only ``phi`` (no output axis) is ever conjugated."""
        xp = self.xp
        n, low, size = self.num_qubits, group.low, group.size
        g = 2**size
        above, below = 2 ** (n - low - size), 2**low
        lead = lam.shape[:-1]
        if self._bottom(group):  # sum over the leading axis
            conj_b = _expand(conj_phi, lam)
            lam_v = lam.reshape(lead + (above, g))
            product = lam_v.swapaxes(-1, -2) @ conj_b.reshape(conj_b.shape[:-1] + (above, g))
            return product.real if self.real else xp.conj(product)
        phi_b = _expand(phi if self.real else conj_phi, lam)
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
        if op.kind is OpKind.ROT:
            h[np.arange(2), op.index_source] = 0.5 * op.coefficients
        else:
            h[np.arange(2), np.arange(2)] = 1j * op.mask.real
        return self.xp.asarray(h, dtype=self.backend.dtype)[None]


def _constant_matrix(op: Op) -> np.ndarray:
    """The 2 x 2 matrix of a constant single-qubit op."""
    if op.kind is OpKind.DENSE:
        return np.asarray(op.matrix, dtype=complex)
    if op.kind is OpKind.DIAG:
        return np.diag(op.diagonal).astype(complex)
    if op.kind is OpKind.PERM:
        matrix = np.zeros((2, 2), dtype=complex)
        matrix[np.arange(2), op.index_source] = op.phases
        return matrix
    raise ValueError(f"op kind {op.kind.name} is not constant")


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
    """Per-sample Kronecker product: (P|1, m, m) x (P|1, p, p) -> (P|1, m p, m p), ``a`` on
    the high bits. The product runs along b's p*p entries (contiguous), then one transposing
    copy."""
    rows = max(a.shape[0], b.shape[0])
    m, p = a.shape[-1], b.shape[-1]
    outer = a.reshape(a.shape[0], m * m, 1) * b.reshape(b.shape[0], 1, p * p)
    return outer.reshape(rows, m, m, p, p).transpose(0, 1, 3, 2, 4).reshape(rows, m * p, m * p)


def _dagger(xp: Any, matrix: Any) -> Any:
    """Per-sample conjugate transpose (a view for real matrices)."""
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
    """One op on its own, with the gate-level kernels of :mod:`gpuqnn._sim.gates`."""

    kind = GATE

    def __init__(self, op: Op, num_qubits: int, backend: Backend) -> None:
        self.xp = backend.xp
        self.backend = backend
        self.op = op
        self.view: OpView = make_view(op, num_qubits)
        self.inverse = None if op.slot >= 0 else inverse_op(op)
        self.slots = np.asarray([op.slot] if op.slot >= 0 else [], dtype=np.int64)

    @property
    def parametric(self) -> bool:
        return self.slots.size > 0

    def cost(self) -> float:
        """Passes over a row: one gate-level update of the touched sub-blocks."""
        return 1.5

    def gradient_bytes(self) -> int:
        """No temporaries per output beyond the adjoint states themselves."""
        return 0

    def prep_bytes(self) -> tuple[int, int]:
        """Bytes per sample of ``prepare``'s result (one angle) and of its temporaries."""
        return (8, 0) if self.parametric else (0, 0)

    def prepare(self, angles: Any, work: Buffers | None = None, key: str = "") -> Any:
        """(1, P) angles of the op's slot, or None."""
        if not self.parametric:
            return None
        return angles[:, self.op.slot].astype(self.backend.real_dtype, copy=False)[None]

    def apply(self, psi: Any, out: Any, scratch: Any, prep: Any, inplace: bool) -> Any:
        target = psi if inplace else out
        if target is not psi:
            target[...] = psi
        apply_op(self.xp, self.op, self.view, target, prep)
        return target

    def apply_adjoint(self, psi: Any, out: Any, scratch: Any, prep: Any, inplace: bool) -> Any:
        target = psi if inplace else out
        if target is not psi:
            target[...] = psi
        if self.parametric:
            apply_op(self.xp, self.op, self.view, target, -prep)
        else:
            assert self.inverse is not None, "a constant gate keeps its inverse"
            apply_op(self.xp, self.inverse, self.view, target, None)
        return target

    def plan_shifts(self, entries: Sequence[tuple[int, float]]) -> Shifts:
        """The (E, 1) angles of the branches."""
        ordered, order = _in_given_order(entries)
        theta = self.xp.asarray(
            np.array([value for _local, value in ordered])[:, None], dtype=self.backend.real_dtype
        )
        return Shifts(ordered, order, theta)

    def shift_rows(self, rows: Any, shifts: Shifts, prep: Any, base: Any) -> None:
        """Row block e = the op at angle value_e applied to base: U(theta + s) = U(s) U(theta);
        one call for all branches (one angle per row block)."""
        rows[...] = base
        apply_op(self.xp, self.op, self.view, rows, shifts.fixed)

    def gradient(self, lam: Any, phi: Any, prep: Any) -> Any:
        overlap = generator_overlap(self.xp, self.op, self.view, lam, phi)
        return (2.0 * overlap.real)[..., None]


def build_blocks(
    program: Program, specs: Sequence[BlockSpec], backend: Backend
) -> list[PhaseBlock | LayerBlock | GateBlock | KrausBlock]:
    """The run-time blocks of ``specs`` (from :func:`gpuqnn._sim.fusion.fuse`) for ``backend``."""
    blocks: list[PhaseBlock | LayerBlock | GateBlock | KrausBlock] = []
    n = program.num_qubits
    for spec in specs:
        ops = [program.ops[i] for i in spec.ops]
        if spec.kind == PHASE:
            blocks.append(PhaseBlock(ops, n, backend))
        elif spec.kind == LAYER:
            blocks.append(LayerBlock(ops, n, backend))
        elif ops[0].kind is OpKind.CHANNEL:
            blocks.append(KrausBlock(ops[0], n, backend))
        else:
            blocks.append(GateBlock(ops[0], n, backend))
    return blocks

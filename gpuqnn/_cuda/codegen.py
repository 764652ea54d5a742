"""Generate CUDA C++ specialised to one program, readout and dtype: every op's kind, targets,
control masks and constants become literals, so the kernels have no dispatch switch and load
no op tables. NVRTC compiles the source at run time (:mod:`.launch`); a C++ compiler builds the
same source for the host with ``-DGPUQNN_HOST`` (:mod:`.host`), where tests check it.

Two kernels, each one block per row with the row's state in shared memory:

- ``gqs_forward``: the outputs of every (shift block, sample) row, as the generic fused kernel
  (forward passes and fused parameter shift);
- ``gqs_adjoint``: the derivatives of the outputs by a chosen list of slots, per sample: the
  forward sweep, then for each output (or once, for a vector-Jacobian product's cotangent) the
  adjoint state and a backward sweep that un-applies every pass to the state and the adjoint
  state and accumulates each slot's derivative. It writes only the (B, O or 1, S) derivatives.

Every row computes each slot's ``cos``/``sin`` once (not per op and thread). Phase ops gather
into runs applied in one pass (:mod:`.passes`). Per-thread derivative partials are summed per
warp with shuffles and per block once per output sweep.

The source includes ``statevector.cuh`` (its helpers and host emulation) with
``GQ_SPECIALISED`` defined. Shapes: B samples, K slots, S differentiated slots, O outputs,
D = 2**n amplitudes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._compile import Op, OpKind
from .._sim.readout import PauliReadout
from .angle_code import AngleCode
from .layout import (
    REGISTER_BUDGET,
    REGISTERS_PER_SM,
    Layout,
    adjoint_shared_bytes,
    default_threads,
    shared_layout,
    swizzle_bits,
    warps,
)
from .passes import MAX_KERNEL_PASSES, Pass, PhaseRun, pass_spans
from .source import check_kernel_dtype, kernel_source
from .tables import KernelTables

_CHUNK = 4  # amplitudes per thread held at once by a phase run's backward pass

FORWARD_KERNEL = "gqs_forward"
ADJOINT_KERNEL = "gqs_adjoint"

FORWARD_SIGNATURE = ("ptr", "i64", "ptr", "ptr", "i64", "ptr", "ptr", "ptr")
"""``gqs_forward(base, batch, shift_slot, shift_value, shifts, prog, rcoef, out)``."""
ADJOINT_SIGNATURE = ("ptr", "i64", "ptr", "ptr", "ptr")
"""``gqs_adjoint(base, batch, cotangent, pidx, out)``."""
PARAMETER_ARGS: tuple[tuple[str, str], ...] = (
    ("const double* GQ_RESTRICT", "inputs"),
    ("const double* GQ_RESTRICT", "weights"),
    ("long long", "nin"),
)
"""The arguments that replace ``base`` in the kernels that read parameter rows: ``inputs``
(B, nin) float64, ``weights`` (P - nin,) float64 shared by every sample, ``nin``."""
FORWARD_PARAMETER_SIGNATURE = ("ptr", "ptr", "i64", *FORWARD_SIGNATURE[1:])
"""``gqs_forward(inputs, weights, nin, batch, shift_slot, shift_value, shifts, prog, rcoef,
out)``."""
ANGLES_KERNEL = "gqs_angles"
ANGLES_SIGNATURE = ("ptr", "ptr", "i64", "i64", "ptr")
"""``gqs_angles(inputs, weights, nin, batch, out (B, K) float64)``."""
ANGLES_THREADS = 64
ADJOINT_PARAMETER_SIGNATURE = ("ptr", "ptr", "i64", *ADJOINT_SIGNATURE[1:])
"""``gqs_adjoint(inputs, weights, nin, batch, cotangent, pidx, out)``: out (B, O or 1, J)."""

FORWARD_PART_KERNEL = "gqs_forward_part"
ADJOINT_PART_KERNEL = "gqs_adjoint_part"
FORWARD_PART_SIGNATURE = (*FORWARD_SIGNATURE, "ptr")
"""``gqs_forward_part(..., out, state)``: a chained forward kernel; ``state`` (R, D) complex
holds each row's state between the chain's kernels."""
ADJOINT_PART_SIGNATURE = (*ADJOINT_SIGNATURE, "ptr", "ptr", "ptr")
"""``gqs_adjoint_part(..., out, state, psi_g, lam_g)``: a chained adjoint kernel; ``state``
(B, D) the forward parts' state, ``psi_g``/``lam_g`` (B * O, D) complex each sample's state
and adjoint state per output between the backward parts."""


@dataclass(frozen=True)
class GeneratedKernel:
    """A generated kernel: its source, name, launch shape and parameter kinds.

    Attributes:
        source: the whole CUDA C++ translation unit.
        name: the ``extern "C"`` kernel name.
        threads: threads per block the code is written for.
        shared: dynamic shared memory per block, in bytes.
        signature: parameter kinds (``ptr``, ``i32``, ``i64``) in order.
        key: a hash of the source (the compiled module's cache key).
        passes: passes over the state per forward sweep of the program (all of a chain's
            kernels together).
        keeps_final: (adjoint) the final state is kept in shared memory between outputs rather
            than recomputed.
        span: below.
    """

    source: str
    name: str
    threads: int
    shared: int
    signature: tuple[str, ...]
    key: str
    passes: int
    keeps_final: bool = False
    span: tuple[int, int] | None = None
    """(part of a chain) the passes ``[start, stop)`` this kernel sweeps; None: all."""


def _real(dtype: np.dtype) -> str:
    return "float" if dtype == np.complex64 else "double"


def _lit(value: float, real: str) -> str:
    value = float(value)
    if real == "float":
        text = repr(float(np.float32(value)))
        return f"{text}f" if ("." in text or "e" in text) else f"{text}.0f"
    text = repr(value)
    return text if ("." in text or "e" in text or "n" in text) else f"{text}.0"


def _cmul_lit(coeff: complex, var: str, real: str) -> tuple[str, str] | None:
    """(re, im) C expressions of ``coeff * var`` for a complex literal ``coeff`` (None if 0)."""
    cr, ci = float(np.real(coeff)), float(np.imag(coeff))
    if cr == 0.0 and ci == 0.0:
        return None

    def scaled(c: float, x: str) -> str | None:
        if c == 0.0:
            return None
        if c == 1.0:
            return x
        if c == -1.0:
            return f"-{x}"
        return f"{_lit(c, real)} * {x}"

    re_terms = [t for t in (scaled(cr, f"{var}.re"), scaled(-ci, f"{var}.im")) if t]
    im_terms = [t for t in (scaled(cr, f"{var}.im"), scaled(ci, f"{var}.re")) if t]
    return _join(re_terms), _join(im_terms)


def _join(terms: Sequence[str]) -> str:
    if not terms:
        return "(real)0"
    text = terms[0]
    for t in terms[1:]:
        text += f" - {t[1:]}" if t.startswith("-") else f" + {t}"
    return text


def _spread(positions: Sequence[int], var: str) -> str:
    """C expression: ``var`` with a zero bit inserted at each of ``positions`` (ascending)."""
    expr = var
    for p in sorted(positions):
        low = (1 << p) - 1
        expr = f"((({expr}) >> {p}) << {p + 1} | (({expr}) & {low}))"
    return expr


def _offsets(op: Op) -> list[int]:
    """Amplitude offset of each of the op's 2**k local indices."""
    out = []
    for j in range(1 << len(op.targets)):
        off = 0
        for t, q in enumerate(op.targets):
            off |= ((j >> t) & 1) << int(q)
        out.append(off)
    return out


def _cval(op: Op) -> int:
    value = 0
    for i, q in enumerate(op.controls):
        value |= ((op.ctrl_state >> i) & 1) << int(q)
    return value


def _cmask(op: Op) -> int:
    value = 0
    for q in op.controls:
        value |= 1 << int(q)
    return value


class _Code:
    """Lines of C with indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def __call__(self, line: str) -> None:
        self.lines.append("  " * self.depth + line)

    def open(self, line: str) -> None:
        self(line + " {")
        self.depth += 1

    def close(self, tail: str = "") -> None:
        self.depth -= 1
        self("}" + tail)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class _Generator:
    """Writes the kernel bodies of one program, readout and dtype."""

    def __init__(
        self,
        kp: KernelTables,
        dtype: np.dtype,
        threads: int,
        slots: Sequence[int] = (),
        vjp: bool = False,
    ) -> None:
        self.kp = kp
        self.real = _real(dtype)
        self.threads = threads
        self.warps = warps(threads)
        self.dim = kp.dim
        self.passes = kp.passes
        self.slots = list(slots)
        self.position = {int(s): i for i, s in enumerate(self.slots)}
        self.vjp = vjp
        self.code = _Code()
        self.derivative_table = False  # the chain rule's derivatives after the warp cells
        self.table_at = 0
        self.entries: dict[tuple[int, int], int] = {}  # (slot, column) -> table entry

    # ---- shared memory --------------------------------------------------------------------
    def pointers(self, layout: Layout, names: Sequence[str]) -> None:
        """Each segment of ``names`` as a pointer into the shared memory; the states (``psi``,
        ``lam``, ``final``) as accessors of the swizzled layout (:func:`.layout.swizzle`):
        ``psi[b]`` is amplitude b wherever it lives."""
        c = self.code
        bits = swizzle_bits(16 if self.real == "double" else 8)
        types = {
            "psi": "cplx",
            "lam": "cplx",
            "final": "cplx",
            "theta": "unsigned int" if self.real == "float" else "real",
            "half": "cplx",
            "full": "cplx",
            "cot": "double",
            "cells": "double",
            "scratch": "double",
        }
        for name in names:
            pointer = f"reinterpret_cast<{types[name]}*>(smem + {getattr(layout, name)})"
            if name in ("psi", "lam", "final"):
                c(f"const gqs_swizzled<cplx, {bits}> {name}{{{pointer}}};")
            else:
                c(f"{types[name]}* GQ_RESTRICT {name} = {pointer};")

    # ---- per-row angles ---------------------------------------------------------------------
    def angles(self, shifted: bool, code: AngleCode | None = None) -> None:
        """Each slot's angle, cos and sin of the row: read from ``base`` (B, K), or with
        ``code`` computed from the sample's parameters."""
        c = self.code
        k = self.kp.num_slots
        if k == 0:
            return
        c.open(f"GQ_BLOCK_FOR(k, {k})")
        if code is None:
            c(f"double a = base[sample * {k} + k];")
        else:
            c("double a = gqs_slot_angle((int)k, inputs, weights, nin, sample);")
            if self.derivative_table:
                table = f"cells + {self.table_at}"
                c(f"gqs_slot_derivatives((int)k, inputs, weights, nin, sample, {table});")
        if shifted:
            c("if (shift_slot[shift] == (int)k) a += shift_value[shift];")
        if self.real == "float":  # fixed-point turns: a run's sum is exact modulo 2 pi
            c("theta[k] = gqs_turns(a);")
        else:
            c("theta[k] = (real)a;")
        c("double s, co;  // in double whatever the dtype: once per slot and row")
        c("gqs_sincos(a * 0.5, &s, &co);")
        c("half[k] = gq_make<real>((real)co, (real)s);")
        c("gqs_sincos(a, &s, &co);")
        c("full[k] = gq_make<real>((real)co, (real)s);")
        c.close()

    # ---- passes -----------------------------------------------------------------------------
    def init_state(self) -> None:
        one = "gq_make<real>(i == 0 ? (real)1 : (real)0, (real)0)"
        self.code(f"GQ_BLOCK_FOR(i, {self.dim}) psi[i] = {one};")

    def forward_sweep(self, span: tuple[int, int] | None = None) -> None:
        start, stop = span or (0, len(self.passes))
        for p in self.passes[start:stop]:
            self.apply(p, ["psi"], inverse=False, derivative=False)
            self.code("GQ_SYNC();")

    def first_differentiated(self) -> int:
        """The first pass with a differentiated slot (the backward sweep stops there)."""
        return min(i for i, p in enumerate(self.passes) if self._differentiated(p))

    def backward_sweep(self, span: tuple[int, int] | None = None) -> None:
        """Derivatives and un-apply, from the last pass of ``span`` (default: all passes) to
        its first, or to the first differentiated pass (not un-applied: nothing needs it)."""
        start, stop = span or (0, len(self.passes))
        first = self.first_differentiated()
        for i in range(stop - 1, max(start, first) - 1, -1):
            p = self.passes[i]
            self.apply(p, ["psi", "lam"] if i > first else [], inverse=True, derivative=True)
            self.code("GQ_SYNC();")

    def copy_state(self, target: str, source: str) -> None:
        """``target[i] = source[i]`` over the row's amplitudes (either may be global memory
        indexed by an expression: ``state + row * D``), one amplitude per thread in flight
        (an unrolled copy holds several, and the sweep after it then spills)."""
        c = self.code
        c.open("GQ_EACH_THREAD(t)")
        c("GQS_NO_UNROLL")
        c(f"for (int i = t; i < {self.dim}; i += {self.threads}) ({target})[i] = ({source})[i];")
        c.close()

    def _differentiated(self, p: Pass) -> bool:
        return any(op.slot >= 0 and int(op.slot) in self.position for op in p.ops)

    def apply(self, p: Pass, states: list[str], inverse: bool, derivative: bool) -> None:
        c = self.code
        c.open("GQ_EACH_THREAD(t)")
        if isinstance(p, PhaseRun):
            self._phase_run(p, states, inverse, derivative)
        else:
            if derivative and self._differentiated(p):
                c.open("")
                self._derivative(p.op)
                c.close()
            for name in states:
                c.open("")
                self._op(p.op, name, inverse)
                c.close()
        c.close()

    # ---- one op -------------------------------------------------------------------------------
    def _items(self, op: Op) -> tuple[list[int], int]:
        positions = sorted(int(q) for q in op.targets + op.controls)
        return positions, self.dim >> len(positions)

    def _loop(self, op: Op) -> None:
        positions, items = self._items(op)
        c = self.code
        # an 8-amplitude group in flight is 32 registers in complex128: one item at a time
        c("GQS_NO_UNROLL" if len(op.targets) >= 3 else "GQS_ITEM_UNROLL")
        c.open(f"for (int i = t; i < {items}; i += {self.threads})")
        cval = _cval(op)
        spread = _spread(positions, "i")
        c(f"const int b = {spread} | {cval};" if cval else f"const int b = {spread};")
        c("(void)b;")

    def _op(self, op: Op, name: str, inverse: bool) -> None:
        c = self.code
        kind = op.kind
        k = len(op.targets)
        offs = _offsets(op)
        dim = 1 << k
        if kind is OpKind.ROT:
            c(f"const real rc = half[{op.slot}].re;")
            c(f"const real rs = {'-' if inverse else ''}half[{op.slot}].im;")
        if kind is OpKind.PHASE:
            c(f"const gq_cplx<real> ph = full[{op.slot}];")
            c("(void)ph;")
        self._loop(op)
        if kind is OpKind.PHASE:
            mask = np.asarray(op.data).real
            sign = "-" if inverse else ""
            for j in range(dim):
                if mask[j] != 0:
                    c(
                        f"{name}[b | {offs[j]}] = gq_mul<real>(gq_make<real>(ph.re, {sign}ph.im), "
                        f"{name}[b | {offs[j]}]);"
                    )
        elif kind is OpKind.DIAG:
            diag = np.asarray(op.data, dtype=complex)
            for j in range(dim):
                d = np.conj(diag[j]) if inverse else diag[j]
                if d == 1:
                    continue
                c(f"{{ const cplx v = {name}[b | {offs[j]}];")
                re, im = _cmul_lit(d, "v", self.real) or ("(real)0", "(real)0")
                c(f"  {name}[b | {offs[j]}] = gq_make<real>({re}, {im}); }}")
        else:
            for j in range(dim):
                c(f"const cplx a{j} = {name}[b | {offs[j]}];")
            for j in range(dim):
                terms = self._row(op, j, inverse)
                re = _join([t[0] for t in terms])
                im = _join([t[1] for t in terms])
                c(f"{name}[b | {offs[j]}] = gq_make<real>({re}, {im});")
        c.close()

    def _row(self, op: Op, j: int, inverse: bool) -> list[tuple[str, str]]:
        """(re, im) terms of output amplitude j of the op (or its inverse) from a0..a{2^k-1}."""
        kind = op.kind
        dim = 1 << len(op.targets)
        terms: list[tuple[str, str]] = []

        def add(coeff: complex, var: str) -> None:
            expr = _cmul_lit(coeff, var, self.real)
            if expr is not None:
                terms.append(expr)

        if kind is OpKind.DENSE:
            matrix = np.asarray(op.data, dtype=complex)
            matrix = matrix.conj().T if inverse else matrix
            for i in range(dim):
                add(matrix[j, i], f"a{i}")
        elif kind is OpKind.PERM:
            source = [int(s) for s in op.index_source]
            phases = np.asarray(op.data, dtype=complex)
            if inverse:  # out[source[m]] = conj(phase[m]) a[m]
                m = source.index(j)
                add(np.conj(phases[m]), f"a{m}")
            else:
                add(phases[j], f"a{source[j]}")
        else:  # ROT: c a_j + s coeff_j a_source(j)
            coeff = complex(np.asarray(op.data)[j])
            src = int(op.index_source[j])
            terms.append((f"rc * a{j}.re", f"rc * a{j}.im"))
            scaled = _cmul_lit(coeff, f"a{src}", self.real)
            if scaled is not None:
                terms.append((f"rs * ({scaled[0]})", f"rs * ({scaled[1]})"))
        return terms

    def _derivative(self, op: Op) -> None:
        """This thread's part of 2 Re <lam| d U / d theta |psi_before>, from psi and lam after
        the op, added to its slot's warp cell."""
        c = self.code
        offs = _offsets(op)
        dim = 1 << len(op.targets)
        c("double acc = 0.0;")
        self._loop(op)
        if op.kind is OpKind.PHASE:  # -2 Im sum_selected conj(lam) psi
            mask = np.asarray(op.data).real
            for j in range(dim):
                if mask[j] != 0:
                    c(f"{{ const cplx p = psi[b | {offs[j]}]; const cplx l = lam[b | {offs[j]}];")
                    c("  acc -= 2.0 * ((double)l.re * p.im - (double)l.im * p.re); }")
        else:  # ROT: Re <lam| C psi>, (C psi)_j = coeff_j psi_source(j)
            for j in range(dim):
                coeff = complex(np.asarray(op.data)[j])
                src = int(op.index_source[j])
                expr = _cmul_lit(coeff, "p", self.real)
                if expr is None:
                    continue
                c(f"{{ const cplx p = psi[b | {offs[src]}]; const cplx l = lam[b | {offs[j]}];")
                c(f"  acc += (double)l.re * ({expr[0]}) + (double)l.im * ({expr[1]}); }}")
        c.close()
        pos = self.position[int(op.slot)]
        c(f"gq_warp_add(ctx, cells + {pos * self.warps}, t, acc);")

    # ---- phase runs ---------------------------------------------------------------------------
    def _selected(self, op: Op, b: str) -> str:
        """C condition: amplitude ``b`` is phased by ``op``."""
        conds = []
        if op.controls:
            conds.append(f"(({b}) & {_cmask(op)}) == {_cval(op)}")
        mask = [int(v != 0) for v in np.asarray(op.data).real]
        targets = [int(q) for q in op.targets]
        if all(mask):
            pass
        elif len(targets) == 1 and mask == [0, 1]:
            conds.append(f"(({b}) & {1 << targets[0]}) != 0")
        elif len(targets) == 2 and mask == [0, 1, 1, 0]:
            # one AND and a popcount per op: no per-qubit bits that the compiler would share
            # between the run's ops and keep live in registers
            both = (1 << targets[0]) | (1 << targets[1])
            conds.append(f"gq_popc((unsigned long long)(({b}) & {both})) & 1")
        else:
            bits = sum(1 << j for j, v in enumerate(mask) if v)
            index = " | ".join(f"(((({b}) >> {q}) & 1) << {t})" for t, q in enumerate(targets))
            conds.append(f"({bits}u >> ({index})) & 1u")
        return " && ".join(f"({cond})" for cond in conds) if conds else "true"

    def _run_angle(self, run: PhaseRun, b: str) -> None:
        c = self.code
        c("unsigned int ang = 0u;" if self.real == "float" else "real ang = (real)0;")
        for op in run.ops:
            c(f"if ({self._selected(op, b)}) ang += theta[{op.slot}];")

    def _phase_run(self, run: PhaseRun, states: list[str], inverse: bool, derivative: bool) -> None:
        c = self.code
        per_thread = max(1, self.dim // self.threads)
        guard = self.dim < self.threads
        if derivative and self._differentiated(run):
            chunk = min(per_thread, _CHUNK)
            c("GQS_NO_UNROLL")
            c.open(f"for (int r0 = 0; r0 < {per_thread}; r0 += {chunk})")
            c(f"double w[{chunk}];")
            c("GQ_UNROLL")
            c.open(f"for (int r = 0; r < {chunk}; ++r)")
            c(f"const int b = t + (r0 + r) * {self.threads};")
            cond = f"b < {self.dim} ? " if guard else ""
            c(
                f"w[r] = {cond}((double)lam[b].re * psi[b].im - (double)lam[b].im * psi[b].re)"
                + (" : 0.0;" if guard else ";")
            )
            c.close()
            for op in run.ops:
                if op.slot < 0 or int(op.slot) not in self.position:
                    continue
                c.open("")
                c("const int tv = GQS_TID(t);  // read anew: keeps the ops' selections apart")
                c("double acc = 0.0;")
                c("GQ_UNROLL")
                c.open(f"for (int r = 0; r < {chunk}; ++r)")
                c(f"const int b = tv + (r0 + r) * {self.threads};")
                c("(void)b;  // unused when the op phases every amplitude")
                c(f"if ({self._selected(op, 'b')}) acc += w[r];")
                c.close()
                pos = self.position[int(op.slot)]
                c(f"gq_warp_add(ctx, cells + {pos * self.warps}, t, -2.0 * acc);")
                c.close()
            c.close()
        if not states:
            return
        c("GQS_ITEM_UNROLL")
        c.open(f"for (int r = 0; r < {per_thread}; ++r)")
        c(f"const int b = t + r * {self.threads};")
        if guard:
            c(f"if (b >= {self.dim}) continue;")
        self._run_angle(run, "b")
        c("real s, co;")
        c(
            "gqs_sincos_turns(ang, &s, &co);"
            if self.real == "float"
            else "gqs_sincos(ang, &s, &co);"
        )
        if inverse:
            c("s = -s;")
        for name in states:
            c(f"{name}[b] = gq_mul<real>(gq_make<real>(co, s), {name}[b]);")
        c.close()

    # ---- adjoint states -------------------------------------------------------------------------
    def adjoint_state(self) -> None:
        """lam = H_o psi (or sum_o g_o H_o psi), and zero the derivative cells."""
        c = self.code
        kp = self.kp
        cells = len(self.slots) * self.warps
        c.open("GQ_EACH_THREAD(t)")
        c(f"for (int i = t; i < {cells}; i += {self.threads}) cells[i] = 0.0;")
        c.open(f"for (int b = t; b < {self.dim}; b += {self.threads})")
        if isinstance(kp.readout, PauliReadout):
            terms = kp.readout.terms
            c("double are = 0.0, aim = 0.0;")
            for x, z, coeff, out in zip(
                terms.xmask, terms.zmask, terms.coeff, terms.output, strict=True
            ):
                x, z, out = int(x), int(z), int(out)
                weight = f"cot[{out}]" if self.vjp else None
                guard = "" if self.vjp else f"if (o == {out}) "
                c(f"{guard}{{")
                c(f"  const cplx v = psi[b ^ {x}];")
                parity = "gq_popc((unsigned long long)({})) & 1"
                c(f"  const double s1 = ({parity.format(f'(b ^ {x}) & {z}')}) ? -1.0 : 1.0;")
                c(f"  const double s2 = ({parity.format(f'b & {z}')}) ? -1.0 : 1.0;")
                cr, ci = float(np.real(coeff)), float(np.imag(coeff))
                c(f"  const double hre = {0.5 * cr!r} * (s1 + s2);")
                c(f"  const double him = {0.5 * ci!r} * (s1 - s2);")
                w = f"{weight} * " if weight else ""
                c(f"  are += {w}(hre * v.re - him * v.im);")
                c(f"  aim += {w}(hre * v.im + him * v.re);")
                c("}")
            c("lam[b] = gq_make<real>((real)are, (real)aim);")
        else:
            c("const int idx = pidx[b];")
            if self.vjp:
                c("const real wt = idx < 0 ? (real)0 : (real)cot[idx];")
            else:
                c("const real wt = idx == o ? (real)1 : (real)0;")
            c("lam[b] = gq_make<real>(wt * psi[b].re, wt * psi[b].im);")
        c.close()
        c.close()
        c("GQ_SYNC();")


# ---- the angle table in the kernels ----------------------------------------------------------
def _angle_function(code: AngleCode) -> str:
    """``gqs_slot_angle(k, inputs, weights, nin, sample)``: slot k's angle of a sample, a
    ``switch`` with one case per slot. Not inlined on a GPU: its registers are its own,
    so the expressions add no pressure to the sweeps (a complex128 forward kernel
    spilled with them inlined)."""
    c = _Code()
    c.open(
        "GQS_NOINLINE double gqs_slot_angle(int k, const double* GQ_RESTRICT inputs, "
        "const double* GQ_RESTRICT weights, long long nin, long long sample)"
    )
    c("double a = 0.0;")
    c.open("switch (k)")
    for slot, expr in enumerate(code.angles):
        c.open(f"case {slot}:")
        for j in _params_in(expr):
            c(f"const double p{j} = gqs_param(inputs, weights, nin, sample, {j});")
        c(f"a = {expr};")
        c("break;")
        c.close()
    c.close()
    c("return a;")
    c.close()
    return c.text()


def _derivative_entries(g: _Generator, code: AngleCode, columns: Sequence[int]) -> None:
    """Number the (differentiated slot, column) pairs of the chain rule: their derivative
    values sit in shared memory after the warp cells (``g.table_at``, in doubles)."""
    wanted = set(int(j) for j in columns)
    g.entries = {}
    for s in g.slots:
        for j in sorted(code.derivatives[s]):
            if j in wanted:
                g.entries[(s, j)] = len(g.entries)
    g.table_at = len(g.slots) * g.warps
    g.derivative_table = True


def _derivatives_function(g: _Generator, code: AngleCode) -> str:
    """``gqs_slot_derivatives(k, inputs, weights, nin, sample, table)``: slot k's
    derivatives by its columns into its entries of ``table`` (a ``switch`` with one case
    per differentiated slot; not inlined on a GPU: its registers are its own)."""
    c = _Code()
    c.open(
        "GQS_NOINLINE void gqs_slot_derivatives(int k, const double* GQ_RESTRICT inputs, "
        "const double* GQ_RESTRICT weights, long long nin, long long sample, "
        "double* GQ_RESTRICT table)"
    )
    c.open("switch (k)")
    for s in g.slots:
        pairs = [(j, i) for (slot, j), i in g.entries.items() if slot == s]
        if not pairs:
            continue
        c.open(f"case {s}:")
        for k in _params_in(" ".join(code.derivatives[s][j] for j, _i in pairs)):
            c(f"const double p{k} = gqs_param(inputs, weights, nin, sample, {k});")
        for j, i in pairs:
            c(f"table[{i}] = {code.derivatives[s][j]};")
        c("break;")
        c.close()
    c("default: break;")
    c.close()
    c.close()
    return c.text()


def _parameter_gradients(g: _Generator, columns: Sequence[int], at: str) -> None:
    """out[at + c] = the sum over the differentiated slots s that depend on
    ``columns[c]`` of (s's summed warp cells) * d angle_s / d p_column (its table entry):
    the chain rule from shared memory, each slot touching only its own columns."""
    c = g.code
    w = g.warps
    c.open(f"GQ_BLOCK_FOR(c, {len(columns)})")
    c("double g = 0.0;")
    c.open("switch (c)")
    for position, j in enumerate(columns):
        terms = [(g.position[s], i) for (s, col), i in g.entries.items() if col == j]
        if not terms:
            continue
        c.open(f"case {position}:")
        for pos, i in terms:
            c(f"g += gqs_cell_sum(cells + {pos * w}, {w}) * cells[{g.table_at + i}];")
        c("break;")
        c.close()
    c("default: break;")
    c.close()
    c(f"out[{at} + c] = g;")
    c.close()


def _params_in(expression: str) -> list[int]:
    """The parameter columns j whose variables ``p{j}`` a C expression reads."""
    return sorted({int(m) for m in re.findall(r"\bp(\d+)\b", expression)})


def _horner(coefficients: list[float]) -> str:
    """``c0 + r2 * (c1 + r2 * (...))`` as C, one coefficient per line."""
    text = repr(coefficients[-1])
    for c in reversed(coefficients[:-1]):
        text = f"{c!r} + r2 * (\n      {text})"
    return text


_SIN = _horner([(-1) ** k / math.factorial(2 * k + 1) for k in range(9)])
_COS = _horner([(-1) ** k / math.factorial(2 * k) for k in range(10)])

_SINCOS = """
// A state in shared memory in the swizzled layout (layout.py's swizzle): amplitude x at
// x ^ ((x >> L) & (2^L - 1)), 2^L amplitudes per row of the 32 banks, so that a warp's reads
// in a pass on low qubits spread over the banks. psi[x] is amplitude x.
template <typename C, int L>
struct gqs_swizzled {
  C* GQ_RESTRICT p;
  GQ_DEVICE C& operator[](long long x) const { return p[x ^ ((x >> L) & ((1LL << L) - 1))]; }
};
// An op's item loop is unrolled at most twice: more items in flight would hold more amplitudes
// than 64 registers (the budget the kernels are built for) and spill.
// GQS_TID(t): the thread index read anew (a volatile read on a GPU), so that the compiler
// computes what depends on it where it is used instead of hoisting it for a whole phase.
#ifdef GPUQNN_HOST
#define GQS_ITEM_UNROLL
#define GQS_NO_UNROLL
#define GQS_TID(t) (t)
#else
#define GQS_ITEM_UNROLL _Pragma("unroll 2")
#define GQS_NO_UNROLL _Pragma("unroll 1")
#define GQS_TID(t) gq_thread_index()
#endif
#ifdef GPUQNN_HOST
#define GQS_NOINLINE inline
#else
#define GQS_NOINLINE __device__ __noinline__
#endif
// sin and cos of a double with no slow path (CUDA's sincos has one, whose local array and
// registers make a long kernel spill): Cody-Waite reduction by pi/2 with an FMA (accurate for
// |x| up to about 1e6), then Taylor polynomials on [-pi/4, pi/4] (truncation below 1e-17).
// Host and device run this same code.
GQ_DEVICE void gqs_sincos(double x, double* s, double* c) {
#ifdef GPUQNN_HOST
  using std::fma;
  using std::rint;
#endif
  const double q = rint(x * 0.63661977236758134308);
  double r = fma(-q, 1.5707963267948966192, x);
  r = fma(-q, 6.123233995736766036e-17, r);
  const double r2 = r * r;
  const double sr = r * ({_SIN});
  const double cr = {_COS};
  switch (((int)(long long)q) & 3) {
    case 0: *s = sr; *c = cr; break;
    case 1: *s = cr; *c = -sr; break;
    case 2: *s = -sr; *c = -cr; break;
    default: *s = -cr; *c = sr; break;
  }
}
// complex64 phase runs keep angles as fixed-point turns: a / (2 pi) * 2**32 modulo 2**32 in a
// uint32, so a run's sum of up to dozens of angles is exact modulo 2 pi (wrapping adds; a float
// sum loses about 1e-5). Host and device share the integer code, and the conversion to the
// half turns x in [-1, 1) (rounding: below 1e-7 of a turn); sin(pi x) is sincospif on a GPU
// (no slow path: the reduction is exact), the standard function in double on the host.
GQ_DEVICE unsigned int gqs_turns(double a) {
#ifdef GPUQNN_HOST
  using std::floor;
  using std::rint;
#endif
  const double t = a * 0.15915494309189533577;
  return (unsigned int)(long long)rint((t - floor(t)) * 4294967296.0);
}
// Parameter column j of a sample: its own inputs first (nin per sample), then the weights every
// sample shares; and the sum of a differentiated slot's per-warp cells.
GQ_DEVICE double gqs_param(const double* inputs, const double* weights, long long nin,
                           long long sample, int j) {
  return j < nin ? inputs[sample * nin + j] : weights[j - nin];
}
GQ_DEVICE double gqs_cell_sum(const double* cells, int warps) {
  double sum = 0.0;
  for (int v = 0; v < warps; ++v) sum += cells[v];
  return sum;
}
GQ_DEVICE float gqs_half_turns(unsigned int turns) { return (float)(int)turns * 0x1p-31f; }
#if defined(GPUQNN_HOST)
GQ_DEVICE void gqs_sincos_turns(unsigned int turns, float* s, float* c) {
  const double x = 3.14159265358979323846 * (double)gqs_half_turns(turns);
  *s = (float)std::sin(x);
  *c = (float)std::cos(x);
}
#else
GQ_DEVICE void gqs_sincos_turns(unsigned int turns, float* s, float* c) {
  sincospif(gqs_half_turns(turns), s, c);
}
#endif
""".replace("{_SIN}", _SIN).replace("{_COS}", _COS)


def _prelude(real: str) -> str:
    return (
        "#define GQ_SPECIALISED 1\n"
        + kernel_source()
        + f"\ntypedef {real} real;\ntypedef gq_cplx<real> cplx;\n"
        + _SINCOS
    )


def _entry(name: str, params: list[tuple[str, str]], threads: int) -> str:
    """The host and CUDA entry points calling ``{name}_body``."""
    decl = ", ".join(f"{t} {n}" for t, n in params)
    args = ", ".join(n for _t, n in params)
    # at most 16: the fewest resident blocks per SM among the architectures CuPy supports
    min_blocks = max(1, min(16, REGISTERS_PER_SM // (threads * REGISTER_BUDGET)))
    return f"""
#ifdef GPUQNN_HOST
extern "C" int {name}({decl}, long long grid, int block, long long shared, int mode) {{
  if (block != {threads}) return 1;
  return gq_host_launch(grid, block, shared, mode, [&](const gq_ctx& ctx, unsigned char* smem) {{
    {name}_body(ctx, smem, {args});
  }});
}}
#else
extern "C" __global__ void __launch_bounds__({threads}, {min_blocks}) {name}({decl}) {{
  extern __shared__ __align__(16) unsigned char gq_smem[];
  {name}_body(gq_ctx(), gq_smem, {args});
}}
#endif
"""


def _key(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:24]


def generate_forward(
    kp: KernelTables,
    dtype: object,
    threads: int | None = None,
    span: tuple[int, int] | None = None,
    code: AngleCode | None = None,
) -> GeneratedKernel:
    """The specialised forward kernel ``gqs_forward(base (B, K) float64, batch, shift_slot (S,)
    int32, shift_value (S,) float64, shifts, prog, rcoef, out (S * B, O) float64)``: row
    ``s * B + b`` is sample b with block s's shift (as the generic fused kernel). With
    ``code``, ``base`` is replaced by the parameter rows (:data:`PARAMETER_ARGS`) and each
    row computes its angles from them.

    With ``span``, a part of a chain (:func:`forward_chain`): ``gqs_forward_part(..., out,
    state (S * B, D) complex)`` sweeps passes ``[start, stop)``, starting from the row's
    ``state`` (unless ``start`` is 0) and storing it there (unless ``stop`` is the last pass,
    which reads out instead).

    Args:
        kp: the encoded program and readout.
        dtype: complex64 or complex128.
        threads: threads per block (default: :func:`default_threads`).
        span: the passes of a chained kernel; None: all, in one kernel.
        code: the angle table as C (:func:`.angle_code.angle_code`), or None. A chain's parts
            read (B, K) angles: ``code`` only with ``span`` None.
    """
    dtype = check_kernel_dtype(dtype)
    _one_kernel_for_code(span, code)
    threads = default_threads(kp.num_qubits) if threads is None else int(threads)
    g = _Generator(kp, dtype, threads)
    total = len(g.passes)
    start, stop = span or (0, total)
    name = FORWARD_KERNEL if span is None else FORWARD_PART_KERNEL
    layout = shared_layout(kp, dtype, 1, 0, kp.fused_scratch_doubles(threads), False)
    c = g.code
    source_args = [("const double* GQ_RESTRICT", "base")] if code is None else PARAMETER_ARGS
    params = [
        *source_args,
        ("long long", "batch"),
        ("const int* GQ_RESTRICT", "shift_slot"),
        ("const double* GQ_RESTRICT", "shift_value"),
        ("long long", "shifts"),
        ("const int* GQ_RESTRICT", "prog"),
        ("const double* GQ_RESTRICT", "rcoef"),
        ("double* GQ_RESTRICT", "out"),
    ]
    if span is not None:
        params.append(("cplx* GQ_RESTRICT", "state"))
    decl = ", ".join(f"{t} {n}" for t, n in params)
    c.open(f"GQ_DEVICE void {name}_body(const gq_ctx& ctx, unsigned char* smem, {decl})")
    g.pointers(layout, ["psi", "theta", "half", "full", "scratch"])
    c("(void)theta; (void)half; (void)full;")
    if code is not None:
        c("(void)inputs; (void)weights; (void)nin;")
    c.open("GQ_BLOCK_ITEMS(row, shifts * batch)")
    c("const long long shift = row / batch;")
    c("const long long sample = row - shift * batch;")
    c("(void)sample;")
    if start == 0:
        g.init_state()
    else:
        g.copy_state("psi", f"state + row * {kp.dim}LL")
    c("GQ_SYNC();")
    g.angles(shifted=True, code=code)
    c("GQ_SYNC();")
    g.forward_sweep((start, stop))
    if stop == total:
        c(
            f"gq_readout_block<real>(ctx, psi, {kp.num_qubits}, prog, rcoef, scratch, "
            f"out + row * {kp.num_outputs});"
        )
    else:
        c("(void)prog; (void)rcoef; (void)out; (void)scratch;")
        g.copy_state(f"state + row * {kp.dim}LL", "psi")
    c("GQ_SYNC();")
    c.close()
    c.close()
    angle_function = "" if code is None else _angle_function(code)
    source = _prelude(_real(dtype)) + angle_function + c.text() + _entry(name, params, threads)
    signature: tuple[str, ...] = FORWARD_SIGNATURE if span is None else FORWARD_PART_SIGNATURE
    if code is not None:
        signature = FORWARD_PARAMETER_SIGNATURE
    return GeneratedKernel(
        source, name, threads, layout.size, signature, _key(source), total, span=span
    )


def _one_kernel_for_code(span: tuple[int, int] | None, code: AngleCode | None) -> None:
    """Refuse a chained part that would read parameter rows: a chain's parts take (B, K)
    angles (its programs are deeper than one kernel holds, and their angles are evaluated
    once, for every part, by the angle kernel or on the host)."""
    if span is not None and code is not None:
        raise ValueError(
            f"a chained kernel part (span={span}) reads (B, K) angles; code must be None"
        )


def generate_angles(kp: KernelTables, code: AngleCode) -> GeneratedKernel:
    """The kernel ``gqs_angles(inputs (B, nin) float64, weights (P - nin,) float64, nin,
    batch, out (B, K) float64)``: every slot's angle of every sample in ONE launch (one block
    per sample, a thread per slot), for the per-op kernels, which take (B, K) angles.

    Args:
        kp: the encoded program (its number of slots).
        code: the angle table as C (:func:`.angle_code.angle_code`).
    """
    g = _Generator(kp, np.dtype(np.complex128), ANGLES_THREADS)
    c = g.code
    params = [*PARAMETER_ARGS, ("long long", "batch"), ("double* GQ_RESTRICT", "out")]
    decl = ", ".join(f"{t} {n}" for t, n in params)
    c.open(f"GQ_DEVICE void {ANGLES_KERNEL}_body(const gq_ctx& ctx, unsigned char* smem, {decl})")
    c("(void)smem; (void)inputs; (void)weights; (void)nin;")
    c.open("GQ_BLOCK_ITEMS(sample, batch)")
    k = kp.num_slots
    angle = "gqs_slot_angle(k, inputs, weights, nin, sample)"
    c(f"GQ_BLOCK_FOR(k, {k}) out[sample * {k} + k] = {angle};")
    c("GQ_SYNC();")
    c.close()
    c.close()
    source = _prelude("double") + _angle_function(code) + c.text()
    source += _entry(ANGLES_KERNEL, params, ANGLES_THREADS)
    return GeneratedKernel(
        source, ANGLES_KERNEL, ANGLES_THREADS, 0, ANGLES_SIGNATURE, _key(source), 0
    )


def forward_chain(
    kp: KernelTables,
    dtype: object,
    threads: int | None = None,
    max_passes: int | None = MAX_KERNEL_PASSES,
) -> tuple[GeneratedKernel, ...]:
    """The forward kernel, or where the program has more than ``max_passes`` passes, a chain of
    ``gqs_forward_part`` kernels of at most that many passes each, launched in order over the
    same rows (:func:`.passes.pass_spans`).

    Args:
        kp: the encoded program and readout.
        dtype: complex64 or complex128.
        threads: threads per block (default: :func:`default_threads`).
        max_passes: passes per kernel at most (default :data:`.passes.MAX_KERNEL_PASSES`;
            None: no cap).
    """
    spans = pass_spans(len(kp.passes), max_passes)
    if len(spans) == 1:
        return (generate_forward(kp, dtype, threads),)
    return tuple(generate_forward(kp, dtype, threads, span) for span in spans)


def generate_adjoint(
    kp: KernelTables,
    dtype: object,
    slots: Sequence[int],
    vjp: bool,
    shared_limit: int,
    threads: int | None = None,
    span: tuple[int, int] | None = None,
    code: AngleCode | None = None,
    columns: Sequence[int] = (),
) -> GeneratedKernel | None:
    """The specialised adjoint kernel ``gqs_adjoint(base (B, K) float64, batch, cotangent
    (B, O) float64 (vjp; else unused), pidx (D,) int32 (probability readouts; else unused),
    out (B, O or 1, S) float64)``, or None when a row's two states do not fit ``shared_limit``.
    With ``code``, ``base`` is replaced by the parameter rows (:data:`PARAMETER_ARGS`), each
    sample computes its angles from them, and ``out`` is (B, O or 1, J): the derivatives by
    the J parameter ``columns``, chained in the kernel.

    With ``span``, a part of a chain (:func:`adjoint_chain`), ``gqs_adjoint_part(..., out,
    state (B, D), psi_g (B * O, D), lam_g (B * O, D))`` (complex): the part whose span ends
    at the last pass (the tail) starts each output's forward sweep from ``state`` (what the
    forward parts left), builds the adjoint state and sweeps back over its passes; an earlier
    part starts from each output's ``psi_g``/``lam_g``. A part stores the two states there
    unless its sweep reached the first differentiated pass, and adds its slots' derivatives to
    ``out`` (the tail writes every entry first).

    Args:
        kp: the encoded program and readout.
        dtype: complex64 or complex128.
        slots: the S slots to differentiate by (each an op's slot), in the output's order;
            with ``code``, every slot whose angle depends on one of ``columns``.
        vjp: one adjoint state per sample from the cotangent, instead of one per output.
        shared_limit: dynamic shared memory per block, in bytes.
        threads: threads per block (default: :func:`default_threads`).
        span: the passes of a chained kernel; None: all, in one kernel.
        code: the angle table as C (:func:`.angle_code.angle_code`), or None (and None with
            ``span``: a chain's parts read (B, K) angles).
        columns: with ``code``, the J parameter columns, in the output's order.
    """
    dtype = check_kernel_dtype(dtype)
    _one_kernel_for_code(span, code)
    threads = default_threads(kp.num_qubits) if threads is None else int(threads)
    slots = [int(s) for s in slots]
    if not slots:
        raise ValueError("slots must name at least one slot to differentiate by")
    many = not vjp and kp.num_outputs > 1
    g = _Generator(kp, dtype, threads, slots, vjp)
    total = len(g.passes)
    start, stop = span or (0, total)
    tail = stop == total
    name = ADJOINT_KERNEL if span is None else ADJOINT_PART_KERNEL
    if code is not None:
        _derivative_entries(g, code, columns)
    # the derivative table takes whole warps' worth of cells (the layout's unit)
    cell_slots = len(slots) + -(-len(g.entries) // g.warps)
    keep = many and adjoint_shared_bytes(kp, dtype, cell_slots, vjp, True, threads) <= shared_limit
    if adjoint_shared_bytes(kp, dtype, cell_slots, vjp, keep, threads) > shared_limit:
        return None
    keep = keep and tail
    layout = shared_layout(kp, dtype, 3 if keep else 2, cell_slots * g.warps, 0, vjp)
    outputs = 1 if vjp else kp.num_outputs
    c = g.code
    source_args = [("const double* GQ_RESTRICT", "base")] if code is None else PARAMETER_ARGS
    params = [
        *source_args,
        ("long long", "batch"),
        ("const double* GQ_RESTRICT", "cotangent"),
        ("const int* GQ_RESTRICT", "pidx"),
        ("double* GQ_RESTRICT", "out"),
    ]
    if span is not None:
        params += [
            ("const cplx* GQ_RESTRICT", "state"),
            ("cplx* GQ_RESTRICT", "psi_g"),
            ("cplx* GQ_RESTRICT", "lam_g"),
        ]
    decl = ", ".join(f"{t} {n}" for t, n in params)
    c.open(f"GQ_DEVICE void {name}_body(const gq_ctx& ctx, unsigned char* smem, {decl})")
    names = ["psi", "lam", "theta", "half", "full", "cells"]
    names += ["final"] if keep else []
    names += ["cot"] if vjp and tail else []
    g.pointers(layout, names)
    c("(void)cotangent; (void)pidx; (void)theta; (void)half; (void)full;")
    if span is not None:
        c("(void)state; (void)psi_g; (void)lam_g;")
    if code is not None:
        c("(void)inputs; (void)weights; (void)nin;")
    c.open("GQ_BLOCK_ITEMS(sample, batch)")
    g.angles(shifted=False, code=code)
    c("GQ_SYNC();")
    if vjp and tail:
        o = kp.num_outputs
        c(f"GQ_BLOCK_FOR(j, {o}) cot[j] = cotangent[sample * {o} + j];")
        c("GQ_SYNC();")
    c.open(f"for (int o = 0; o < {outputs}; ++o)")
    c("(void)o;")
    saved = f"(sample * {outputs} + o) * {kp.dim}LL"
    if tail:
        if keep:
            c.open("if (o == 0)")
        if start == 0:
            g.init_state()
        else:
            g.copy_state("psi", f"state + sample * {kp.dim}LL")
        c("GQ_SYNC();")
        g.forward_sweep((start, stop))
        if keep:
            c(f"GQ_BLOCK_FOR(i, {kp.dim}) final[i] = psi[i];")
            c.close(" else {")
            c.depth += 1
            c(f"GQ_BLOCK_FOR(i, {kp.dim}) psi[i] = final[i];")
            c.close()
            c("GQ_SYNC();")
        g.adjoint_state()
    else:
        c.open("GQ_EACH_THREAD(t)")
        c(f"for (int i = t; i < {len(slots) * g.warps}; i += {threads}) cells[i] = 0.0;")
        c("GQS_NO_UNROLL")
        c.open(f"for (int i = t; i < {kp.dim}; i += {threads})")
        c(f"psi[i] = psi_g[{saved} + i];")
        c(f"lam[i] = lam_g[{saved} + i];")
        c.close()
        c.close()
        c("GQ_SYNC();")
    g.backward_sweep((start, stop))
    if start > g.first_differentiated():  # an earlier part sweeps on from these states
        c.open("GQ_EACH_THREAD(t)")
        c("GQS_NO_UNROLL")
        c.open(f"for (int i = t; i < {kp.dim}; i += {threads})")
        c(f"psi_g[{saved} + i] = psi[i];")
        c(f"lam_g[{saved} + i] = lam[i];")
        c.close()
        c.close()
        c("GQ_SYNC();")
    if code is None:
        s, w = len(slots), g.warps
        assign = "=" if tail else "+="
        c.open(f"GQ_BLOCK_FOR(j, {s})")
        c(f"out[(sample * {outputs} + o) * {s} + j] {assign} gqs_cell_sum(cells + j * {w}, {w});")
        c.close()
    else:
        _parameter_gradients(g, columns, f"(sample * {outputs} + o) * {len(columns)}")
    c("GQ_SYNC();")
    c.close()
    c.close()
    c.close()
    functions = "" if code is None else _angle_function(code) + _derivatives_function(g, code)
    source = _prelude(_real(dtype)) + functions + c.text() + _entry(name, params, threads)
    signature: tuple[str, ...] = ADJOINT_SIGNATURE if span is None else ADJOINT_PART_SIGNATURE
    if code is not None:
        signature = ADJOINT_PARAMETER_SIGNATURE
    return GeneratedKernel(
        source,
        name,
        threads,
        layout.size,
        signature,
        _key(source),
        total,
        keep,
        span,
    )


def adjoint_chain(
    kp: KernelTables,
    dtype: object,
    slots: Sequence[int],
    vjp: bool,
    shared_limit: int,
    threads: int | None = None,
    max_passes: int | None = MAX_KERNEL_PASSES,
) -> tuple[GeneratedKernel, ...] | None:
    """The adjoint kernel, or where the program has more than ``max_passes`` passes, a chain
    in launch order: the forward parts of every span but the last (:func:`forward_chain`'s,
    launched unshifted), the adjoint part of the last span (the tail), then the adjoint parts
    of the earlier spans from the last to the first, less those wholly before the first
    differentiated pass. None when a row's states do not fit ``shared_limit``.

    Args: as :func:`generate_adjoint`, and ``max_passes`` as :func:`forward_chain`'s.
    """
    spans = pass_spans(len(kp.passes), max_passes)
    if len(spans) == 1:
        kernel = generate_adjoint(kp, dtype, slots, vjp, shared_limit, threads)
        return None if kernel is None else (kernel,)
    tail = generate_adjoint(kp, dtype, slots, vjp, shared_limit, threads, spans[-1])
    if tail is None:
        return None
    forward = [generate_forward(kp, dtype, threads, span) for span in spans[:-1]]
    first = _Generator(kp, check_kernel_dtype(dtype), 32, slots).first_differentiated()
    backward = [
        generate_adjoint(kp, dtype, slots, vjp, shared_limit, threads, span)
        for span in reversed(spans[:-1])
        if span[1] > first
    ]
    return (*forward, tail, *(k for k in backward if k is not None))

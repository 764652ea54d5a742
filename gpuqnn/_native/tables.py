"""Encode a compiled :class:`~gpuqnn._compile.Program` and its readout into the tables the
native engine's interpreter reads (``src/program.hpp``): one int64 record per op, the records'
index arrays and complex constants, and the readout's Pauli terms or index table.

The ops are the program's passes as the fused CUDA kernels plan them
(:func:`gpuqnn._cuda.passes.build_passes`): consecutive constant ops on at most three qubits
multiplied into one dense op, phase ops gathered (applied one by one here). Every op keeps its
own slot, so the adjoint sweep differentiates each where it stands.

Shapes: N ops, D = 2**n amplitudes, T Pauli terms, K angle slots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._compile import Op, OpKind, Program, unsupported_op
from .._cuda.passes import build_passes
from .._sim.protocols import Readout
from .._sim.readout import PauliReadout, ProbabilityReadout

OP_FIELDS = 11
"""Fields of an op record (``Field`` in ``src/program.hpp``)."""
(F_KIND, F_TARGETS, F_SLOT, F_CVAL, F_NPOS, F_POS, F_OFF, F_DATA, F_IDATA, F_SRC, F_ISRC) = range(
    OP_FIELDS
)
READOUT_PAULI, READOUT_PROBABILITY = 0, 1
MAX_GROUP_TARGETS = 3
"""Most targets of a dense, permutation or rotation op the interpreter applies."""
MAX_QUBITS = 30
"""Most simulated qubits (a row's state is one array in memory)."""
_GROUPED = (OpKind.DENSE, OpKind.PERM, OpKind.ROT)
CLEAN = 1e-15
"""Real and imaginary parts of op constants below this are taken as zero."""


@dataclass(frozen=True)
class NativeTables:
    """A program and its readout as the interpreter's tables (the arguments of
    ``_core.NativeProgram``).

    Attributes:
        num_qubits: n.
        num_slots: K.
        num_outputs: O.
        ops: (N, OP_FIELDS) int64 records.
        ints: (entries,) int64 positions, offsets and index sources.
        cdata: (2 entries,) float64 complex constants as (re, im) pairs.
        readout: ``READOUT_PAULI`` or ``READOUT_PROBABILITY``.
        xmask, zmask, term_output: (T,) int64 Pauli terms (empty for probabilities).
        coeff: (T, 2) float64 Pauli coefficients (re, im).
        index: (D,) int64 output of each basis state, -1 for none (empty for Pauli terms).
    """

    num_qubits: int
    num_slots: int
    num_outputs: int
    ops: np.ndarray
    ints: np.ndarray
    cdata: np.ndarray
    readout: int
    xmask: np.ndarray
    zmask: np.ndarray
    term_output: np.ndarray
    coeff: np.ndarray
    index: np.ndarray


def unsupported_reason(program: Program, readout: Readout) -> str | None:
    """Why the native engine cannot run ``program`` with ``readout``, or None when it can."""
    if program.num_qubits > MAX_QUBITS:
        return (
            f"the program simulates {program.num_qubits} qubits; the native engine supports "
            f"at most {MAX_QUBITS}"
        )
    if not isinstance(readout, (PauliReadout, ProbabilityReadout)):
        return f"the readout {type(readout).__name__} has no native version"
    return unsupported_op(program, _GROUPED, MAX_GROUP_TARGETS, "the native engine")


def native_ops(program: Program) -> list[Op]:
    """The ops the interpreter runs, in order: the fused kernels' passes, flattened."""
    return [op for p in build_passes(program) for op in p.ops]


class _Pool:
    """Appends int and complex arrays and remembers their offsets."""

    def __init__(self) -> None:
        self.ints: list[np.ndarray] = []
        self.int_size = 0
        self.complex: list[np.ndarray] = []
        self.complex_size = 0

    def add_ints(self, values: object) -> int:
        array = np.asarray(values, dtype=np.int64).ravel()
        at = self.int_size
        self.ints.append(array)
        self.int_size += array.size
        return at

    def add_complex(self, values: object) -> int:
        array = np.asarray(values, dtype=np.complex128).ravel()
        # parts below CLEAN (e.g. rz's 6e-17 real parts, from a generator computed at pi) are
        # zero: the kernels then take their real or imaginary fast paths and skip zero entries
        array = np.where(np.abs(array.real) < CLEAN, 0, array.real) + 1j * np.where(
            np.abs(array.imag) < CLEAN, 0, array.imag
        )
        at = self.complex_size
        self.complex.append(array)
        self.complex_size += array.size
        return at


def _encode_op(op: Op, pool: _Pool) -> list[int]:
    """One op record (its arrays go to ``pool``)."""
    k = len(op.targets)
    cval = 0
    for i, q in enumerate(op.controls):
        cval |= ((op.ctrl_state >> i) & 1) << q
    local = np.arange(1 << k)
    offsets = np.zeros(1 << k, dtype=np.int64)
    for t, q in enumerate(op.targets):
        offsets |= ((local >> t) & 1) << q
    positions = sorted(int(q) for q in op.targets + op.controls)
    pos_at = pool.add_ints(positions if positions else [0])
    off_at = pool.add_ints(offsets)
    data = idata = src = isrc = -1
    if op.kind is OpKind.DENSE:
        data = pool.add_complex(op.matrix)
        idata = pool.add_complex(op.matrix.conj().T)
    elif op.kind is OpKind.DIAG:
        data = pool.add_complex(op.diagonal)
        idata = pool.add_complex(np.conj(op.diagonal))
    elif op.kind is OpKind.PERM:
        source = np.asarray(op.index_source, dtype=np.int64)
        inverse = np.empty_like(source)
        inverse[source] = np.arange(source.size)
        inverse_phases = np.empty(source.size, dtype=np.complex128)
        inverse_phases[source] = np.conj(op.phases)
        data, idata = pool.add_complex(op.phases), pool.add_complex(inverse_phases)
        src, isrc = pool.add_ints(source), pool.add_ints(inverse)
    elif op.kind is OpKind.ROT:
        data = idata = pool.add_complex(op.coefficients)
        src = isrc = pool.add_ints(op.index_source)
    else:  # PHASE: the 0/1 mask as the real parts
        data = idata = pool.add_complex(np.asarray(op.mask, dtype=float))
    return [int(op.kind), k, int(op.slot), cval, len(positions), pos_at, off_at, data, idata, src,
            isrc]  # fmt: skip


def encode_tables(program: Program, readout: Readout) -> NativeTables:
    """Encode ``program`` and ``readout`` for the interpreter.

    Raises:
        ValueError: the native engine cannot run them (:func:`unsupported_reason`).
    """
    reason = unsupported_reason(program, readout)
    if reason is not None:
        raise ValueError(f"program cannot run on the native engine: {reason}")
    pool = _Pool()
    records = [_encode_op(op, pool) for op in native_ops(program)]
    ops = np.array(records, dtype=np.int64).reshape(-1, OP_FIELDS)
    ints = np.concatenate(pool.ints) if pool.ints else np.zeros(1, dtype=np.int64)
    flat = np.concatenate(pool.complex) if pool.complex else np.zeros(1, dtype=np.complex128)
    cdata = np.ascontiguousarray(np.stack([flat.real, flat.imag], axis=1).ravel())
    empty = np.zeros(0, dtype=np.int64)
    if isinstance(readout, PauliReadout):
        terms = readout.terms
        coeff = np.stack([terms.coeff.real, terms.coeff.imag], axis=1).astype(np.float64)
        return NativeTables(
            program.num_qubits, program.angles.num_slots, readout.num_outputs, ops, ints, cdata,
            READOUT_PAULI, terms.xmask.astype(np.int64), terms.zmask.astype(np.int64),
            terms.output.astype(np.int64), np.ascontiguousarray(coeff), empty,
        )  # fmt: skip
    assert isinstance(readout, ProbabilityReadout)
    index = np.asarray(readout.backend.to_host(readout.index), dtype=np.int64)
    return NativeTables(
        program.num_qubits, program.angles.num_slots, readout.num_outputs, ops, ints, cdata,
        READOUT_PROBABILITY, empty, empty, empty, np.zeros((0, 2)), index,
    )  # fmt: skip

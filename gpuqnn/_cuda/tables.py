"""Encode a compiled :class:`~gpuqnn._compile.Program` and its readout into the flat tables that
the CUDA kernels of ``statevector.cuh`` read. Pure NumPy: nothing here imports CuPy.

The int32 table holds a header, one record per op, the ops' index arrays and the readout's
tables (the layout is documented in ``statevector.cuh``; the constants below mirror its enums).
Complex op constants go to one complex128 array, Pauli coefficients to one float64 array.

What the kernels run (anything else is refused by :func:`unsupported_reason`, and the caller
uses the NumPy-style engine instead):

- ``dense``, ``perm``, ``rot``: up to :data:`MAX_GROUP_TARGETS` targets, any controls;
- ``diag``, ``phase``: any number of targets and controls;
- at most :data:`MAX_QUBITS` simulated qubits (indices and masks are 32-bit in the tables).

Shapes: D = 2**n amplitudes, O outputs, T Pauli terms, W probability pieces.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .._compile import Op, OpKind, Program, unsupported_op
from .._sim.readout import PauliReadout, ProbabilityReadout
from .layout import default_threads, forward_shared_bytes
from .passes import build_passes
from .source import check_kernel_dtype

# Mirrors of the enums in statevector.cuh.
HEADER = 8
H_QUBITS, H_NUM_OPS, H_OPS, H_READOUT, H_OUTPUTS, H_ITEMS, H_TABLES = range(7)
OP_FIELDS = 10
(F_KIND, F_TARGETS, F_SLOT, F_CVAL, F_NPOS, F_POS, F_TGT, F_DATA, F_SRC, F_OFF) = range(10)
READOUT_PAULI, READOUT_PROB_DIRECT, READOUT_PROB_PIECES = 0, 1, 2
MAX_THREADS = 512  # GQ_MAX_THREADS: the kernels' launch bound

MAX_GROUP_TARGETS = 3
"""Most targets of a ``dense``, ``perm`` or ``rot`` op that the kernels apply."""
MAX_QUBITS = 30
"""Most simulated qubits the kernels support."""
GROUPED_KINDS = (OpKind.DENSE, OpKind.PERM, OpKind.ROT)

DEFAULT_SHARED_LIMIT = 227 * 1024
"""Dynamic shared memory one block may opt into on an H100/H200 (sm_90), in bytes."""


def unsupported_reason(program: Program) -> str | None:
    """Why the kernels cannot run ``program``, or None when they can.

    Args:
        program: the compiled circuit.

    Returns:
        None, or a sentence naming the first op or property the kernels do not support.
    """
    if program.num_qubits > MAX_QUBITS:
        return (
            f"the program simulates {program.num_qubits} qubits; the kernels support at "
            f"most {MAX_QUBITS}"
        )
    return unsupported_op(program, GROUPED_KINDS, MAX_GROUP_TARGETS, "the kernels", plural=True)


@dataclass(frozen=True, eq=False)
class KernelTables:
    """A program and its readout as kernel tables.

    Attributes:
        num_qubits: n, simulated qubits (D = 2**n).
        num_ops: ops in the program.
        num_slots: K, angle slots (columns of the angle table).
        num_outputs: O, outputs per row.
        readout_kind: ``READOUT_PAULI``, ``READOUT_PROB_DIRECT`` or ``READOUT_PROB_PIECES``.
        num_items: Pauli terms T (``READOUT_PAULI``), probability pieces W
            (``READOUT_PROB_PIECES``), else 0.
        table: (table length,) int32 header, op records, index arrays and readout tables.
        data: (entries,) complex128 op constants (at least one entry).
        coeff: (2 T,) float64 Pauli coefficients as (re, im) pairs (at least one entry).
        program: the program encoded (the specialised kernels' literals, :mod:`.codegen`).
        readout: its readout.
    """

    num_qubits: int
    num_ops: int
    num_slots: int
    num_outputs: int
    readout_kind: int
    num_items: int
    table: np.ndarray
    data: np.ndarray
    coeff: np.ndarray
    program: Program
    readout: PauliReadout | ProbabilityReadout

    @functools.cached_property
    def passes(self) -> list:
        """The passes the fused kernels make over a row (:func:`.passes.build_passes`), planned
        once for every kernel generated for this program."""
        return build_passes(self.program)

    @property
    def dim(self) -> int:
        """D = 2**n amplitudes per row."""
        return 1 << self.num_qubits

    def fused_threads(self) -> int:
        """Threads per block of the fused kernels (:func:`.layout.default_threads`)."""
        return default_threads(self.num_qubits)

    def fused_scratch_doubles(self, threads: int) -> int:
        """Doubles of readout scratch after the state in the fused kernel's shared memory."""
        if self.readout_kind == READOUT_PAULI:
            return threads
        if self.readout_kind == READOUT_PROB_PIECES:
            return self.num_items
        return 0

    def fused_shared_bytes(self, dtype: object, threads: int | None = None) -> int:
        """Dynamic shared memory per block of the fused forward kernel: the row's state, its
        angle tables and the readout's scratch (:func:`.layout.forward_shared_bytes`).

        Args:
            dtype: complex64 or complex128.
            threads: threads per block (default: :meth:`fused_threads`).
        """
        return forward_shared_bytes(self, check_kernel_dtype(dtype), threads)

    def fits_fused(
        self, dtype: object, shared_limit: int = DEFAULT_SHARED_LIMIT, threads: int | None = None
    ) -> bool:
        """Whether a row's state and scratch fit ``shared_limit`` bytes of shared memory, so
        the fused kernel can run the program (default: the H100/H200 limit, 227 KiB)."""
        return self.fused_shared_bytes(dtype, threads) <= shared_limit


def encode_tables(program: Program, readout: PauliReadout | ProbabilityReadout) -> KernelTables:
    """Encode ``program`` and ``readout`` for the kernels.

    Args:
        program: the compiled circuit.
        readout: its readout, built for ``program`` (same simulated qubits).

    Returns:
        The kernel tables.

    Raises:
        ValueError: the kernels do not support the program (see :func:`unsupported_reason`),
            or the readout does not match it.
        TypeError: ``readout`` is neither a PauliReadout nor a ProbabilityReadout.
    """
    reason = unsupported_reason(program)
    if reason is not None:
        raise ValueError(f"program cannot run on the CUDA kernels: {reason}")
    builder = _TableBuilder()
    n = program.num_qubits
    ops_at = HEADER
    builder.reserve(HEADER + OP_FIELDS * len(program.ops))
    data: list[np.ndarray] = []
    data_size = 0
    records = []
    for op in program.ops:
        record, entries = _encode_op(op, builder, data_size)
        records.append(record)
        data.append(entries)
        data_size += entries.size
    kind, outputs, items, coeff = _encode_readout(readout, n, builder)
    table = builder.finish()
    table[H_QUBITS] = n
    table[H_NUM_OPS] = len(program.ops)
    table[H_OPS] = ops_at
    table[H_READOUT] = kind
    table[H_OUTPUTS] = outputs
    table[H_ITEMS] = items
    table[H_TABLES] = builder.readout_at
    for i, record in enumerate(records):
        table[ops_at + OP_FIELDS * i : ops_at + OP_FIELDS * (i + 1)] = record
    flat = np.concatenate(data) if data else np.zeros(0, dtype=complex)
    if flat.size == 0:
        flat = np.zeros(1, dtype=complex)
    if coeff.size == 0:
        coeff = np.zeros(2)
    return KernelTables(
        n,
        len(program.ops),
        program.angles.num_slots,
        outputs,
        kind,
        items,
        table,
        flat.astype(np.complex128),
        coeff,
        program,
        readout,
    )


class _TableBuilder:
    """Appends int arrays after a reserved prefix and remembers their offsets."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0
        self.readout_at = 0

    def reserve(self, count: int) -> None:
        self.parts.append(np.zeros(count, dtype=np.int64))
        self.size += count

    def add(self, values) -> int:
        array = np.asarray(values, dtype=np.int64).ravel()
        at = self.size
        self.parts.append(array)
        self.size += array.size
        return at

    def finish(self) -> np.ndarray:
        table = np.concatenate(self.parts)
        if table.size and (
            table.max() > np.iinfo(np.int32).max or table.min() < np.iinfo(np.int32).min
        ):
            raise ValueError("kernel tables exceed 32-bit indices; the program is too large")
        return table.astype(np.int32)


def _encode_op(op: Op, builder: _TableBuilder, data_at: int) -> tuple[list[int], np.ndarray]:
    """One op record and its complex constants."""
    k = len(op.targets)
    cval = 0
    for i, q in enumerate(op.controls):
        cval |= ((op.ctrl_state >> i) & 1) << q
    grouped = op.kind in GROUPED_KINDS
    positions = sorted(op.targets + op.controls) if grouped else sorted(op.controls)
    local = np.arange(1 << k)
    offsets = np.zeros(1 << k, dtype=np.int64)
    for t, q in enumerate(op.targets):
        offsets |= ((local >> t) & 1) << q
    pos_at = builder.add(positions)
    tgt_at = builder.add(op.targets)
    off_at = builder.add(offsets)
    src_at = builder.add(op.index_source) if op.kind in (OpKind.PERM, OpKind.ROT) else -1
    data = np.asarray(op.data, dtype=complex)
    entries = data.reshape(-1) if op.kind is OpKind.DENSE else data.reshape(1 << k)
    record = [
        int(op.kind),  # OpKind values are the kernels' codes
        k,
        op.slot,
        cval,
        len(positions),
        pos_at,
        tgt_at,
        data_at,
        src_at,
        off_at,
    ]
    return record, entries


def _encode_readout(
    readout: PauliReadout | ProbabilityReadout, num_qubits: int, builder: _TableBuilder
) -> tuple[int, int, int, np.ndarray]:
    """(readout kind, outputs, items, Pauli coefficients); appends the readout's tables."""
    dim = 1 << num_qubits
    if isinstance(readout, PauliReadout):
        terms = readout.terms
        outputs = int(readout.num_outputs)
        order = np.argsort(terms.output, kind="stable")
        xmask, zmask = terms.xmask[order], terms.zmask[order]
        output, coeff = terms.output[order], terms.coeff[order]
        if np.any((xmask | zmask) >= dim):
            raise ValueError(
                f"readout has Pauli masks beyond the program's {num_qubits} "
                "simulated qubits; build it for the same program"
            )
        start = np.searchsorted(output, np.arange(outputs + 1))
        builder.readout_at = builder.add(np.concatenate([xmask, zmask, output, start]))
        pairs = np.stack([coeff.real, coeff.imag], axis=1).reshape(-1).astype(np.float64)
        return READOUT_PAULI, outputs, len(xmask), pairs
    if isinstance(readout, ProbabilityReadout):
        index = np.asarray(readout.index, dtype=np.int64)
        outputs = int(readout.num_outputs)
        if index.shape != (dim,):
            raise ValueError(
                f"readout has an index table of shape {index.shape}; the program "
                f"simulates {num_qubits} qubits, so expected ({dim},)"
            )
        if outputs == dim and np.array_equal(index, np.arange(dim)):
            builder.readout_at = builder.add([0])
            return READOUT_PROB_DIRECT, outputs, 0, np.zeros(0)
        out_piece, piece, order = _pieces(index, outputs, _piece_length(num_qubits))
        builder.readout_at = builder.add(np.concatenate([out_piece, piece, order]))
        return READOUT_PROB_PIECES, outputs, len(piece) - 1, np.zeros(0)
    raise TypeError(
        f"readout must be a PauliReadout or a ProbabilityReadout, got {type(readout).__name__}"
    )


def _piece_length(num_qubits: int) -> int:
    """Basis states per probability piece: about sqrt(D), so that both reduction steps (the
    pieces, then the pieces of each output) are short."""
    return 1 << ((num_qubits + 1) // 2)


def _pieces(
    index: np.ndarray, outputs: int, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split each output's basis states into pieces of at most ``length``.

    Returns:
        (O + 1,) first piece of each output; (W + 1,) first position in ``order`` of each
        piece; (kept states,) basis states sorted by output (dropped ones left out).
    """
    kept = np.flatnonzero(index >= 0)
    order = kept[np.argsort(index[kept], kind="stable")]
    bounds = np.searchsorted(index[order], np.arange(outputs + 1))
    counts = -(-np.diff(bounds) // length)
    out_piece = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    owner = np.repeat(np.arange(outputs), counts)
    within = np.arange(out_piece[-1]) - out_piece[owner]
    starts = np.concatenate([bounds[owner] + within * length, [order.size]]).astype(np.int64)
    return out_piece, starts, order


def _next_pow2(value: int) -> int:
    return 1 << max(0, int(value) - 1).bit_length()

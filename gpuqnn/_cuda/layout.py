"""The fused kernels' launch shape and shared memory, from sizes alone: threads per block, the
register budget, and the offsets of every segment of a kernel's dynamic shared memory. Used by
the tables (does a program fit?) and by the code generator (where does each segment start?);
imports neither.

Shapes: D = 2**n amplitudes, K angle slots, O outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import DTypeLike

REGISTER_BUDGET = 64
"""Registers per thread the kernels are built for (``__launch_bounds__``' minimum blocks)."""
REGISTERS_PER_SM = 65536
ALIGN = 16
"""Every shared-memory segment starts at a multiple of this many bytes."""


class TableSizes(Protocol):
    """The sizes of an encoded program (:class:`.tables.KernelTables`) that its layout needs."""

    @property
    def num_qubits(self) -> int:
        """n simulated qubits."""

    @property
    def num_slots(self) -> int:
        """K angle slots."""

    @property
    def num_outputs(self) -> int:
        """O outputs."""

    @property
    def dim(self) -> int:
        """D = 2**n amplitudes per row."""

    def fused_scratch_doubles(self, threads: int) -> int:
        """Doubles of readout scratch after the state."""


@dataclass(frozen=True)
class Layout:
    """Offsets (bytes) of a specialised kernel's dynamic shared memory, and its size."""

    psi: int
    lam: int
    final: int
    theta: int
    half: int
    full: int
    cot: int
    cells: int
    scratch: int
    size: int


def shared_layout(
    kp: TableSizes, dtype: np.dtype[Any], states: int, cells: int, scratch: int, vjp: bool
) -> Layout:
    """The dynamic shared memory of a kernel with ``states`` row states, ``cells`` derivative
    cells and ``scratch`` readout doubles, each segment 16-byte aligned."""
    at = 0

    def take(size: int) -> int:
        nonlocal at
        start = at
        at = -(-(at + size) // ALIGN) * ALIGN
        return start

    state = kp.dim * dtype.itemsize
    k = max(1, kp.num_slots)
    psi = take(state)
    lam = take(state if states >= 2 else 0)
    final = take(state if states >= 3 else 0)
    theta = take(k * dtype.itemsize // 2)
    half = take(k * dtype.itemsize)
    full = take(k * dtype.itemsize)
    cot = take(8 * kp.num_outputs if vjp else 0)
    cell = take(8 * cells)
    scr = take(8 * scratch)
    return Layout(psi, lam, final, theta, half, full, cot, cell, scr, max(at, ALIGN))


def warps(threads: int) -> int:
    """Warps of a block of ``threads`` threads (at least one)."""
    return max(1, threads // 32)


def default_threads(num_qubits: int) -> int:
    """Threads per block: a power of two in [32, 512], about one per 4 amplitudes."""
    return int(min(512, max(32, (1 << num_qubits) // 4)))


def forward_shared_bytes(kp: TableSizes, dtype: DTypeLike, threads: int | None = None) -> int:
    """Dynamic shared memory of :func:`.codegen.generate_forward`'s kernel, in bytes: the
    state, the row's angle tables and the readout's scratch."""
    threads = default_threads(kp.num_qubits) if threads is None else int(threads)
    return shared_layout(kp, np.dtype(dtype), 1, 0, kp.fused_scratch_doubles(threads), False).size


def adjoint_shared_bytes(
    kp: TableSizes,
    dtype: DTypeLike,
    slots: int,
    vjp: bool,
    keep_final: bool,
    threads: int | None = None,
) -> int:
    """Dynamic shared memory of :func:`.codegen.generate_adjoint`'s kernel, in bytes."""
    threads = default_threads(kp.num_qubits) if threads is None else int(threads)
    states = 3 if keep_final and not vjp and kp.num_outputs > 1 else 2
    return shared_layout(kp, np.dtype(dtype), states, slots * warps(threads), 0, vjp).size


# ---- the states' swizzled layout ----------------------------------------------------------------
SHARED_BANKS = 32
"""Shared-memory banks per multiprocessor, 4 bytes wide (every CUDA architecture since Kepler)."""
_LINE = 4 * SHARED_BANKS  # bytes of one row of banks


def swizzle_bits(itemsize: int) -> int:
    """L: amplitudes of ``itemsize`` bytes per row of banks are ``2**L`` (3 for complex128, 4 for
    complex64)."""
    return (_LINE // itemsize).bit_length() - 1


def swizzle(index: int, itemsize: int) -> int:
    """Where amplitude ``index`` of a state lives in the fused kernels' shared memory:
    ``index ^ ((index >> L) & (2**L - 1))`` (:func:`swizzle_bits`), a permutation within each
    run of ``2**L`` amplitudes (one row of banks). Without it, the amplitudes a warp reads at
    once in a pass on qubits below L (thread t's group at ``t << k``) share their low L bits,
    so all of them sit in one bank group: an 8-way conflict for a dense pass on qubits 0-2.
    XOR-ing the row number into the low bits spreads them over the banks, and leaves runs of
    consecutive amplitudes (the phase runs, the readout) in distinct banks."""
    bits = swizzle_bits(itemsize)
    return index ^ ((index >> bits) & ((1 << bits) - 1))


def wavefronts(indices: list[int], itemsize: int) -> int:
    """Shared-memory wavefronts (passes of the 32 banks) one warp's access needs, where lane
    ``i`` reads amplitude slot ``indices[i]`` (``itemsize`` bytes, aligned): the warp is served
    in phases of ``128 / itemsize`` lanes (a whole warp for 4 bytes, half warps for 8, quarter
    warps for 16), and within a phase a bank holding k distinct words takes k wavefronts.
    Conflict-free is one wavefront per phase."""
    per_phase = max(1, min(len(indices), _LINE // itemsize))
    total = 0
    for start in range(0, len(indices), per_phase):
        words: dict[int, set[int]] = {}
        for index in indices[start : start + per_phase]:
            for word in range(index * itemsize // 4, (index + 1) * itemsize // 4):
                words.setdefault(word % SHARED_BANKS, set()).add(word)
        total += max(len(w) for w in words.values())
    return total

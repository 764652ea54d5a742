"""A program fused into blocks for a backend: evolves a (R, D) tensor of states block by block.

A program's ops are fused once into blocks (:mod:`.fusion`, :mod:`.blocks`); each
block is one batched update of all active rows. Blocks before the first parametric one are the
same for every row: they are run once, at construction, into the initial state. Rows may start
late: a parameter-shift row is copied from its sample's base row just before the block that holds
its shifted slot, so the common prefix is simulated once per sample (see
:meth:`BlockCircuit.evolve`).

Written once against the backend's array module, so NumPy and CuPy run the same code.

Shapes: R rows, D = 2**n amplitudes, K angle slots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._compile import Op, OpKind, Program
from .backend import Backend
from .blocks import Shifts, build_blocks
from .buffers import Buffers
from .fusion import fuse
from .protocols import Block


class BlockCircuit:
    """A program fused into blocks on a backend: the block engine.

    Args:
        program: the compiled circuit.
        backend: array module, device and dtype.

    Attributes:
        blocks: the parametric blocks and those after them, in order.
        initial: (D,) complex state after the constant prefix of the program.
        slot_block: (K,) int64, the index in ``blocks`` of each slot's block.
        slot_local: (K,) int64, each slot's position among its block's ``slots``.
        invertible: whether every op is unitary, so that a reverse sweep may un-apply blocks
            to the state (a density program's channels are not: its adjoint keeps the forward
            sweep's states, and a block's ``apply_adjoint`` is the adjoint map there).
    """

    def __init__(self, program: Program, backend: Backend) -> None:
        self.program = program
        self.backend = backend
        self.dim = 2**program.num_qubits
        self.invertible = all(_unitary(op) for op in program.ops)
        blocks = build_blocks(program, fuse(program.ops, program.num_qubits), backend)
        first = next((j for j, block in enumerate(blocks) if block.parametric), len(blocks))
        self.initial = self._run_constant(blocks[:first])
        self.blocks: tuple[Block, ...] = tuple(blocks[first:])
        self.slot_block = np.full(program.angles.num_slots, -1, dtype=np.int64)
        self.slot_local = np.full(program.angles.num_slots, -1, dtype=np.int64)
        for j, block in enumerate(self.blocks):
            self.slot_block[block.slots] = j
            self.slot_local[block.slots] = np.arange(block.slots.size)

    def _run_constant(self, blocks: Sequence[Block]) -> Any:
        xp = self.backend.xp
        psi = xp.zeros((1, 1, self.dim), dtype=self.backend.dtype)  # one copy of one sample
        psi[0, 0, 0] = 1.0
        spare, scratch = xp.empty_like(psi), xp.empty_like(psi)
        for block in blocks:
            result = block.apply(psi, spare, scratch, block.prepare(None), True)
            if result is spare:
                psi, spare = spare, psi
        return psi[0, 0]

    def evolve(
        self,
        angles: Any,
        branches: Mapping[int, Shifts] | None = None,
        buffers: Buffers | None = None,
    ) -> Any:
        """Evolve P samples from the initial state through every block.

        With ``branches``, each entry (local, value) of ``branches[j].entries`` appends P rows
        just after block j: copies of the samples' states there with the angle of block j's
        ``local``-th slot increased by ``value`` (see the blocks' ``plan_shifts`` and
        ``shift_rows``). Later blocks apply to them with their sample's angles, so a whole
        parameter-shift pass shares its per-sample data.

        Args:
            angles: (P, K) real array on the backend, each sample's angle per slot.
            branches: block index -> its planned branches (rows appended in entry order).
            buffers: buffers to reuse (default: fresh ones); the result is one of them.

        Returns:
            (R, D) complex array of final states on the backend: the samples' rows, then P rows
            per branch in block order.
        """
        work = Buffers(self.backend.xp) if buffers is None else buffers
        branches = branches or {}
        angles = self.backend.real_angles(angles)
        samples = angles.shape[0]
        rows = samples * (1 + sum(len(shifts.entries) for shifts in branches.values()))
        shape, dtype = (rows, self.dim), self.backend.dtype
        psi, spare = work.get("psi", shape, dtype), work.get("spare", shape, dtype)
        scratch = work.get("scratch", shape, dtype)
        psi[:samples] = self.initial
        active = samples
        for j, block in enumerate(self.blocks):
            view = (active // samples, samples, self.dim)
            current, other = psi[:active].reshape(view), spare[:active].reshape(view)
            prep = block.prepare(angles, work, "prep")
            result = block.apply(current, other, scratch[:active].reshape(view), prep, True)
            if result is other:
                psi, spare = spare, psi
            shifts = branches.get(j)
            if shifts is not None:
                count = len(shifts.entries)
                stop = active + count * samples
                block.shift_rows(
                    psi[active:stop].reshape(count, samples, self.dim),
                    shifts,
                    prep,
                    psi[:samples].reshape(1, samples, self.dim),
                )
                active = stop
        return psi

    def block_costs(self) -> np.ndarray:
        """(number of blocks,) each block's relative cost of applying it to one row, in passes
        over the state (:meth:`Block.cost`)."""
        return np.asarray([block.cost() for block in self.blocks], dtype=float)


def _unitary(op: Op) -> bool:
    """Whether ``op`` is unitary: every kind is but a channel and a dense matrix that is not
    (a channel's superoperator in a density program)."""
    if op.kind is OpKind.CHANNEL:
        return False
    if op.kind is not OpKind.DENSE:
        return True
    matrix = op.matrix
    return bool(np.allclose(matrix @ matrix.conj().T, np.eye(matrix.shape[0]), atol=1e-10))

"""The batched statevector engine: evolves a (R, D) tensor of states block by block.

A program's ops are fused once into blocks (:mod:`gpuqnn._fusion`, :mod:`gpuqnn._blocks`); each
block is one batched update of all active rows. Blocks before the first parametric one are the
same for every row: they are run once, at construction, into the initial state. Rows may start
late: a parameter-shift row is copied from its sample's base row just before the block that holds
its shifted slot, so the common prefix is simulated once per sample (see :meth:`Engine.evolve`).

Written once against the backend's array module, so NumPy and CuPy run the same code.

Shapes: R rows, D = 2**n amplitudes, K angle slots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._backend import Backend
from ._blocks import GateBlock, LayerBlock, PhaseBlock, build_blocks
from ._compile import Program
from ._fusion import fuse
from ._workspace import Workspace

Block = PhaseBlock | LayerBlock | GateBlock


class Engine:
    """Runs a program on a backend.

    Args:
        program: the compiled circuit.
        backend: array module, device and dtype.

    Attributes:
        blocks: the parametric blocks and those after them, in order.
        initial: (D,) complex state after the constant prefix of the program.
        slot_block: (K,) int64, the index in ``blocks`` of each slot's block.
    """

    def __init__(self, program: Program, backend: Backend) -> None:
        self.program = program
        self.backend = backend
        self.dim = 2**program.num_qubits
        blocks = build_blocks(program, fuse(program.ops, program.num_qubits), backend)
        first = next((j for j, block in enumerate(blocks) if block.parametric), len(blocks))
        self.initial = self._run_constant(blocks[:first])
        self.blocks: tuple[Block, ...] = tuple(blocks[first:])
        self.slot_block = np.full(program.angles.num_slots, -1, dtype=np.int64)
        for j, block in enumerate(self.blocks):
            self.slot_block[block.slots] = j

    def _run_constant(self, blocks: Sequence[Block]) -> Any:
        xp = self.backend.xp
        psi = xp.zeros((1, self.dim), dtype=self.backend.dtype)
        psi[0, 0] = 1.0
        spare, scratch = xp.empty_like(psi), xp.empty_like(psi)
        for block in blocks:
            result = block.apply(psi, spare, scratch, block.prepare(None), True)
            if result is spare:
                psi, spare = spare, psi
        return psi[0]

    def evolve(self, angles: Any, num_base: int | None = None,
               branches: Mapping[int, Sequence[tuple[int, int]]] | None = None,
               active: Sequence[int] | None = None, work: Workspace | None = None) -> Any:
        """Evolve rows from the initial state through every block.

        Without ``branches`` every row starts in the initial state and goes through every block.
        With ``branches``, only the first ``num_base`` rows start there; just before block j,
        each (start, stop) of ``branches[j]`` fills rows [start, stop) with copies of the base
        rows (tiled). Their angle rows differ from the base rows' only in slots of block j or
        later, so they then hold their own states. Block j is applied to rows ``[:active[j]]``.

        Args:
            angles: (R, K) real array on the backend, each row's angle per slot.
            num_base: rows that start in the initial state (default: all).
            branches: block index -> (start, stop) row ranges to fill before that block.
            active: (number of blocks,) leading rows each block is applied to (default: all).
            work: buffers to reuse (default: fresh ones); the result is one of them.

        Returns:
            (R, D) complex array of final states on the backend.
        """
        work = Workspace(self.backend.xp) if work is None else work
        angles = angles.astype(self.backend.real_dtype, copy=False)
        rows = angles.shape[0]
        num_base = rows if num_base is None else num_base
        shape, dtype = (rows, self.dim), self.backend.dtype
        psi, spare = work.get("psi", shape, dtype), work.get("spare", shape, dtype)
        scratch = work.get("scratch", shape, dtype)
        psi[:num_base] = self.initial
        for j, block in enumerate(self.blocks):
            for start, stop in (branches or {}).get(j, ()):
                psi[start:stop].reshape(-1, num_base, self.dim)[...] = psi[:num_base]
            r = rows if active is None else int(active[j])
            current, other = psi[:r], spare[:r]
            prep = block.prepare(angles[:r], work, "prep")
            result = block.apply(current, other, scratch[:r], prep, True)
            if result is other:
                psi, spare = spare, psi
        return psi

    def block_costs(self) -> np.ndarray:
        """(number of blocks,) rough relative cost of applying each block to one row, in
        passes over the state: what the gradient-method choice weighs."""
        costs = []
        for block in self.blocks:
            if isinstance(block, PhaseBlock):
                cost = (4.0 if block.parametric else 1.0) + (1.0 if block.src is not None else 0.0)
            elif isinstance(block, LayerBlock):
                cost = len(block.groups) * (1.0 if block.real else 2.0)
            else:
                cost = 1.5
            costs.append(cost)
        return np.asarray(costs)

"""Adjoint differentiation, batched: one forward sweep and one backward sweep for all rows.

For outputs ``f_o = <psi|H_o|psi>`` (expectations, or probabilities with ``H_o`` a projector), the
derivative by slot k is ``2 Re <lam_o| d psi / d theta_k>`` with ``lam_o = H_o psi``. Sweeping the
blocks backwards, each block's slot derivatives come from the adjoint states ``lam`` and the states
``phi`` at its output (see :mod:`.blocks`); then both are moved back through the block. All
samples (rows) and all outputs (an extra axis of ``lam``) go through each block in one call.

The forward sweep keeps each block's output (checkpoints) when asked, so that the backward sweep
reads ``phi`` instead of un-applying the block to it.

Shapes: R rows (samples), O outputs, D = 2**n, K angle slots, S differentiated slots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .buffers import Buffers
from .executor import ChunkExecutor
from .fused import FusedCircuit
from .parameters import AngleMap
from .protocols import Readout


@dataclass
class Sweep:
    """What a forward sweep over R rows keeps for the reverse sweep.

    Attributes:
        first: index of the first block the reverse sweep differentiates.
        preps: per block, its per-sample data (None before ``first``).
        states: with checkpoints, (1, R, D) outputs of the blocks from ``first`` on; else
            empty.
        phi: (1, R, D) complex final states.
        work: the buffers that hold them (and the reverse sweep's own).
    """

    first: int
    preps: list[Any]
    states: list[Any]
    phi: Any
    work: Buffers


def forward_sweep(
    circuit: FusedCircuit, angles: Any, first: int, checkpoints: bool, work: Buffers
) -> Sweep:
    """Evolve (R, K) real ``angles`` through every block, keeping what the reverse sweep
    from block ``first`` needs (each block's output from there on, with ``checkpoints``)."""
    blocks = circuit.blocks
    dtype = circuit.backend.dtype
    angles = angles.astype(circuit.backend.real_dtype, copy=False)
    shape = (1, angles.shape[0], circuit.dim)  # one copy of the samples (see .blocks)
    psi = work.get("psi", shape, dtype)
    psi[...] = circuit.initial
    spare, scratch = work.get("spare", shape, dtype), work.get("scratch", shape, dtype)
    preps: list[Any] = []
    states: list[Any] = []  # states[j - first]: output of block j, when checkpointing
    for j, block in enumerate(blocks):
        prep = block.prepare(angles, work, f"prep{j}")
        preps.append(prep if j >= first else None)
        keep = checkpoints and j >= first
        out = work.get(f"state{j}", psi.shape, dtype) if keep else spare
        result = block.apply(psi, out, scratch, prep, not keep)
        if keep:
            states.append(result)
            psi = result
        elif result is spare:
            psi, spare = spare, psi
    return Sweep(first, preps, states, psi, work)


def reverse_sweep(circuit: FusedCircuit, sweep: Sweep, slots: Sequence[int], lam: Any) -> Any:
    """Derivatives by ``slots`` from the adjoint states ``lam`` (1, R, E, D) at the output:
    the blocks from the last to ``sweep.first``, un-applied to ``lam`` (and, without
    checkpoints, to the state).

    Returns:
        (R, E, S) real derivatives on the backend.
    """
    xp = circuit.backend.xp
    blocks, work, first = circuit.blocks, sweep.work, sweep.first
    dtype = circuit.backend.dtype
    phi = sweep.phi
    spare, scratch = work.get("spare", phi.shape, dtype), work.get("scratch", phi.shape, dtype)
    lam_spare = work.get("lam_spare", lam.shape, dtype)
    lam_scratch = work.get("lam_scratch", lam.shape, dtype)
    grads = xp.zeros((lam.shape[1], lam.shape[2], len(slots)), dtype=circuit.backend.real_dtype)
    for j in range(len(blocks) - 1, first - 1, -1):
        block = blocks[j]
        mine = [s for s, k in enumerate(slots) if circuit.slot_block[k] == j]
        if mine:
            local = block.gradient(lam, phi, sweep.preps[j])[0]  # (R, E, Kb)
            grads[..., np.array(mine)] = local[..., circuit.slot_local[np.array(slots)[mine]]]
        if j == first:
            break
        result = block.apply_adjoint(lam, lam_spare, lam_scratch, sweep.preps[j], True)
        if result is lam_spare:
            lam, lam_spare = lam_spare, lam
        if sweep.states:
            phi = sweep.states[j - 1 - first]
        else:
            result = block.apply_adjoint(phi, spare, scratch, sweep.preps[j], True)
            if result is spare:
                phi, spare = spare, phi
    return grads


def adjoint_states(readout: Readout, phi: Any, cotangent: Any = None) -> Any:
    """(1, R, O, D) adjoint states of every output at the (1, R, D) final states ``phi``, or
    (1, R, 1, D) for a (R, O) real ``cotangent``."""
    if cotangent is None:
        return readout.adjoint_states(phi[0])[None]
    return readout.cotangent_state(phi[0], cotangent)[None, :, None]


def adjoint_gradients(
    circuit: FusedCircuit,
    readout: Readout,
    angles: Any,
    slots: Sequence[int],
    checkpoints: bool,
    work: Buffers | None = None,
    cotangent: Any = None,
) -> Any:
    """Derivatives of every output by the selected slots, or their vector-Jacobian product:
    a forward sweep, then a reverse sweep.

    Args:
        circuit: the fused program.
        readout: the outputs' readout (its ``adjoint_states`` or ``cotangent_state``).
        angles: (R, K) real angle table on the backend.
        slots: the S slot indices to differentiate by (each in some parametric block).
        checkpoints: keep every block's output from the forward sweep (memory for speed).
        work: buffers to reuse (default: fresh ones).
        cotangent: None for every output's derivatives; else (R, O) real ``g`` on the backend,
            for ``sum_o g[r, o] d out_o / d theta_s`` from ONE adjoint state per row.

    Returns:
        (R, O, S) real derivatives on the backend, or (R, 1, S) with a cotangent.
    """
    work = Buffers(circuit.backend.xp) if work is None else work
    first = int(min(circuit.slot_block[k] for k in slots))
    sweep = forward_sweep(circuit, angles, first, checkpoints, work)
    return reverse_sweep(circuit, sweep, slots, adjoint_states(readout, sweep.phi, cotangent))


def adjoint_cost(costs: np.ndarray, first: int, num_outputs: int, checkpoints: bool) -> float:
    """Relative cost per sample: the forward sweep, then per block from ``first`` on the
    adjoint states' un-apply and gradient (about two passes per output) and, without
    checkpoints, un-applying the state too."""
    back = costs[first:].sum() * (2.0 * num_outputs + (0.0 if checkpoints else 1.0))
    return float(costs.sum() + back)


ADJOINT_STATES = 5
"""States per sample of an adjoint pass besides checkpoints, adjoint states and the blocks'
per-sample data: the state, its spare and scratch, and two for the readout's temporaries."""

ADJOINT_PER_OUTPUT = 5
"""States per output of a sample in an adjoint pass: the adjoint state, its spare and scratch
buffers, and a block gradient's temporaries (a product and its imaginary part)."""

CHECKPOINT_MIN_SAMPLES = 16
"""Checkpoints are kept when at least this many samples (or the whole batch) fit with them."""


class AdjointStrategy:
    """Adjoint differentiation of a chunk of samples: the fused adjoint CUDA kernel where it
    serves the pass, else the block engine (any backend).

    Args:
        circuit: the fused program.
        readout: the outputs' readout.
        executor: sizes and runs the chunks.
        angle_map: the program's angles and their Jacobian.
        kernel: the fused CUDA kernels' runner (:class:`gpuqnn._cuda.select.KernelRunner`),
            or None.
    """

    name = "adjoint"

    def __init__(
        self,
        circuit: FusedCircuit,
        readout: Readout,
        executor: ChunkExecutor,
        angle_map: AngleMap,
        kernel: Any = None,
    ) -> None:
        self.circuit = circuit
        self.readout = readout
        self.executor = executor
        self.angle_map = angle_map
        self.kernel = kernel
        preps = [block.prep_bytes() for block in circuit.blocks]
        self._prep_bytes = sum(kept for kept, _temp in preps) + max(
            (temp for _kept, temp in preps), default=0
        )
        self._gradient_bytes = max((block.gradient_bytes() for block in circuit.blocks), default=0)

    def sample_bytes(
        self, slots: Sequence[int], columns: Sequence[int], checkpoints: bool, vjp: bool = False
    ) -> int:
        """Peak bytes per sample of the pass, with or without checkpoints; ``vjp``: one adjoint
        state per sample (a cotangent's) instead of one per output."""
        outputs = 1 if vjp else self.readout.num_outputs
        states = ADJOINT_STATES + ADJOINT_PER_OUTPUT * outputs
        if checkpoints:
            states += len(self.circuit.blocks) - int(self.circuit.slot_block[slots].min())
        fixed = (
            self._prep_bytes
            + self.angle_map.host_bytes(slots, columns)
            + self._gradient_bytes * outputs
        )
        return states * self.executor.state_bytes + fixed

    def fits(
        self,
        slots: Sequence[int],
        columns: Sequence[int],
        max_memory: int | None,
        vjp: bool = False,
    ) -> bool:
        """Whether ``gradient_method="auto"`` may choose this strategy: one sample's pass
        (without checkpoints) fits the budget; on the fused CUDA kernels, the fused adjoint
        kernel fits shared memory (where it does not, the fused parameter-shift launch serves
        before the block engine, whose cost is not comparable with the kernels')."""
        if self.kernel is not None:
            return self.kernel.fused_adjoint(slots, vjp)
        budget = self.executor.budget(max_memory)
        return self.sample_bytes(slots, columns, checkpoints=False, vjp=vjp) <= budget

    def cost(self, slots: Sequence[int], vjp: bool = False) -> float:
        """Relative cost per sample, in the units of the runner that executes it: the fused
        adjoint kernel's passes where it serves, else the block engine's (with checkpoints);
        ``vjp``: one adjoint state per sample whatever the number of outputs."""
        if self.kernel is not None and self.kernel.fused_adjoint(slots, vjp):
            return self.kernel.adjoint_cost(slots, vjp)
        first = int(self.circuit.slot_block[slots].min())
        outputs = 1 if vjp else self.readout.num_outputs
        return adjoint_cost(self.circuit.block_costs(), first, outputs, checkpoints=True)

    def run(
        self,
        params: Any,
        slots: list[int],
        columns: Sequence[int],
        max_memory: int | None,
        grad: Any,
        cotangent: Any = None,
    ) -> None:
        """Add the (B, O, J) derivatives of (B, P) ``params`` by ``columns`` into ``grad``; or,
        with a (B, O) ``cotangent`` on the backend, their (B, 1, J) vector-Jacobian product."""
        executor = self.executor
        batch = params.shape[0]
        vjp = cotangent is not None
        if self.kernel is not None and self.kernel.fused_adjoint(slots, vjp):
            self._run_kernel(params, slots, columns, max_memory, grad, cotangent)
            return
        with_checkpoints = self.sample_bytes(slots, columns, True, vjp)
        enough = min(batch, CHECKPOINT_MIN_SAMPLES)
        checkpoints = executor.budget(max_memory) // with_checkpoints >= enough
        per_sample = (
            with_checkpoints if checkpoints else self.sample_bytes(slots, columns, False, vjp)
        )
        sizing = executor.sizing(
            per_sample,
            max_memory,
            "an adjoint pass over one sample",
            batch,
            states=2 if vjp else 1 + self.readout.num_outputs,
        )

        def task(start: int, stop: int) -> None:
            chunk = params[start:stop]
            dslot = adjoint_gradients(
                self.circuit,
                self.readout,
                self.angle_map.angles(chunk),
                slots,
                checkpoints,
                executor.buffers(),
                None if cotangent is None else cotangent[start:stop],
            )
            grad[start:stop] += dslot @ self.angle_map.jacobian(chunk, slots, columns)

        executor.run(task, batch, sizing, max_memory)

    def _run_kernel(
        self,
        params: Any,
        slots: list[int],
        columns: Sequence[int],
        max_memory: int | None,
        grad: Any,
        cotangent: Any,
    ) -> None:
        """:meth:`run` on the fused adjoint kernel: one launch per chunk."""
        kernel = self.kernel
        vjp = cotangent is not None
        per_sample = kernel.adjoint_row_bytes(vjp, len(slots)) + self.angle_map.host_bytes(
            slots, columns
        )
        sizing = self.executor.sizing(
            per_sample, max_memory, "a fused adjoint launch over one sample", params.shape[0]
        )

        def task(start: int, stop: int) -> None:
            chunk = params[start:stop]
            g = None if cotangent is None else cotangent[start:stop]
            dslot = kernel.adjoint(self.angle_map.angles(chunk), slots, g)
            grad[start:stop] += dslot @ self.angle_map.jacobian(chunk, slots, columns)

        self.executor.run(task, params.shape[0], sizing, max_memory)

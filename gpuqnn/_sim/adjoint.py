"""Adjoint differentiation on the block engine, batched: one forward sweep and one backward sweep
for all rows (the strategy that chooses and runs it is :mod:`.adjoint_strategy`).

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

from .block_circuit import BlockCircuit
from .buffers import Buffers
from .protocols import Readout


@dataclass
class BlockSweep:
    """What a forward sweep over R rows keeps for the reverse sweep.

    Attributes:
        first: index of the first block the reverse sweep differentiates.
        preps: per block, its per-sample data (None before ``first``).
        states: with checkpoints, (1, R, D) outputs of the blocks from ``first`` on; else
            empty.
        phi: (1, R, D) complex final states.
        work: the buffers that hold them (and the reverse sweep's own).
        outputs: None: the readout computes the outputs from ``phi``.
    """

    first: int
    preps: list[Any]
    states: list[Any]
    phi: Any
    work: Buffers
    outputs: Any = None


def forward_sweep(
    circuit: BlockCircuit, angles: Any, first: int, checkpoints: bool, work: Buffers
) -> BlockSweep:
    """Evolve (R, K) real ``angles`` through every block, keeping what the reverse sweep
    from block ``first`` needs (each block's output from there on, with ``checkpoints``)."""
    blocks = circuit.blocks
    dtype = circuit.backend.dtype
    angles = circuit.backend.real_angles(angles)
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
    return BlockSweep(first, preps, states, psi, work)


def reverse_sweep(circuit: BlockCircuit, sweep: BlockSweep, slots: Sequence[int], lam: Any) -> Any:
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
    circuit: BlockCircuit,
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


ADJOINT_STATES = 5
"""States per sample of an adjoint pass besides checkpoints, adjoint states and the blocks'
per-sample data: the state, its spare and scratch, and two for the readout's temporaries."""

ADJOINT_PER_OUTPUT = 5
"""States per output of a sample in an adjoint pass: the adjoint state, its spare and scratch
buffers, and a block gradient's temporaries (a product and its imaginary part)."""

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
from typing import Any

import numpy as np

from .buffers import Workspace
from .fused import Engine


def adjoint_gradients(
    engine: Engine,
    readout: Any,
    angles: Any,
    slots: Sequence[int],
    checkpoints: bool,
    work: Workspace | None = None,
) -> Any:
    """Derivatives of every output by the selected slots.

    Args:
        engine: the program's engine.
        readout: has ``num_outputs`` and ``adjoint_states(psi (R, D)) -> (R, O, D)``.
        angles: (R, K) real angle table on the backend.
        slots: the S slot indices to differentiate by (each in some parametric block).
        checkpoints: keep every block's output from the forward sweep (memory for speed).
        work: buffers to reuse (default: fresh ones).

    Returns:
        (R, O, S) real derivatives on the backend.
    """
    xp = engine.backend.xp
    work = Workspace(xp) if work is None else work
    blocks = engine.blocks
    dtype = engine.backend.dtype
    angles = angles.astype(engine.backend.real_dtype, copy=False)
    rows, dim = angles.shape[0], engine.dim
    first = int(min(engine.slot_block[k] for k in slots))

    shape = (1, rows, dim)  # one copy of the samples (see gpuqnn._sim.blocks)
    psi = work.get("psi", shape, dtype)
    psi[...] = engine.initial
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
    phi = psi

    lam = readout.adjoint_states(phi[0])[None]  # (1, R, O, D)
    lam_spare = work.get("lam_spare", lam.shape, dtype)
    lam_scratch = work.get("lam_scratch", lam.shape, dtype)
    grads = xp.zeros((rows, lam.shape[2], len(slots)), dtype=engine.backend.real_dtype)
    for j in range(len(blocks) - 1, first - 1, -1):
        block = blocks[j]
        mine = [s for s, k in enumerate(slots) if engine.slot_block[k] == j]
        if mine:
            local = block.gradient(lam, phi, preps[j])[0]  # (R, O, Kb)
            grads[..., np.array(mine)] = local[..., engine.slot_local[np.array(slots)[mine]]]
        if j == first:
            break
        result = block.apply_adjoint(lam, lam_spare, lam_scratch, preps[j], True)
        if result is lam_spare:
            lam, lam_spare = lam_spare, lam
        if checkpoints:
            phi = states[j - 1 - first]
        else:
            result = block.apply_adjoint(phi, spare, scratch, preps[j], True)
            if result is spare:
                phi, spare = spare, phi
    return grads


def adjoint_cost(costs: np.ndarray, first: int, num_outputs: int, checkpoints: bool) -> float:
    """Relative cost per sample: the forward sweep, then per block from ``first`` on the
    adjoint states' un-apply and gradient (about two passes per output) and, without
    checkpoints, un-applying the state too."""
    back = costs[first:].sum() * (2.0 * num_outputs + (0.0 if checkpoints else 1.0))
    return float(costs.sum() + back)

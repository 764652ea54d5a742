"""The torch.distributed half of :mod:`gpuqnn.distributed`: this rank's device and cores, and
the shared-weight check :class:`gpuqnn.TorchConnector` runs on every forward pass.

Imports no torch at module level: :func:`check_shared_weights` imports ``torch.distributed``
where a connector (which has loaded torch) calls it.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from .._devices import env_index, local_rank_device


def _cuda_device_count() -> int:
    """CUDA devices this process sees (after ``CUDA_VISIBLE_DEVICES``): torch's count where
    torch is installed (a CPU build counts 0), else CuPy's, else 0. Does not initialise CUDA."""
    try:
        import torch  # noqa: PLC0415 - optional

        return int(torch.cuda.device_count())
    except ImportError:
        pass
    try:
        import cupy  # noqa: PLC0415 - optional

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - no CuPy, no driver: no device
        return 0


def local_device() -> str:
    """This process's device under ``torchrun``: one device per rank.

    torchrun sets ``RANK``/``WORLD_SIZE`` (global) and ``LOCAL_RANK``/``LOCAL_WORLD_SIZE``
    (on this node) for every process it starts. The device follows the one ``LOCAL_RANK``
    rule of :func:`gpuqnn._devices.local_rank_device`, which a network's ``device="auto"``
    follows too. Outside torchrun ``LOCAL_RANK`` counts as 0.

    Returns:
        ``"cpu"`` where no CUDA device is visible (no GPU, a CPU build of torch and no CuPy);
        ``"cuda:0"`` where one device is visible (``CUDA_VISIBLE_DEVICES`` gave this rank its
        own); else ``"cuda:<LOCAL_RANK>"``. The string works both as gpuqnn's ``device=`` and
        as a ``torch.device``.

    Raises:
        RuntimeError: ``LOCAL_RANK`` is not below the number of visible CUDA devices, and more
            than one is visible (more ranks per node than devices).
        ValueError: ``LOCAL_RANK`` is not a non-negative integer.
    """
    count = _cuda_device_count()
    if count == 0:
        env_index("LOCAL_RANK")  # a malformed LOCAL_RANK is an error on any machine
        return "cpu"
    index = local_rank_device(count)
    return f"cuda:{0 if index is None else index}"


def _local_world_size() -> int:
    """``LOCAL_WORLD_SIZE``, or 1 where it is unset."""
    size = env_index("LOCAL_WORLD_SIZE")
    return 1 if size is None else size


def pin_local_cores(
    local_rank: int | None = None, local_world_size: int | None = None
) -> set[int] | None:
    """Pin this process to its share of the node's CPU cores, so that ranks do not compete.

    gpuqnn's CPU engine starts one worker thread per core of the process's CPU affinity (at
    most 8), so two ranks on one node would each start a thread per core of the whole node.
    Call this first thing in each rank, before any network runs and before torch starts its
    threads: rank ``local_rank`` keeps the ``local_rank``-th of ``local_world_size`` contiguous
    slices of the cores it may use now (every rank keeps at least one core; with fewer cores
    than ranks, ranks share them round-robin). Threads started afterwards inherit the
    affinity.

    Args:
        local_rank: this process's rank on its node; None reads ``LOCAL_RANK`` (0 if unset).
        local_world_size: processes on this node; None reads ``LOCAL_WORLD_SIZE`` (1 if unset).

    Returns:
        The cores kept, or None where the platform has no CPU affinity (macOS, Windows):
        nothing is changed there.

    Raises:
        ValueError: ``local_rank`` outside ``[0, local_world_size)``.
    """
    rank = int(local_rank) if local_rank is not None else env_index("LOCAL_RANK") or 0
    size = _local_world_size() if local_world_size is None else int(local_world_size)
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"local_rank must be in [0, local_world_size), got {rank} of {size}")
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= size:
        share = len(cores) // size
        extra = len(cores) % size
        start = rank * share + min(rank, extra)
        kept = set(cores[start : start + share + (rank < extra)])
    else:
        kept = {cores[rank % len(cores)]}
    os.sched_setaffinity(0, kept)
    return kept


def check_shared_weights(connector: Any) -> None:
    """Warn (once per connector) when a connector's weight is in shared memory inside a
    process group of several ranks.

    ``torch.multiprocessing.spawn(fn, args=(model,))`` moves every CPU tensor it pickles into
    shared memory, so all ranks then hold the SAME weight storage: each rank's optimizer steps
    it, the steps add up, and training is silently wrong. The fix is to build the model inside
    each rank. :class:`gpuqnn.TorchConnector` calls this on every forward pass; it costs two
    attribute reads when nothing is wrong. CUDA weights are not checked (torch reports every
    CUDA tensor as shared).

    Args:
        connector: a ``TorchConnector`` (anything with a ``weight`` tensor).
    """
    if getattr(connector, "_gpuqnn_shared_weights_checked", False):
        return
    weight = getattr(connector, "weight", None)
    if weight is None or weight.device.type != "cpu" or not weight.is_shared():
        return
    import torch.distributed as dist  # noqa: PLC0415 - torch is loaded by the connector

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    connector._gpuqnn_shared_weights_checked = True
    warnings.warn(
        f"TorchConnector: rank {dist.get_rank()} of {dist.get_world_size()} holds its weight "
        "in shared memory, so the ranks share ONE weight tensor and every rank's optimizer "
        "steps it: training is silently wrong. This happens when the model is built before "
        "torch.multiprocessing.spawn and passed to the ranks. Build the model (network, "
        "connector, optimizer) inside each rank's function instead; see docs/distributed.md.",
        UserWarning,
        stacklevel=3,
    )

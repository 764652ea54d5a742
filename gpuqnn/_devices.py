"""The one rule that maps torchrun's ``LOCAL_RANK`` to a CUDA device.

Both :func:`gpuqnn.distributed.local_device` and a network's ``device="auto"``/``"gpu"``/
``"cuda"`` (:func:`gpuqnn._sim.backend.default_cuda_device`) call :func:`local_rank_device`, so
a rank computes on the device its helper names. The rule, for ``count`` visible CUDA devices:

- ``LOCAL_RANK`` unset (not under ``torchrun``): no rank device; the caller keeps its default;
- one visible device: device 0 (a scheduler gave each rank its own through
  ``CUDA_VISIBLE_DEVICES``, or the ranks share it);
- ``LOCAL_RANK < count``: device ``LOCAL_RANK``;
- ``LOCAL_RANK >= count > 1``: ``RuntimeError`` (more ranks per node than devices);
- ``LOCAL_RANK`` not a non-negative integer: ``ValueError`` naming the variable.

Imports nothing of gpuqnn, so that the simulator's backend selection can use it without
importing :mod:`gpuqnn.distributed`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def env_index(name: str, env: Mapping[str, str] | None = None) -> int | None:
    """The non-negative integer in environment variable ``name``, or None where it is unset or
    empty.

    Args:
        name: the variable, e.g. ``"LOCAL_RANK"``.
        env: the environment; None reads ``os.environ``.

    Raises:
        ValueError: the value is not a non-negative integer (the message names the variable).
    """
    value = (os.environ if env is None else env).get(name, "").strip()
    if value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(
            f"environment variable {name}={value!r} must be a non-negative integer (torchrun "
            f"sets it for every process it starts); unset it or fix it"
        )
    return number


def local_rank_device(count: int, env: Mapping[str, str] | None = None) -> int | None:
    """The CUDA device of this process by ``LOCAL_RANK`` (the module's rule).

    Args:
        count: CUDA devices this process sees (after ``CUDA_VISIBLE_DEVICES``), at least 1.
        env: the environment; None reads ``os.environ``.

    Returns:
        The device index, or None where ``LOCAL_RANK`` is unset (the caller's default holds).

    Raises:
        ValueError: ``LOCAL_RANK`` is not a non-negative integer, or ``count`` < 1.
        RuntimeError: ``LOCAL_RANK`` is not below ``count`` and ``count`` > 1 (the message
            names both and the fix).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1 visible CUDA device, got {count}")
    rank = env_index("LOCAL_RANK", env)
    if rank is None:
        return None
    if count == 1:
        return 0
    if rank >= count:
        raise RuntimeError(
            f"LOCAL_RANK={rank} but this process sees {count} CUDA device(s): start at most "
            f"{count} ranks per node (torchrun --nproc_per_node={count}), or give each rank its "
            "own device with CUDA_VISIBLE_DEVICES"
        )
    return rank

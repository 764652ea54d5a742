"""One thread count for every side of a benchmark (``--threads``), stated in its output: CPU
affinity (which sets gpuqnn's workers and XLA's pools), ``XLA_FLAGS`` and torch's threads."""

from __future__ import annotations

import importlib.util
import os
import sys


def cores() -> list[int]:
    """The CPU cores this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        return list(range(os.cpu_count() or 1))


def fix_threads(threads: int | None) -> str:
    """Hold every side to ``threads`` threads (None: their defaults); returns the line that
    says what each side runs on.

    Raises:
        ValueError: ``threads`` is below 1 or above the cores this process may use.
    """
    available = cores()
    if threads is None:
        return (
            f"threads: every side at its default on the {len(available)} cores this process "
            "may use (gpuqnn one worker per core, torch and XLA their own pools)"
        )
    if not 1 <= threads <= len(available):
        raise ValueError(f"--threads must be 1 to {len(available)} (the cores available)")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, available[:threads])
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "thread" not in f]
    if threads == 1:
        flags.append("--xla_cpu_multi_thread_eigen=false")
    flags.append(f"intra_op_parallelism_threads={threads}")
    os.environ["XLA_FLAGS"] = " ".join(flags)
    notes = []
    if importlib.util.find_spec("torch") is not None:
        import torch  # noqa: PLC0415 - optional

        torch.set_num_threads(threads)
        notes.append(f"torch {torch.get_num_threads()} intra-op")
    if "jax" in sys.modules:
        notes.append("XLA already started: its flags may not apply")
    from benchmarks.internals import available_cores  # noqa: PLC0415

    return (
        f"threads: {threads} for every side (CPU affinity {available[:threads]}: gpuqnn "
        f"{available_cores()} worker(s); XLA_FLAGS={os.environ['XLA_FLAGS']!r}"
        + "".join(f"; {n}" for n in notes)
        + ")"
    )

"""Buffers reused from one pass to the next.

A pass holds many state-sized arrays at once (the state and its spare, checkpoints, adjoint
states, phases). Allocated afresh on every call, each costs its first-touch page faults (about a
millisecond per MiB measured on our 2-core machines, more than the arithmetic on it). A
:class:`Buffers` keeps them: a named buffer grows to the largest size asked for and is handed
out again as a view. Each simulator owns its buffers (one set per worker thread); nothing is
shared between networks.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Buffers:
    """Named, growable buffers of one array module.

    Args:
        xp: the array module (``numpy`` or ``cupy``).
    """

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self._buffers: dict[tuple[str, np.dtype], Any] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
        """A C-contiguous array of ``shape`` and ``dtype`` whose memory is reused by later
        calls with the same ``name`` and ``dtype``; its contents are undefined.

        Two different names never share memory, so arrays from distinct names can be used
        together; a later ``get`` of the same name invalidates the earlier array.
        """
        dtype = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64))
        key = (name, dtype)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.size < size:
            self._buffers.pop(key, None)  # free the old one before allocating its successor
            del buffer
            buffer = self.xp.empty(max(size, 1), dtype=dtype)
            self._buffers[key] = buffer
        return buffer[:size].reshape(shape)

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return int(sum(buffer.nbytes for buffer in self._buffers.values()))

    def clear(self) -> None:
        """Release every buffer."""
        self._buffers.clear()

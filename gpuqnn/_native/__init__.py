"""The native CPU engine: a C++ interpreter over a program's op table, compiled ahead of time
(``gpuqnn._native._core``, built by ``pip install`` where a C++ compiler exists), that runs
each row's whole program with the row's state in cache, forward and adjoint.

- :mod:`.tables`: the program and readout encoded as the interpreter's tables;
- :mod:`.runner`: the engine behind the simulator's :class:`~gpuqnn._sim.protocols.Runner`
  protocol (:class:`NativeRunner`) and its factory :func:`native_runner`;
- :mod:`.load`: the compiled module, or why it is missing (logged once at INFO).

The kernels are compiled once per instruction set (generic, AVX2, AVX-512) and the best one
this CPU runs is chosen when a program is built (``GPUQNN_NATIVE_ISA`` overrides it).
"""

from __future__ import annotations

from .load import load_core
from .runner import NativeRunner, native_runner
from .tables import NativeTables, encode_tables, unsupported_reason

__all__ = [
    "NativeRunner",
    "NativeTables",
    "encode_tables",
    "load_core",
    "native_runner",
    "unsupported_reason",
]

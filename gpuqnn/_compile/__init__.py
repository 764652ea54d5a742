"""Compile: a qiskit circuit, once, into a :class:`Program` of native ops and an angle table."""

from __future__ import annotations

from .angles import AngleTable
from .circuit import compile_circuit
from .program import Op, OpKind, Program, unsupported_op

__all__ = ["AngleTable", "Op", "OpKind", "Program", "compile_circuit", "unsupported_op"]

"""Inline a circuit's composite instructions into one flat stream of operations.

``qc.append(other_circuit, ...)``, ``to_instruction()``, library circuits appended whole
(``zz_feature_map``, ``RealAmplitudes``, ``GMS``, ``qnn_circuit``, ...), ``initialize`` and
``Isometry`` are :class:`~qiskit.circuit.Instruction` objects that are not :class:`Gate`\\ s:
their effect is their ``definition``, a circuit that may itself hold measurements, resets and
further composite instructions. :func:`flatten` walks the definitions recursively and returns
the leaves in circuit order, on the outer circuit's qubit and clbit indices. Parameters need no
mapping of our own: qiskit keeps each definition bound to the instruction's parameters
(``assign_parameters`` rebinds definitions too), so the leaves carry the right expressions.

Gates (``Gate`` subclasses) are leaves: the compiler turns them into native ops by their
matrix or their own definition. Every leaf remembers the user's top-level instruction it came
from, so that an error can name what the user wrote rather than an internal sub-circuit.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from qiskit.circuit import (
    AnnotatedOperation,
    ControlFlowOp,
    Gate,
    Instruction,
    QuantumCircuit,
)

from .amplitudes import is_amplitude_encoding

# leaves that are not unitary gates and are handled by the compiler itself
NON_UNITARY_LEAVES = frozenset({"measure", "reset", "barrier", "delay"})
_ANONYMOUS = re.compile(r"^circuit-\d+$")


class Leaf(NamedTuple):
    """One operation of the flattened circuit.

    Attributes:
        operation: the qiskit operation (a gate, ``measure``, ``reset``, ``barrier``, ...).
        qubits: its qubits as indices into the outer circuit's qubits.
        clbits: its clbits as indices into the outer circuit's clbits.
        origin: how to name, in an error, the user's top-level instruction it comes from
            (e.g. ``"'ZZFeatureMap'"``, or ``"'measure'"`` for a top-level leaf).
    """

    operation: Any
    qubits: tuple[int, ...]
    clbits: tuple[int, ...]
    origin: str


def describe(operation: Any, position: int) -> str:
    """A name for the user's instruction at ``position`` of their circuit: its quoted name, or
    for an appended anonymous circuit (qiskit names those ``circuit-<counter>``) where it is."""
    name = getattr(operation, "name", type(operation).__name__)
    if _ANONYMOUS.match(name):
        return f"the appended circuit at position {position} of the circuit"
    return f"'{name}'"


def is_composite(operation: Any) -> bool:
    """Whether ``operation`` is an instruction to inline by its definition: not a gate, not
    a measurement, reset, barrier or delay, not classical control flow, not an amplitude
    encoding with unbound amplitudes (which has no definition; the compiler emits it)."""
    if isinstance(operation, (Gate, AnnotatedOperation, ControlFlowOp)):
        return False
    if is_amplitude_encoding(operation):
        return False
    if not isinstance(operation, Instruction) or operation.name in NON_UNITARY_LEAVES:
        return False
    return True


def flatten(circuit: QuantumCircuit) -> list[Leaf]:
    """The leaves of ``circuit`` in order, composite instructions inlined recursively.

    Args:
        circuit: the circuit.

    Returns:
        The leaves; a composite instruction without a definition is returned as a leaf (the
        compiler refuses it, naming it).
    """
    leaves: list[Leaf] = []
    for position, inst in enumerate(circuit.data):
        qubits = tuple(circuit.find_bit(q).index for q in inst.qubits)
        clbits = tuple(circuit.find_bit(c).index for c in inst.clbits)
        origin = describe(inst.operation, position)
        _walk(inst.operation, qubits, clbits, origin, leaves)
    return leaves


def _walk(
    operation: Any,
    qubits: tuple[int, ...],
    clbits: tuple[int, ...],
    origin: str,
    leaves: list[Leaf],
) -> None:
    definition = getattr(operation, "definition", None) if is_composite(operation) else None
    if not isinstance(definition, QuantumCircuit):
        leaves.append(Leaf(operation, qubits, clbits, origin))
        return
    for inst in definition.data:
        sub_qubits = tuple(qubits[definition.find_bit(q).index] for q in inst.qubits)
        sub_clbits = tuple(clbits[definition.find_bit(c).index] for c in inst.clbits)
        _walk(inst.operation, sub_qubits, sub_clbits, origin, leaves)

"""Compile a qiskit circuit once into a :class:`Program` of native ops and an angle table.

The native op kinds are :class:`~.program.OpKind`'s: constant dense, diagonal and permutation ops,
parametric rotations ``exp(-i theta/2 G)`` and phases, each optionally controlled.

Gates outside this set are rewritten once through their qiskit definitions; ``u``/``u3``/``u2``
become ``rz ry rz`` (global phases are dropped, which no output can observe). Gates whose
parameters are all bound become constant matrices. Runs of constant single-qubit gates on one
qubit are fused into one matrix. Qubits that no gate touches are left out of the simulation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit.circuit import (
    AnnotatedOperation,
    ControlFlowOp,
    ControlledGate,
    ControlModifier,
    Gate,
    Parameter,
    ParameterExpression,
    QuantumCircuit,
)
from qiskit.circuit.library import (
    RXGate,
    RXXGate,
    RYGate,
    RYYGate,
    RZGate,
    RZXGate,
    RZZGate,
)
from qiskit.quantum_info import Operator
from qiskit_machine_learning.exceptions import QiskitMachineLearningError

from .amplitudes import AmplitudeTree, is_amplitude_encoding
from .angles import AngleTable, FunctionOutput
from .evolution import diagonalise, evolution_time, hamiltonian, is_evolution, parity_mask
from .inline import Leaf, flatten, is_composite
from .noise import NoiseTable
from .program import Op, OpKind, Program

_ROTATIONS = {
    "rx": RXGate,
    "ry": RYGate,
    "rz": RZGate,
    "rxx": RXXGate,
    "ryy": RYYGate,
    "rzz": RZZGate,
    "rzx": RZXGate,
}
_PHASES = {"p", "u1"}
_SKIPPED = {"barrier", "delay", "id", "global_phase"}
_P_MASK = np.array([0.0, 1.0])  # p(theta): exp(i theta) where the target is 1
_PARITY_MASK = np.array([0.0, 1.0, 1.0, 0.0])  # cx p cx: exp(i theta) where the parity is 1
_ATOL = 1e-12


def compile_circuit(
    circuit: QuantumCircuit, parameters: Sequence[Parameter], noise: NoiseTable | None = None
) -> Program:
    """Compile ``circuit`` for the engine.

    Args:
        circuit: the circuit; its free parameters must all be in ``parameters``.
        parameters: the P parameters in column order (inputs, then weights).
        noise: a noise model's channels: each instruction's channel follows it as a
            ``CHANNEL`` op (gates outside ``noise.native`` are decomposed first), and the
            channels of a measured qubit precede its measurement (see :mod:`.noise`); the
            program then needs :func:`~.density.density_program` to run.

    Returns:
        The program.

    Composite instructions (appended circuits, library circuits, ``initialize``, ...) are
    inlined by their definitions (see :mod:`gpuqnn._compile.inline`); a reset of a qubit that no
    gate has acted on yet is a no-op.

    Raises:
        QiskitMachineLearningError: the circuit holds a gate after a measurement on its qubit,
            a reset after gates acted on its qubit, classical control flow, or an instruction
            that cannot be simulated; the message names the user's instruction.
    """
    emitter = _Emitter()
    measured: dict[int, int] = {}
    measured_qubits: set[int] = set()
    touched: set[int] = set()  # qubits some gate has acted on: no longer certainly |0>
    for leaf in flatten(circuit):
        op, qubits, where = leaf.operation, list(leaf.qubits), _where(leaf)
        if op.name == "measure":
            measured[leaf.clbits[0]] = qubits[0]
            measured_qubits.add(qubits[0])
            if noise is not None:
                emitter.channels(noise.measurement(qubits[0]))
            continue
        if op.name in _SKIPPED:
            if noise is not None:
                _skipped_noise(emitter, noise, op.name, qubits, where)
            continue
        if isinstance(op, ControlFlowOp):
            raise QiskitMachineLearningError(
                f"circuit contains the classically controlled instruction {where}, which "
                "the statevector engine cannot simulate; remove it from the circuit"
            )
        after_measure = measured_qubits.intersection(qubits)
        if after_measure:
            raise QiskitMachineLearningError(
                f"circuit applies {where} to qubit {min(after_measure)} after a 'measure' on "
                "it: mid-circuit measurements are not supported (only final measurements are)"
            )
        if op.name == "reset" or is_amplitude_encoding(op):  # the encoding resets first
            if touched.intersection(qubits):
                hit = min(touched.intersection(qubits))
                raise QiskitMachineLearningError(
                    f"circuit applies {where} to qubit {hit} after gates acted on it: a "
                    "reset is not unitary there (only a reset of a qubit still in |0>, e.g. at "
                    "the start or by 'initialize', can be simulated)"
                )
            if op.name == "reset":
                if noise is not None:  # the qubit is still |0>, its reset's error applies
                    emitter.channels(noise.after("reset", tuple(qubits)))
                continue  # the qubit is still |0>: the reset does nothing
        touched.update(qubits)
        emitter.origin = leaf.origin
        if noise is None:
            emitter.emit(op, qubits)
        else:
            emitter.emit_noisy(op, qubits, noise)
    if noise is not None:
        noise.check_readout(measured_qubits)
    fused = _fuse_parity_phases(emitter.finish())
    used = sorted({q for op in fused for q in op.qubits})
    qubit_map = np.full(circuit.num_qubits, -1, dtype=np.int64)
    qubit_map[used] = np.arange(len(used))
    mapping = [int(q) for q in qubit_map]
    ops = tuple(op.remap(mapping) for op in fused)
    table = AngleTable(emitter.slot_exprs, parameters)
    slot_ops = np.zeros(len(emitter.slot_exprs), dtype=np.int64)
    for i, op in enumerate(ops):
        if op.slot >= 0:
            slot_ops[op.slot] = i
    return Program(len(used), qubit_map, ops, table, slot_ops, measured, circuit.num_clbits)


def _skipped_noise(
    emitter: _Emitter, noise: NoiseTable, name: str, qubits: list[int], where: str
) -> None:
    """The channels of an instruction the engine skips (``id``, ``delay``: their errors
    apply as qiskit-aer applies them; a barrier runs nothing); relaxation that the noise model
    adds during a ``delay`` by its own pass is refused."""
    if name == "delay" and noise.delay_noise:
        raise QiskitMachineLearningError(
            f"circuit contains {where}, and the noise model adds relaxation during delays, "
            "which gpuqnn does not simulate; remove the delay or the noise model's delay pass"
        )
    if name != "barrier":
        emitter.channels(noise.after(name, tuple(qubits)))


class _Emitter:
    """Turns gates into native ops, fusing constant single-qubit gates per qubit."""

    def __init__(self) -> None:
        self.origin = "the circuit"  # the user's instruction being emitted, for errors
        self.ops: list[Op] = []
        self.slot_exprs: list[ParameterExpression | FunctionOutput] = []
        self._pending: dict[int, np.ndarray] = {}

    def finish(self) -> list[Op]:
        for q in sorted(self._pending):
            self._flush(q)
        return self.ops

    def _flush(self, qubit: int) -> None:
        matrix = self._pending.pop(qubit, None)
        if matrix is not None:
            op = _constant_op(matrix, (qubit,), (), 0)
            if op is not None:
                self.ops.append(op)

    def _append(self, op: Op) -> None:
        for q in op.qubits:
            self._flush(q)
        self.ops.append(op)

    def channels(self, channels: Sequence[tuple[np.ndarray, tuple[int, ...]]]) -> None:
        """Append noise channels (superoperator, circuit qubits) as ``CHANNEL`` ops."""
        for superop, qubits in channels:
            self._append(Op(OpKind.CHANNEL, tuple(qubits), data=superop))

    def emit_noisy(self, gate: Any, qubits: list[int], noise: NoiseTable) -> None:
        """``gate`` followed by its noise: a gate that a noisy simulator does not run as it is
        (its name is not in ``noise.native``) is decomposed through its definition first, so
        that the errors attach to the gates it is made of."""
        definition = getattr(gate, "definition", None)
        if (
            isinstance(gate, Gate)
            and gate.name not in noise.native
            and isinstance(definition, QuantumCircuit)
            and not is_amplitude_encoding(gate)
        ):
            for inst in definition.data:
                sub_qubits = [qubits[definition.find_bit(q).index] for q in inst.qubits]
                name = inst.operation.name
                if inst.clbits or name in ("measure", "reset"):
                    self.emit(inst.operation, sub_qubits)  # refused there, naming it
                elif name in _SKIPPED:
                    if name != "barrier":
                        self.channels(noise.after(name, tuple(sub_qubits)))
                else:
                    self.emit_noisy(inst.operation, sub_qubits, noise)
            return
        self.emit(gate, qubits)
        self.channels(noise.after(gate.name, tuple(qubits)))

    def emit(self, gate: Any, qubits: list[int]) -> None:
        name = gate.name
        if name in _SKIPPED:
            return
        if name in ("reset", "measure") or isinstance(gate, ControlFlowOp):
            raise QiskitMachineLearningError(
                f"{self.origin} contains '{name}' inside a gate definition, which the "
                "statevector engine cannot simulate"
            )
        if isinstance(gate, AnnotatedOperation):
            self._emit_annotated(gate, qubits)
            return
        if is_amplitude_encoding(gate):
            tree = AmplitudeTree(tuple(gate.params), self._named(name))
            for q, c, angle in tree.outputs():
                self._emit_rotation("ry", angle, (qubits[q],), tuple(qubits[q + 1 :]), c)
            return
        if not isinstance(gate, Gate):
            # a composite instruction inside a gate's definition (e.g. UCGate's): its own
            # definition is unitary if it holds gates only, which the recursion checks
            if not is_composite(gate) or not isinstance(gate.definition, QuantumCircuit):
                raise QiskitMachineLearningError(
                    f"circuit contains the instruction {self._named(name)}, which is not a unitary "
                    "gate and cannot be simulated by the statevector engine"
                )
            self._emit_definition(gate, qubits)
            return
        if is_evolution(gate):
            self._emit_evolution(gate, qubits)
            return
        if not _is_symbolic(gate.params):
            matrix = _try_matrix(gate)
            if matrix is not None:
                self._emit_constant(gate, matrix, qubits)
                return
        if name in _ROTATIONS:
            self._emit_rotation(name, gate.params[0], tuple(qubits), (), 0)
            return
        if name in _PHASES:
            self._emit_phase(gate.params[0], qubits[0], (), 0)
            return
        if name in ("u", "u3", "u2"):
            theta, phi, lam = gate.params if name != "u2" else (np.pi / 2, *gate.params)
            self._emit_rotation("rz", lam, (qubits[0],), (), 0)
            self._emit_rotation("ry", theta, (qubits[0],), (), 0)
            self._emit_rotation("rz", phi, (qubits[0],), (), 0)
            return
        if isinstance(gate, ControlledGate) and gate.base_gate.name in (*_ROTATIONS, *_PHASES):
            n_ctrl = gate.num_ctrl_qubits
            controls, targets = tuple(qubits[:n_ctrl]), tuple(qubits[n_ctrl:])
            angle = gate.base_gate.params[0]
            if gate.base_gate.name in _PHASES:
                self._emit_phase(angle, targets[0], controls, gate.ctrl_state)
            else:
                self._emit_rotation(gate.base_gate.name, angle, targets, controls, gate.ctrl_state)
            return
        if gate.definition is None:
            raise QiskitMachineLearningError(
                f"gate {self._named(name)} has neither a matrix nor a definition and cannot be "
                "simulated"
            )
        self._emit_definition(gate, qubits)

    def _named(self, name: str) -> str:
        """``name`` quoted, and the user's instruction it comes from when that is another."""
        return f"'{name}'" + ("" if self.origin == f"'{name}'" else f" (inside {self.origin})")

    def _emit_evolution(self, gate: Any, qubits: list[int]) -> None:
        """``exp(-i t H)`` exactly for a parameterised time t (see :mod:`.evolution`): the
        basis change, one parity phase per Walsh term of H's spectrum, the basis back."""
        evolution = diagonalise(hamiltonian(gate))
        time = evolution_time(gate)
        if evolution.basis is not None:
            self._emit_constant(None, evolution.basis.conj().T, qubits)
        for term in evolution.terms:
            targets = tuple(qubits[b] for b in term.bits)
            slot = self._new_slot(time * term.factor)
            self._append(Op(OpKind.PHASE, targets, (), 0, parity_mask(len(targets)), slot=slot))
        if evolution.basis is not None:
            self._emit_constant(None, evolution.basis, qubits)

    def _emit_definition(self, gate: Any, qubits: list[int]) -> None:
        definition = gate.definition
        for inst in definition.data:
            sub_qubits = [qubits[definition.find_bit(q).index] for q in inst.qubits]
            if inst.clbits:
                raise QiskitMachineLearningError(
                    f"{self.origin} contains '{inst.operation.name}' on classical bits inside "
                    f"'{gate.name}', which the statevector engine cannot simulate"
                )
            self.emit(inst.operation, sub_qubits)

    def _emit_annotated(self, op: AnnotatedOperation, qubits: list[int]) -> None:
        """Controlled versions of native gates (``gate.control(annotated=True)``); other
        annotated operations only when their parameters are bound."""
        modifiers = list(op.modifiers)
        base = op.base_op
        if len(modifiers) == 1 and isinstance(modifiers[0], ControlModifier):
            modifier = modifiers[0]
            controlled = base.control(
                modifier.num_ctrl_qubits, ctrl_state=modifier.ctrl_state, annotated=False
            )
            self.emit(controlled, qubits)
            return
        if _is_symbolic(getattr(base, "params", [])):
            raise QiskitMachineLearningError(
                f"annotated operation '{op.name}' with modifiers {modifiers} and unbound "
                "parameters cannot be simulated; bind its parameters or use gate.control()"
            )
        self._emit_constant(op, Operator(op).data, qubits)

    def _emit_constant(self, gate: Any, matrix: np.ndarray, qubits: list[int]) -> None:
        if isinstance(gate, ControlledGate) and gate.num_ctrl_qubits:
            n_ctrl = gate.num_ctrl_qubits
            base = _controlled_block(matrix, n_ctrl, gate.ctrl_state)
            if base is not None:
                op = _constant_op(
                    base, tuple(qubits[n_ctrl:]), tuple(qubits[:n_ctrl]), gate.ctrl_state
                )
                if op is not None:
                    self._append(op)
                return
        if len(qubits) == 1:
            q = qubits[0]
            previous = self._pending.get(q)
            self._pending[q] = matrix if previous is None else matrix @ previous
            return
        if len(qubits) > 3 and not (_is_diagonal(matrix) or _is_permutation(matrix)):
            # many-qubit dense matrices are slow to apply: use the definition's smaller gates
            # when it is exact (e.g. not UCGate(up_to_diagonal=True)'s, which is not)
            if _definition_matches(gate, matrix):
                self._emit_definition(gate, qubits)
                return
        op = _constant_op(matrix, tuple(qubits), (), 0)
        if op is not None:
            self._append(op)

    def _new_slot(self, angle: Any) -> int:
        self.slot_exprs.append(angle)
        return len(self.slot_exprs) - 1

    def _emit_rotation(
        self,
        name: str,
        angle: Any,
        targets: tuple[int, ...],
        controls: tuple[int, ...],
        ctrl_state: int,
    ) -> None:
        gate_cls = _ROTATIONS[name]
        if not isinstance(angle, FunctionOutput) and not _is_symbolic([angle]):
            matrix = gate_cls(_real_number(angle)).to_matrix()
            op = _constant_op(matrix, targets, controls, ctrl_state)
            if op is not None:
                self._append(op)
            return
        generator = 1j * gate_cls(np.pi).to_matrix()
        source = np.argmax(np.abs(generator) > 0.5, axis=1)
        coeffs = -1j * generator[np.arange(len(source)), source]
        self._append(
            Op(OpKind.ROT, targets, controls, ctrl_state, coeffs, source, self._new_slot(angle))
        )

    def _emit_phase(
        self, angle: Any, target: int, controls: tuple[int, ...], ctrl_state: int
    ) -> None:
        if not _is_symbolic([angle]):
            matrix = np.diag([1.0, np.exp(1j * _real_number(angle))])
            op = _constant_op(matrix, (target,), controls, ctrl_state)
            if op is not None:
                self._append(op)
            return
        self._append(
            Op(OpKind.PHASE, (target,), controls, ctrl_state, _P_MASK, slot=self._new_slot(angle))
        )


def _where(leaf: Leaf) -> str:
    """The offending leaf, and the user's instruction it comes from when that is another."""
    name = f"'{leaf.operation.name}'"
    return name if leaf.origin == name else f"{name} (inside {leaf.origin})"


def _is_cx(op: Op) -> bool:
    return (
        op.kind is OpKind.PERM
        and len(op.targets) == 1
        and len(op.controls) == 1
        and op.ctrl_state == 1
        and op.index_source[0] == 1
        and np.allclose(op.phases, 1.0)
    )


def _fuse_parity_phases(ops: list[Op]) -> list[Op]:
    """``cx(c, t) p(theta, t) cx(c, t)`` -> one phase on the parity of (t, c): diagonal, so it
    commutes with the rest of a ZZ-feature-map-like block (see the simulator's branching)."""
    out: list[Op] = []
    i = 0
    while i < len(ops):
        a = ops[i]
        if i + 2 < len(ops) and _is_cx(a):
            p, b = ops[i + 1], ops[i + 2]
            if (
                p.kind is OpKind.PHASE
                and not p.controls
                and p.targets == a.targets
                and _is_cx(b)
                and b.targets == a.targets
                and b.controls == a.controls
            ):
                out.append(
                    Op(
                        OpKind.PHASE,
                        (a.targets[0], a.controls[0]),
                        (),
                        0,
                        _PARITY_MASK,
                        slot=p.slot,
                    )
                )
                i += 3
                continue
        out.append(a)
        i += 1
    return out


def _constant_op(
    matrix: np.ndarray, targets: tuple[int, ...], controls: tuple[int, ...], ctrl_state: int
) -> Op | None:
    """A constant op for ``matrix``, classified as diag/perm/dense; None for the identity."""
    matrix = np.asarray(matrix, dtype=complex)
    if _is_diagonal(matrix):
        diag = np.diag(matrix).copy()
        if np.allclose(diag, 1.0, atol=_ATOL, rtol=0):
            return None
        return Op(OpKind.DIAG, targets, controls, ctrl_state, diag)
    if _is_permutation(matrix):
        source = np.argmax(np.abs(matrix) > _ATOL, axis=1)
        phases = matrix[np.arange(len(source)), source].copy()
        return Op(OpKind.PERM, targets, controls, ctrl_state, phases, source)
    return Op(OpKind.DENSE, targets, controls, ctrl_state, matrix)


def _controlled_block(matrix: np.ndarray, n_ctrl: int, ctrl_state: int) -> np.ndarray | None:
    """The block a controlled gate applies where its controls hold ``ctrl_state``, or None
    if the matrix is not the identity elsewhere. Read from the full matrix, so phases that
    qiskit keeps outside ``base_gate`` (e.g. CU's gamma) are included."""
    dim = matrix.shape[0]
    n_target = dim.bit_length() - 1 - n_ctrl
    inside = ctrl_state + (np.arange(2**n_target) << n_ctrl)
    block: np.ndarray = matrix[np.ix_(inside, inside)]
    rest = np.setdiff1d(np.arange(dim), inside)
    expected = np.eye(dim, dtype=complex)
    expected[np.ix_(inside, inside)] = block
    if rest.size and not np.allclose(matrix, expected, atol=_ATOL, rtol=0):
        return None
    return block


def _is_diagonal(matrix: np.ndarray) -> bool:
    return bool(np.allclose(matrix - np.diag(np.diag(matrix)), 0.0, atol=_ATOL, rtol=0))


def _is_permutation(matrix: np.ndarray) -> bool:
    nonzero = np.abs(matrix) > _ATOL
    return bool(np.all(nonzero.sum(axis=0) == 1) and np.all(nonzero.sum(axis=1) == 1))


def _is_symbolic(params: Sequence[Any]) -> bool:
    return any(isinstance(p, ParameterExpression) and p.parameters for p in params)


def _number(value: Any) -> complex:
    if isinstance(value, ParameterExpression):
        return complex(value)
    return complex(value)


def _real_number(value: Any) -> float:
    """A bound gate parameter as a float (a complex one with no imaginary part)."""
    number = _number(value)
    if number.imag != 0:
        raise ValueError(f"gate parameter {value!r} is complex")
    return number.real


def _definition_matches(gate: Any, matrix: np.ndarray) -> bool:
    """Whether ``gate``'s definition implements ``matrix`` up to a global phase."""
    definition = getattr(gate, "definition", None)
    if not isinstance(definition, QuantumCircuit) or definition.parameters:
        return False
    try:
        implemented = Operator(definition).data
    except Exception:  # a definition with non-unitary parts has no operator
        return False
    overlap = np.vdot(implemented.ravel(), matrix.ravel())
    if abs(overlap) < _ATOL:
        return False
    phase = overlap / abs(overlap)
    return bool(np.allclose(implemented * phase, matrix, atol=1e-9, rtol=0))


def _try_matrix(gate: Any) -> np.ndarray | None:
    try:
        matrix = gate.to_matrix()
    except Exception:  # gates without a matrix form, e.g. opaque or parameterised ones
        return None
    return np.asarray(matrix, dtype=complex)

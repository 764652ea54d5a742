"""Random native programs (every op kind the CUDA kernels support), readouts and shifts for them,
and the NumPy engine's outputs as their reference: shared by the kernel tests
(``test_cuda_kernels.py``, ``test_cuda_adjoint.py``) and the GPU acceptance run's kernel stage."""

from __future__ import annotations

import numpy as np
from qiskit.circuit import ParameterVector
from qiskit.circuit.library import RXGate, RXXGate, RYGate, RYYGate, RZGate, RZXGate, RZZGate
from qiskit.quantum_info import Pauli, SparsePauliOp, random_unitary

from gpuqnn._compile import Op, OpKind, Program
from gpuqnn._compile.angles import AngleTable
from gpuqnn._sim.backend import select_backend
from gpuqnn._sim.block_circuit import BlockCircuit
from gpuqnn._sim.readout import PauliReadout, ProbabilityReadout

_ROTATIONS = [RXGate, RYGate, RZGate, RXXGate, RYYGate, RZZGate, RZXGate]


def _random_op(rng: np.random.Generator, n: int, kind: str, slot: int) -> Op:
    """One op of ``kind`` on random qubits, 1-3 targets (diag up to 5), random controls."""
    max_targets = min(n, 5 if kind == "diag" else 3)
    k = int(rng.integers(1, max_targets + 1))
    if kind == "rot":
        k = min(k, 2) if rng.random() < 0.7 else k  # qiskit rotations, or a Pauli string
    qubits = [int(q) for q in rng.permutation(n)]
    targets = tuple(qubits[:k])
    controls = tuple(qubits[k : k + int(rng.integers(0, min(3, n - k) + 1))])
    ctrl_state = int(rng.integers(0, 1 << len(controls)))
    dim = 1 << k
    if kind == "dense":
        return Op(
            OpKind.DENSE,
            targets,
            controls,
            ctrl_state,
            random_unitary(dim, seed=int(rng.integers(1 << 30))).data,
        )
    if kind == "diag":
        return Op(
            OpKind.DIAG, targets, controls, ctrl_state, np.exp(1j * rng.uniform(0, 2 * np.pi, dim))
        )
    if kind == "perm":
        return Op(
            OpKind.PERM,
            targets,
            controls,
            ctrl_state,
            np.exp(1j * rng.uniform(0, 2 * np.pi, dim)),
            rng.permutation(dim),
        )
    if kind == "phase":
        mask = rng.integers(0, 2, dim).astype(float)
        return Op(OpKind.PHASE, targets, controls, ctrl_state, mask, slot=slot)
    if k <= 2 and rng.random() < 0.8:
        candidates = [g for g in _ROTATIONS if g(0.0).num_qubits == k]
        generator = 1j * candidates[int(rng.integers(len(candidates)))](np.pi).to_matrix()
    else:
        label = "".join(rng.choice(list("IXYZ"), k))
        generator = Pauli(label).to_matrix()
    source = np.argmax(np.abs(generator) > 0.5, axis=1)
    coeffs = -1j * generator[np.arange(dim), source]
    return Op(OpKind.ROT, targets, controls, ctrl_state, coeffs, source, slot)


def random_program(seed: int, n: int, num_ops: int = 24) -> Program:
    """A program over every op kind, with one parameter per slot."""
    rng = np.random.default_rng(seed)
    kinds = ["dense", "diag", "perm", "rot", "phase"]
    ops = []
    slots = 0
    for i in range(num_ops):
        kind = kinds[i % 5] if i < 5 else kinds[int(rng.integers(5))]
        op = _random_op(rng, n, kind, slots)
        slots += op.slot >= 0
        ops.append(op)
    if n >= 2:  # the compiler's fused cx-p-cx: a phase on the parity of two qubits
        a, b = (int(q) for q in rng.permutation(n)[:2])
        ops.append(Op(OpKind.PHASE, (a, b), (), 0, np.array([0.0, 1.0, 1.0, 0.0]), slot=slots))
        slots += 1
    params = list(ParameterVector("t", slots))
    slot_ops = np.array([i for i, op in enumerate(ops) if op.slot >= 0], dtype=np.int64)
    return Program(n, np.arange(n), tuple(ops), AngleTable(params, params), slot_ops)


def _observables(rng: np.random.Generator, n: int, count: int = 3) -> list[SparsePauliOp]:
    observables = []
    for _ in range(count):
        labels = ["".join(rng.choice(list("IXYZ"), n)) for _ in range(int(rng.integers(1, 5)))]
        observables.append(SparsePauliOp(labels, rng.uniform(-1.5, 1.5, len(labels))))
    return observables


def make_readout(kind: str, n: int, seed: int, dtype: str) -> PauliReadout | ProbabilityReadout:
    """``pauli``: 3 multi-term observables; ``direct``: the identity interpret (one output per
    basis state); ``pieces``: a partial measurement mapped by a non-trivial interpret, with
    keys above a limit dropped."""
    rng = np.random.default_rng(seed + 1000)
    backend = select_backend("cpu", dtype)
    if kind == "pauli":
        return PauliReadout(_observables(rng, n), np.arange(n), n, backend)
    if kind == "direct":
        return ProbabilityReadout(list(range(n)), n, None, (1 << n,), None, backend)
    measured = [int(q) for q in rng.permutation(n)[: max(1, n - 1)]] + [-1]
    return ProbabilityReadout(
        measured, n, lambda key: key % 3, (3,), max(1, (1 << len(measured)) - 3), backend
    )


def random_shifts(rng: np.random.Generator, slots: int, count: int) -> tuple[np.ndarray, ...]:
    """(S,) int32 shift slots (first -1, the unshifted block) and (S,) float64 shifts."""
    slot = np.concatenate([[-1], rng.integers(-1, max(slots, 1), count - 1)]).astype(np.int32)
    if slots == 0:
        slot[:] = -1
    value = np.where(slot >= 0, rng.choice([np.pi / 2, -np.pi / 2, 1.5 * np.pi], count), 0.0)
    return slot, value.astype(np.float64)


def engine_outputs(
    program: Program,
    readout,
    dtype: str,
    base: np.ndarray,
    shift_slot: np.ndarray,
    shift_value: np.ndarray,
) -> np.ndarray:
    """The NumPy engine on explicitly shifted angles, rows laid out s * B + b."""
    angles = np.tile(base, (len(shift_slot), 1))
    batch = base.shape[0]
    for s, (slot, value) in enumerate(zip(shift_slot, shift_value, strict=True)):
        if slot >= 0:
            angles[s * batch : (s + 1) * batch, slot] += value
    psi = BlockCircuit(program, select_backend("cpu", dtype)).evolve(angles)
    return np.asarray(readout(psi), dtype=np.float64)

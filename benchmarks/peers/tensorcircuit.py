"""The TensorCircuit-ng peers: the workload's circuit translated gate by gate (:mod:`.translation`)
into a function of one sample in TensorCircuit-ng's backend (JAX), for ``vmap``, ``jit``,
``jacrev`` and ``vjp``. Gates without a TensorCircuit-ng method of the same matrix and without
parameters are applied as their qiskit matrix; Z/I estimator terms are read from the
probabilities with a +-1 vector, other terms by ``expectation_ps``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorcircuit as tc
from qiskit.quantum_info import Operator

from benchmarks.implementations import JACOBIAN, Options, Unsupported
from benchmarks.peers import translation as tr
from benchmarks.peers.jax_common import JaxImplementation, jax_x64, versions
from benchmarks.workloads import QNNSpec

_GATES: dict[str, str] = {
    **{name: name for name in ("h", "x", "y", "z", "s", "t", "cy", "cz", "swap", "u")},
    **{name: name for name in ("rx", "ry", "rz", "rxx", "ryy", "rzz", "crx", "cry", "crz")},
    **{"p": "phase", "cp": "cphase", "sdg": "sd", "tdg": "td", "cx": "cnot", "ccx": "toffoli"},
}
"""qiskit gate name -> the ``tc.Circuit`` method of the same matrix."""
KEYWORDS = ("theta", "phi", "lbd")  # the methods' angle keywords, in qiskit's order


@dataclass(frozen=True)
class _Gate:
    """One gate of the translated circuit: a named method with angles, or a fixed matrix."""

    method: str
    wires: tuple[int, ...]
    angles: tuple[tuple[str, Callable[[tr.Env], Any]], ...] = ()
    matrix: np.ndarray | None = None


def translate_gates(spec: QNNSpec) -> list[_Gate]:
    """The circuit's gates on reversed wires; ``ValueError`` names a parametrized instruction
    without a translation or an untranslatable angle."""
    circuit = spec.circuit
    gates = []
    for instruction in circuit.data:
        operation = instruction.operation
        name = operation.name
        if name in tr.SKIPPED:
            continue
        on = tr.wires(circuit, instruction)
        if name in _GATES:
            angles = tr.gate_angles(operation, tc.backend)
            keywords = KEYWORDS[: len(angles)]
            gates.append(_Gate(_GATES[name], on, tuple(zip(keywords, angles, strict=True))))
        elif not operation.params:
            # qiskit's matrix is little-endian: its last qubit is the most significant
            gates.append(_Gate("unitary", on[::-1], matrix=Operator(operation).data))
        else:
            raise ValueError(
                f"the TensorCircuit-ng peers cannot translate the parametrized instruction "
                f"{name!r}; known: {sorted(_GATES)} and any gate without parameters"
            )
    return gates


def _z_signs(label: str) -> np.ndarray:
    """The diagonal of a Z/I Pauli label (character i on wire i, wire 0 most significant)."""
    n = len(label)
    index = np.arange(2**n)
    parity = np.zeros(2**n, dtype=np.int64)
    for i, c in enumerate(label):
        if c == "Z":
            parity ^= (index >> (n - 1 - i)) & 1
    return 1.0 - 2.0 * parity


def sample_function(spec: QNNSpec) -> Callable[[Any, Any], Any]:
    """``f(x, w) -> (O,)``: one sample's outputs, in TensorCircuit-ng's backend and the dtype
    set when ``f`` is traced."""
    tr.require_inputs(spec, "TensorCircuit-ng")
    gates = translate_gates(spec)
    input_names = [p.name for p in spec.input_params]
    weight_names = [p.name for p in spec.weight_params]
    n = spec.num_qubits
    terms = tr.pauli_terms(spec) if spec.kind == "estimator" else None
    interpret = tr.interpret_matrix(spec)

    def circuit(x: Any, w: Any) -> Any:
        env = {name: x[i] for i, name in enumerate(input_names)}
        env.update({name: w[j] for j, name in enumerate(weight_names)})
        c = tc.Circuit(n)
        for gate in gates:
            if gate.matrix is not None:
                c.unitary(*gate.wires, unitary=tc.backend.cast(gate.matrix, tc.dtypestr))
            else:
                keywords = {keyword: angle(env) for keyword, angle in gate.angles}
                getattr(c, gate.method)(*gate.wires, **keywords)
        return c

    def outputs(x: Any, w: Any) -> Any:
        c = circuit(x, w)
        backend = tc.backend
        if terms is None:
            probs = backend.real(c.probability())
            if interpret is not None:
                probs = probs @ backend.cast(interpret, tc.rdtypestr)
            return probs
        probs = None
        values = []
        for observable in terms:
            value = 0.0
            for label, coeff in observable:
                if set(label) <= {"Z", "I"}:
                    if probs is None:
                        probs = backend.real(c.probability())
                    signs = backend.cast(_z_signs(label), tc.rdtypestr)
                    value = value + coeff * backend.sum(probs * signs)
                else:
                    paulis = {k: [i for i, ch in enumerate(label) if ch == k] for k in "XYZ"}
                    value = value + coeff * backend.real(
                        c.expectation_ps(x=paulis["X"], y=paulis["Y"], z=paulis["Z"])
                    )
            values.append(value)
        return backend.stack(values)

    return outputs


@contextmanager
def tensorcircuit_dtype(dtype: str) -> Iterator[None]:
    """TensorCircuit-ng's dtype set to ``dtype`` in the block, JAX's 64-bit mode kept on
    (``tc.set_dtype`` turns it off for complex64, which would make other peers float32)."""
    jax = jax_x64()
    old = tc.dtypestr
    tc.set_dtype(dtype)
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        tc.set_dtype(old)
        jax.config.update("jax_enable_x64", True)


def jax_peer(
    spec: QNNSpec, options: Options, dtype: str = "complex128", gradients: str = JACOBIAN
) -> JaxImplementation:
    """TensorCircuit-ng on JAX (the CPU): ``jit(vmap)`` of the one-sample function, per-sample
    Jacobians by ``jacrev`` or one ``jax.vjp`` with ``gradients=VJP``."""
    del options  # on the CPU
    jax = jax_x64()
    tc.set_backend("jax")
    try:
        outputs = sample_function(spec)
    except ValueError as exc:
        raise Unsupported(str(exc)) from exc

    def single(x: Any, w: Any) -> Any:
        with tensorcircuit_dtype(dtype):  # read when traced: the dtype of this peer's circuits
            return outputs(x, w)

    style = "jacrev per sample" if gradients == JACOBIAN else "vjp"
    return JaxImplementation(
        jax.vmap(single, in_axes=(0, None)),
        single,
        spec.num_outputs,
        gradients,
        np.float32 if dtype == "complex64" else np.float64,
        f"{versions('tensorcircuit-ng', 'jax')}: jit(vmap), {style}, {dtype}",
    )

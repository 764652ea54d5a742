"""The PennyLane peers: the workload's circuit translated gate by gate (:mod:`.translation`) into
a quantum function of broadcast inputs, with angles compiled for the interface's array module
(torch, ``jax.numpy`` or PennyLane's autograd NumPy) so that they stay differentiable."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pennylane as qml

from benchmarks.implementations import (
    JACOBIAN,
    VJP,
    Gradients,
    Implementation,
    Options,
    Unsupported,
)
from benchmarks.measure import vjp_cotangent
from benchmarks.peers.jax_common import JaxImplementation, jax_x64, versions
from benchmarks.peers.translation import (
    SKIPPED,
    Env,
    compile_expression,  # noqa: F401 - the translation tests import it from here
    gate_angles,
    interpret_matrix,
    pauli_terms,
    require_inputs,
    wires,
)
from benchmarks.workloads import QNNSpec

_GATES: dict[str, Callable[..., Any]] = {
    **{name: getattr(qml, name.upper()) for name in ("s", "t", "sx", "cy", "cz", "swap")},
    **{name: getattr(qml, name.upper()) for name in ("rx", "ry", "rz", "crx", "cry", "crz")},
    **{"h": qml.Hadamard, "x": qml.PauliX, "y": qml.PauliY, "z": qml.PauliZ, "cx": qml.CNOT},
    **{"sdg": qml.adjoint(qml.S), "tdg": qml.adjoint(qml.T), "ccx": qml.Toffoli, "u": qml.U3},
    **{"p": qml.PhaseShift, "cp": qml.ControlledPhaseShift},
    **{"rxx": qml.IsingXX, "ryy": qml.IsingYY, "rzz": qml.IsingZZ},
}
"""qiskit gate name -> the PennyLane operation of the same matrix (on reversed wires)."""


@dataclass(frozen=True)
class _Gate:
    """One gate of the translated circuit."""

    operation: Callable[..., Any]
    wires: tuple[int, ...]
    angles: tuple[Callable[[Env], Any], ...]


def translate_gates(spec: QNNSpec, math: ModuleType) -> list[_Gate]:
    """The circuit's gates as PennyLane operations on reversed wires; ``ValueError`` names an
    instruction without a translation or an untranslatable angle."""
    circuit = spec.circuit
    gates = []
    for instruction in circuit.data:
        name = instruction.operation.name
        if name in SKIPPED:
            continue
        if name not in _GATES:
            raise ValueError(
                f"the PennyLane peers cannot translate the instruction {name!r}; "
                f"known: {sorted(_GATES)}"
            )
        angles = gate_angles(instruction.operation, math)
        gates.append(_Gate(_GATES[name], wires(circuit, instruction), angles))
    return gates


def pauli_observable(label: str, coeff: float = 1.0) -> Any:
    """The PennyLane operator of a Pauli label (character i on wire i) times ``coeff``."""
    paulis = {"X": qml.PauliX, "Y": qml.PauliY, "Z": qml.PauliZ}
    factors = [paulis[c](i) for i, c in enumerate(label) if c != "I"]
    term = functools.reduce(operator.matmul, factors) if factors else qml.Identity(0)
    return term if coeff == 1.0 else qml.s_prod(float(coeff), term)


def observables(spec: QNNSpec) -> list[Any]:
    """The estimator's observables as PennyLane operators (default ``Z^n``)."""
    result = []
    for observable in pauli_terms(spec):
        terms = [pauli_observable(label, c) for label, c in observable]
        result.append(terms[0] if len(terms) == 1 else qml.sum(*terms))
    return result


def quantum_function(spec: QNNSpec, math: ModuleType) -> Callable[[Any, Any], Any]:
    """A quantum function ``((B, I) inputs, (W,) weights)`` -> one ``qml.expval`` per
    observable, or the sampler's ``qml.probs`` of all wires; the inputs broadcast the batch."""
    require_inputs(spec, "PennyLane")
    gates = translate_gates(spec, math)
    input_names = [p.name for p in spec.input_params]
    weight_names = [p.name for p in spec.weight_params]
    measured = observables(spec) if spec.kind == "estimator" else None
    all_wires = list(range(spec.num_qubits))

    def circuit(inputs: Any, weights: Any) -> Any:
        env = {name: inputs[:, i] for i, name in enumerate(input_names)}
        env.update({name: weights[j] for j, name in enumerate(weight_names)})
        for gate in gates:
            gate.operation(*(angle(env) for angle in gate.angles), wires=gate.wires)
        if measured is None:
            return qml.probs(wires=all_wires)
        return tuple(qml.expval(observable) for observable in measured)

    return circuit


def stack_outputs(
    values: Any, math: ModuleType, num_outputs: int, interpret: Any | None = None
) -> Any:
    """A QNode's result as ``(B, O)`` outputs: expectation values stacked along the last
    axis, or probabilities times the interpret matrix (an array of ``math``'s kind)."""
    if isinstance(values, Sequence):
        values = math.stack(list(values), -1) if len(values) > 1 else values[0][..., None]
    if interpret is not None:
        values = values @ interpret
    return math.reshape(values, (-1, num_outputs))


class PennyLaneBackprop:
    """PennyLane ``default.qubit`` with torch backprop over a broadcast batch on the torch
    ``device``; ``backward`` is one VJP, ``sum(vjp_cotangent * outputs).backward()``."""

    gradients = VJP

    def __init__(self, spec: QNNSpec, device: str = "cpu") -> None:
        import torch  # noqa: PLC0415 - optional peer

        self.torch = torch
        self.device = torch.device(device)
        self.num_outputs = spec.num_outputs
        wires = spec.num_qubits
        self.qnode = qml.QNode(
            quantum_function(spec, torch),
            qml.device("default.qubit", wires=wires),
            interface="torch",
            diff_method="backprop",
        )
        matrix = interpret_matrix(spec)
        self.interpret = None if matrix is None else self._tensor(matrix)
        self._cotangents: dict[tuple[int, ...], Any] = {}

    def _tensor(self, array: np.ndarray, requires_grad: bool = False) -> Any:
        return self.torch.tensor(
            array, dtype=self.torch.float64, device=self.device, requires_grad=requires_grad
        )

    def _outputs(self, inputs: Any, weights: Any) -> Any:
        return stack_outputs(
            self.qnode(inputs, weights), self.torch, self.num_outputs, self.interpret
        )

    def forward(self, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(B, O) outputs, without autograd recording."""
        with self.torch.no_grad():
            return self._outputs(self._tensor(inputs), self._tensor(weights)).cpu().numpy()

    def backward(self, inputs: np.ndarray, weights: np.ndarray, input_gradients: bool) -> Gradients:
        """One VJP: ``((B, I) or None, (W,))`` gradients of ``sum(cotangent * outputs)``."""
        x = self._tensor(inputs, requires_grad=input_gradients)
        w = self._tensor(weights, requires_grad=True)
        outputs = self._outputs(x, w)
        shape = tuple(outputs.shape)
        if shape not in self._cotangents:
            self._cotangents[shape] = self._tensor(vjp_cotangent(shape))
        (outputs * self._cotangents[shape]).sum().backward()
        return (x.grad.cpu().numpy() if input_gradients else None), w.grad.cpu().numpy()

    def sync(self) -> None:
        """Wait for queued CUDA work."""
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def describe(self) -> str:
        """Where it runs."""
        return f"default.qubit + torch backprop on {self.device.type}, complex128"


class LightningAdjoint:
    """PennyLane-Lightning ``lightning.qubit`` with the adjoint method, per-sample Jacobians;
    estimators only (adjoint differentiation takes expectation values)."""

    gradients = JACOBIAN
    CHUNK = 8
    """Samples per ``qml.jacobian`` call: one call over B samples costs O(B^2) (one VJP per
    output; measured 6 ms per sample at B = 16, 55 ms at B = 256)."""

    def __init__(self, spec: QNNSpec) -> None:
        if spec.kind != "estimator":
            raise Unsupported(
                "lightning's adjoint method differentiates expectation values "
                "only, not the sampler's probabilities"
            )
        from pennylane import numpy as pnp  # noqa: PLC0415 - optional peer

        self.qml, self.pnp = qml, pnp
        self.num_outputs = spec.num_outputs
        self.qnode = qml.QNode(
            quantum_function(spec, pnp),
            qml.device("lightning.qubit", wires=spec.num_qubits),
            interface="autograd",
            diff_method="adjoint",
        )

    def _outputs(self, inputs: Any, weights: Any) -> Any:
        return stack_outputs(self.qnode(inputs, weights), self.pnp, self.num_outputs)

    def forward(self, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(B, O) outputs."""
        pnp = self.pnp
        return np.asarray(
            self._outputs(
                pnp.array(inputs, requires_grad=False), pnp.array(weights, requires_grad=False)
            )
        )

    def backward(self, inputs: np.ndarray, weights: np.ndarray, input_gradients: bool) -> Gradients:
        """Per-sample Jacobians ``((B, O, I) or None, (B, O, W))``, :data:`CHUNK` samples per
        ``qml.jacobian`` call."""
        parts = [
            self._jacobians(inputs[start : start + self.CHUNK], weights, input_gradients)
            for start in range(0, inputs.shape[0], self.CHUNK)
        ]
        weight_grads = np.concatenate([w for _x, w in parts])
        if not input_gradients:
            return None, weight_grads
        return np.concatenate([x for x, _w in parts]), weight_grads

    def _jacobians(
        self, inputs: np.ndarray, weights: np.ndarray, input_gradients: bool
    ) -> Gradients:
        pnp = self.pnp
        x = pnp.array(inputs, requires_grad=input_gradients)
        w = pnp.array(weights, requires_grad=True)
        if not input_gradients:
            return None, np.asarray(self.qml.jacobian(self._outputs, argnums=1)(x, w))
        jx, jw = self.qml.jacobian(self._outputs, argnums=(0, 1))(x, w)
        # (B, O, B, I): samples are independent, so only the diagonal b == b' is non-zero
        return np.einsum("bobi->boi", np.asarray(jx)), np.asarray(jw)

    def sync(self) -> None:
        """Nothing to wait for on the CPU."""

    def describe(self) -> str:
        """Where it runs."""
        return "lightning.qubit adjoint, complex128"


def backprop(spec: QNNSpec, options: Options) -> Implementation:
    """PennyLane default.qubit + torch backprop on the CPU, or CUDA in a GPU run."""
    return PennyLaneBackprop(spec, "cuda" if options.device == "gpu" else "cpu")


def lightning_adjoint(spec: QNNSpec, options: Options) -> Implementation:
    """PennyLane-Lightning's adjoint Jacobians (on the CPU)."""
    del options
    return LightningAdjoint(spec)


def jax_peer(spec: QNNSpec, options: Options) -> Implementation:
    """PennyLane default.qubit, JAX interface, backprop, broadcast inputs, ``jit``-ed; its
    backward is one VJP."""
    del options  # on the CPU
    jax_x64()
    import jax.numpy as jnp  # noqa: PLC0415 - optional peer

    try:
        function = quantum_function(spec, jnp)
    except ValueError as exc:
        raise Unsupported(str(exc)) from exc
    qnode = qml.QNode(
        function,
        qml.device("default.qubit", wires=spec.num_qubits),
        interface="jax",
        diff_method="backprop",
    )
    matrix = interpret_matrix(spec)
    num_outputs = spec.num_outputs

    def batched(x: Any, w: Any) -> Any:
        interpret = None if matrix is None else jnp.asarray(matrix)
        return stack_outputs(qnode(x, w), jnp, num_outputs, interpret)

    return JaxImplementation(
        batched,
        None,
        num_outputs,
        VJP,
        np.float64,
        f"{versions('pennylane', 'jax')}: default.qubit backprop, broadcast, jit, vjp, complex128",
    )

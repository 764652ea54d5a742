"""The implementations gpuqnn is compared with, behind the :class:`~benchmarks.runners.Runner`
protocol.

- ``qiskit-ml``: qiskit-machine-learning's networks with their default primitives and gradients
  (exact statevector ``QMLEstimator`` / ``QMLSampler``, parameter shift). Slow: measured on a few
  samples and scaled linearly.
- ``pennylane-backprop``: PennyLane ``default.qubit``, torch interface, ``diff_method="backprop"``,
  the inputs broadcast over the whole batch. Its backward is ONE vector-Jacobian product
  (forward, then torch's backward of ``sum(cotangent * outputs)``): what a training step with
  backprop needs, less than the per-sample Jacobian the other implementations return.
- ``lightning-adjoint``: PennyLane-Lightning ``lightning.qubit``, ``diff_method="adjoint"``,
  per-sample Jacobians through ``qml.jacobian`` (autograd) over broadcast chunks of 8 samples
  (one call over the whole batch costs O(B^2), see :attr:`LightningAdjoint.CHUNK`). Adjoint
  differentiation takes expectation values only, so sampler workloads are not supported.
  Measured on a few samples and scaled.
- ``tensorcircuit-jax``, ``tensorcircuit-jax-c64``, ``pennylane-jax``: TensorCircuit-ng and
  PennyLane on JAX (``jit``; ``jacrev`` per-sample Jacobians for TensorCircuit-ng, one VJP for
  PennyLane), see :mod:`benchmarks.jax_peers`. Their compile times are printed apart.
- ``qiskit-aer-gpu``: qiskit-machine-learning's EstimatorQNN on qiskit-aer's ``EstimatorV2``
  (exact statevector method, ``device="GPU"``; ``"CPU"`` in a CPU dry run), parameter-shift
  gradients. Aer's ``SamplerV2`` only samples shots, so sampler workloads are not supported.

A peer that is not installed (or has no CUDA device where it needs one) is skipped with a line in
the output; one that cannot express a workload raises :class:`Unsupported` at construction.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from qiskit_machine_learning.neural_networks import EstimatorQNN, SamplerQNN

from benchmarks.measure import vjp_cotangent
from benchmarks.runners import (
    JACOBIAN,
    VJP,
    Gradients,
    NetworkRunner,
    Options,
    Runner,
    Unsupported,
)
from benchmarks.workloads import QNNSpec, Workload


@dataclass(frozen=True)
class Peer:
    """One peer implementation.

    Attributes:
        name: Column name and ``--peers`` choice.
        factory: Builds the runner of a workload.
        scaled: Measured on a few samples (``--ref-batch``, or the workload's) and scaled
            linearly to the batch; otherwise timed like gpuqnn on the full batch.
        modules: Python modules it needs.
        ref_batch: Samples it is measured on when scaled (None: the workload's ``ref_batch``).
        sample_cap: Most samples one call may hold (memory), for a full-batch peer; beyond
            it the peer is measured on that many samples and scaled.
        note: Shown after its name in tables and legends (``(VJP)`` for a VJP backward).
        atol: Its own tolerance of the checks where looser than the headline's (complex64).
    """

    name: str
    factory: Callable[[QNNSpec, Options], Runner]
    scaled: bool
    modules: tuple[str, ...] = ()
    ref_batch: int | None = None
    sample_cap: Callable[[QNNSpec], int] | None = None
    note: str = ""
    atol: float | None = None

    @property
    def label(self) -> str:
        """Its name with its note."""
        return f"{self.name} {self.note}".strip()

    def samples(
        self, spec: QNNSpec, workload: Workload | None, batch: int, ref_batch: int | None = None
    ) -> int | None:
        """Samples to measure a batch of ``batch`` on, or None for the full batch.

        Args:
            spec: The network.
            workload: Its workload (its ``ref_batch`` is the default for scaled peers).
            batch: The batch timed.
            ref_batch: ``--ref-batch``: overrides the peer's and the workload's.
        """
        if self.scaled:
            default = self.ref_batch or (workload.ref_batch if workload else 16)
            return min(batch, ref_batch or default)
        cap = self.sample_cap(spec) if self.sample_cap is not None else batch
        return None if cap >= batch else max(1, cap)

    def unavailable(self, options: Options) -> str | None:
        """Why it cannot run here (a missing module or device), or None."""
        missing = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if missing:
            return f"{', '.join(missing)} not installed"
        if options.device == "gpu":
            return gpu_unavailable(self.name)
        return None


def gpu_unavailable(name: str) -> str | None:
    """Why peer ``name`` has no CUDA device to run on, or None."""
    if name == "pennylane-backprop":
        import torch  # noqa: PLC0415 - optional peer

        return None if torch.cuda.is_available() else "torch has no CUDA device"
    if name == "qiskit-aer-gpu":
        from qiskit_aer import AerSimulator  # noqa: PLC0415 - optional peer

        devices = AerSimulator().available_devices()
        return None if "GPU" in devices else f"qiskit-aer has no GPU device ({devices})"
    return None


# --------------------------------------------------------------------------------------------
# qiskit-machine-learning
# --------------------------------------------------------------------------------------------


def qiskit_ml_runner(spec: QNNSpec, options: Options) -> Runner:
    """qiskit-machine-learning's network with its default primitives and gradients."""
    del options  # the reference has no device choice
    cls = EstimatorQNN if spec.kind == "estimator" else SamplerQNN
    return NetworkRunner(cls(**spec.qiskit_kwargs()))


def qiskit_aer_runner(spec: QNNSpec, options: Options) -> Runner:
    """qiskit-machine-learning's EstimatorQNN on qiskit-aer's exact statevector EstimatorV2.

    Raises:
        Unsupported: a sampler workload (Aer's SamplerV2 samples shots only).
    """
    if spec.kind != "estimator":
        raise Unsupported("qiskit-aer's SamplerV2 samples shots; it has no exact probabilities")
    from qiskit_aer.primitives import EstimatorV2  # noqa: PLC0415 - optional peer

    device = "GPU" if options.device == "gpu" else "CPU"
    estimator = EstimatorV2(
        options={"backend_options": {"method": "statevector", "device": device}}
    )
    # default_precision 0: exact expectation values (Aer adds Gaussian noise otherwise)
    network = EstimatorQNN(**spec.qiskit_kwargs(), estimator=estimator, default_precision=0.0)
    return NetworkRunner(network, label=f"qiskit-aer EstimatorV2, statevector on {device}")


# --------------------------------------------------------------------------------------------
# PennyLane
# --------------------------------------------------------------------------------------------


class PennyLaneBackprop:
    """PennyLane ``default.qubit`` with torch backprop over a broadcast batch.

    ``backward`` returns one vector-Jacobian product (:data:`~benchmarks.runners.VJP`): the
    forward pass with autograd recording, then ``sum(vjp_cotangent * outputs).backward()``.

    Args:
        spec: the network.
        device: the torch device (``"cpu"`` or ``"cuda"``).
    """

    gradients = VJP

    def __init__(self, spec: QNNSpec, device: str = "cpu") -> None:
        import pennylane as qml  # noqa: PLC0415 - optional peer
        import torch  # noqa: PLC0415 - optional peer

        from benchmarks.pennylane_circuit import (  # noqa: PLC0415 - needs PennyLane
            interpret_matrix,
            quantum_function,
        )

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
        from benchmarks.pennylane_circuit import stack_outputs  # noqa: PLC0415

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
    """PennyLane-Lightning ``lightning.qubit`` with the adjoint method, per-sample Jacobians.

    Args:
        spec: the network (an estimator).

    Raises:
        Unsupported: a sampler workload (adjoint differentiation takes expectation values only).
    """

    gradients = JACOBIAN
    CHUNK = 8
    """Samples per ``qml.jacobian`` call: autograd's Jacobian of a broadcast QNode takes one
    vector-Jacobian product per output, so one call over B samples costs O(B^2) (measured:
    6 ms per sample at B = 16, 55 ms at B = 256); chunks keep the cost linear."""

    def __init__(self, spec: QNNSpec) -> None:
        if spec.kind != "estimator":
            raise Unsupported(
                "lightning's adjoint method differentiates expectation values "
                "only, not the sampler's probabilities"
            )
        import pennylane as qml  # noqa: PLC0415 - optional peer
        from pennylane import numpy as pnp  # noqa: PLC0415 - optional peer

        from benchmarks.pennylane_circuit import quantum_function  # noqa: PLC0415

        self.qml, self.pnp = qml, pnp
        self.num_outputs = spec.num_outputs
        self.qnode = qml.QNode(
            quantum_function(spec, pnp),
            qml.device("lightning.qubit", wires=spec.num_qubits),
            interface="autograd",
            diff_method="adjoint",
        )

    def _outputs(self, inputs: Any, weights: Any) -> Any:
        from benchmarks.pennylane_circuit import stack_outputs  # noqa: PLC0415

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


BACKPROP_BUDGET = 3 << 30
"""Bytes a PennyLane backprop call may hold: autograd keeps about 1.5 states per gate
(measured: 1.75 GiB for the 12-qubit, 303-gate workload at batch 64)."""


def backprop_sample_cap(spec: QNNSpec) -> int:
    """Samples a PennyLane backprop call of ``spec`` holds within :data:`BACKPROP_BUDGET`."""
    per_sample = 1.5 * len(spec.circuit.data) * 2**spec.num_qubits * 16
    return max(1, int(BACKPROP_BUDGET // per_sample))


def pennylane_backprop_runner(spec: QNNSpec, options: Options) -> Runner:
    """PennyLane default.qubit + torch backprop on the CPU, or CUDA in a GPU run."""
    return PennyLaneBackprop(spec, "cuda" if options.device == "gpu" else "cpu")


def lightning_adjoint_runner(spec: QNNSpec, options: Options) -> Runner:
    """PennyLane-Lightning's adjoint Jacobians on the CPU."""
    del options  # lightning.qubit runs on the CPU
    return LightningAdjoint(spec)


def _jax_peer(name: str) -> Callable[[QNNSpec, Options], Runner]:
    """The factory ``name`` of :mod:`benchmarks.jax_peers`, imported when called (the module
    needs no JAX to import, but keeps the JAX peers in one place)."""

    def factory(spec: QNNSpec, options: Options) -> Runner:
        from benchmarks import jax_peers  # noqa: PLC0415 - optional peers

        return getattr(jax_peers, name)(spec, options)

    factory.__name__ = name
    return factory


PEERS: Mapping[str, Peer] = MappingProxyType(
    {
        peer.name: peer
        for peer in (
            Peer("qiskit-ml", qiskit_ml_runner, scaled=True),
            Peer(
                "pennylane-backprop",
                pennylane_backprop_runner,
                scaled=False,
                modules=("pennylane", "torch"),
                sample_cap=backprop_sample_cap,
                note="(VJP)",
            ),
            Peer(
                "lightning-adjoint",
                lightning_adjoint_runner,
                scaled=True,
                modules=("pennylane", "pennylane_lightning"),
            ),
            Peer(
                "tensorcircuit-jax",
                _jax_peer("tensorcircuit_jax_runner"),
                scaled=False,
                modules=("tensorcircuit", "jax", "cotengra"),
            ),
            Peer(
                "tensorcircuit-jax-c64",
                _jax_peer("tensorcircuit_jax_c64_runner"),
                scaled=False,
                modules=("tensorcircuit", "jax", "cotengra"),
                atol=1e-4,
            ),
            Peer(
                "pennylane-jax",
                _jax_peer("pennylane_jax_runner"),
                scaled=False,
                modules=("pennylane", "jax"),
                note="(VJP)",
            ),
            Peer(
                "qiskit-aer-gpu",
                qiskit_aer_runner,
                scaled=True,
                modules=("qiskit_aer",),
                ref_batch=512,
            ),
        )
    }
)
"""Every peer by name."""


def available_peers(
    names: Sequence[str], options: Options, known: Mapping[str, Peer] | None = None
) -> list[Peer]:
    """The named peers (of ``known``, default :data:`PEERS`) that can run here; prints a line
    for each one skipped."""
    known = PEERS if known is None else known
    peers = []
    for name in names:
        reason = known[name].unavailable(options)
        if reason is None:
            peers.append(known[name])
        else:
            print(f"skip peer {name}: {reason}")
    return peers


JAX_PEERS = ("tensorcircuit-jax", "tensorcircuit-jax-c64", "pennylane-jax")
"""The JAX peers (issue 13), installed by the ``jax`` extra."""

CPU_PEERS = ("qiskit-ml", "pennylane-backprop", "lightning-adjoint", *JAX_PEERS)
"""The CPU benchmark's peers (issue 5's, then issue 13's JAX peers)."""

GPU_PEERS = ("qiskit-aer-gpu", "pennylane-backprop", "qiskit-ml")
"""The GPU benchmark's peers (the issue's)."""

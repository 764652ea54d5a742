"""The implementations gpuqnn is compared with, in one registry (:data:`PEERS`) that every
benchmark script uses, one module per peer family (README, "The CPU table"). A peer that is not
installed (or lacks the CUDA device it needs) is skipped with a line; one that cannot express a
workload raises :class:`~benchmarks.implementations.Unsupported` when built."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from benchmarks.implementations import VJP, Implementation, Options
from benchmarks.workloads import QNNSpec, Workload

Factory = Callable[[QNNSpec, Options], Implementation]


def lazy(module: str, name: str, *args: object) -> Factory:
    """The factory ``benchmarks.peers.<module>.<name>(spec, options, *args)``, its module
    imported when called (it needs the peer's packages)."""

    def factory(spec: QNNSpec, options: Options) -> Implementation:
        function = getattr(importlib.import_module(f"benchmarks.peers.{module}"), name)
        return function(spec, options, *args)

    factory.__name__ = f"{name}{args or ''}"
    return factory


@dataclass(frozen=True)
class Peer:
    """One peer: its column name, the factory of the tables, whether it is ``scaled`` (timed on
    a few samples, its ``ref_batch`` or the workload's, and scaled linearly), the modules it
    needs, the most samples one call may hold (``sample_cap``), the ``note`` after its name,
    its own looser ``atol`` and its training-step factory (``train``, a native VJP)."""

    name: str
    factory: Factory
    scaled: bool
    modules: tuple[str, ...] = ()
    ref_batch: int | None = None
    sample_cap: Callable[[QNNSpec], int] | None = None
    note: str = ""
    atol: float | None = None
    train: Factory | None = None

    def samples(
        self, spec: QNNSpec, workload: Workload | None, batch: int, ref_batch: int | None = None
    ) -> int | None:
        """Samples to measure ``batch`` on (``ref_batch``: ``--ref-batch``), None: all."""
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
        return gpu_unavailable(self.name) if options.device == "gpu" else None


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


BACKPROP_BUDGET = 3 << 30  # bytes: autograd keeps ~1.5 states per gate (1.75 GiB at zz12, B=64)


def backprop_sample_cap(spec: QNNSpec) -> int:
    """Samples a PennyLane backprop call of ``spec`` holds within :data:`BACKPROP_BUDGET`."""
    per_sample = 1.5 * len(spec.circuit.data) * 2**spec.num_qubits * 16
    return max(1, int(BACKPROP_BUDGET // per_sample))


def qiskit_ml_peer(spec: QNNSpec, options: Options) -> Implementation:
    """qiskit-machine-learning's network with its default primitives and gradients."""
    return lazy("qiskit", "qiskit_ml")(spec, options)


def tensorcircuit_peer(dtype: str) -> Peer:
    """TensorCircuit-ng + JAX in ``dtype``: Jacobians in the tables, a VJP in training."""
    name = "tensorcircuit-jax-c64" if dtype == "complex64" else "tensorcircuit-jax"
    return Peer(
        name,
        lazy("tensorcircuit", "jax_peer", dtype),
        scaled=False,
        modules=("tensorcircuit", "jax", "cotengra"),
        atol=1e-4 if dtype == "complex64" else None,
        train=lazy("tensorcircuit", "jax_peer", dtype, VJP),
    )


PL_JAX = lazy("pennylane", "jax_peer")
PEERS: Mapping[str, Peer] = MappingProxyType(
    {
        peer.name: peer
        for peer in (
            Peer("qiskit-ml", qiskit_ml_peer, scaled=True),
            Peer(
                "pennylane-backprop",
                lazy("pennylane", "backprop"),
                scaled=False,
                modules=("pennylane", "torch"),
                sample_cap=backprop_sample_cap,
                note="(VJP)",
                train=lazy("pennylane", "backprop"),
            ),
            Peer(
                "lightning-adjoint",
                lazy("pennylane", "lightning_adjoint"),
                scaled=True,
                modules=("pennylane", "pennylane_lightning"),
            ),
            *(tensorcircuit_peer(dtype) for dtype in ("complex128", "complex64")),
            Peer("pennylane-jax", PL_JAX, False, ("pennylane", "jax"), note="(VJP)", train=PL_JAX),
            Peer(
                "qiskit-aer-gpu",
                lazy("qiskit", "qiskit_aer"),
                scaled=True,
                modules=("qiskit_aer",),
                ref_batch=512,
            ),
        )
    }
)
JAX_PEERS = ("tensorcircuit-jax", "tensorcircuit-jax-c64", "pennylane-jax")  # the jax extra
CPU_PEERS = ("qiskit-ml", "pennylane-backprop", "lightning-adjoint", *JAX_PEERS)
GPU_PEERS = ("qiskit-aer-gpu", "pennylane-backprop", "qiskit-ml")
TRAIN_PEERS = tuple(name for name, peer in PEERS.items() if peer.train is not None)


def available_peers(names: Sequence[str], options: Options) -> list[Peer]:
    """The named peers that can run here; prints a line for each one skipped."""
    peers = []
    for name in names:
        reason = PEERS[name].unavailable(options)
        if reason is None:
            peers.append(PEERS[name])
        else:
            print(f"skip peer {name}: {reason}")
    return peers

"""The implementations gpuqnn is compared with, in one registry (:data:`PEERS`) that every
benchmark script uses; one module per peer family, behind the
:class:`~benchmarks.implementations.Implementation` protocol:

- ``qiskit-ml`` and ``qiskit-aer-gpu`` (:mod:`.qiskit`): qiskit-machine-learning's networks with
  their default exact primitives, or on qiskit-aer's statevector ``EstimatorV2`` (on the GPU;
  the CPU in a dry run); parameter-shift gradients. Measured on a few samples and scaled.
- ``pennylane-backprop``, ``lightning-adjoint`` and ``pennylane-jax`` (:mod:`.pennylane`):
  PennyLane ``default.qubit`` with torch backprop (its backward is ONE vector-Jacobian product:
  less work than the per-sample Jacobians of the others), Lightning's adjoint Jacobians
  (expectation values only), and ``default.qubit`` on JAX (one ``jax.vjp``).
- ``tensorcircuit-jax`` and ``tensorcircuit-jax-c64`` (:mod:`.tensorcircuit`): TensorCircuit-ng on
  JAX, ``jit(vmap)``, per-sample Jacobians by ``jacrev``; compile times printed apart.

The circuits are translated gate by gate by :mod:`.translation` (shared). A peer that is not
installed (or has no CUDA device where it needs one) is skipped with a line; one that cannot
express a workload raises :class:`~benchmarks.implementations.Unsupported` when built.
"""

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
    """One peer implementation.

    Attributes:
        name: Column name and ``--peers`` choice.
        factory: Builds its implementation of a workload (the benchmark tables).
        scaled: Measured on a few samples (``--ref-batch``, or the workload's) and scaled
            linearly to the batch; otherwise timed like gpuqnn on the full batch.
        modules: Python modules it needs.
        ref_batch: Samples it is measured on when scaled (None: the workload's ``ref_batch``).
        sample_cap: Most samples one call may hold (memory), for a full-batch peer; beyond it
            the peer is measured on that many samples and scaled.
        note: Shown after its name in tables and legends (``(VJP)`` for a VJP backward).
        atol: Its own tolerance of the checks where looser than the headline's (complex64).
        train: Builds its training step (a native VJP) for ``bench_train``; None: not a
            training-step peer.
    """

    name: str
    factory: Factory
    scaled: bool
    modules: tuple[str, ...] = ()
    ref_batch: int | None = None
    sample_cap: Callable[[QNNSpec], int] | None = None
    note: str = ""
    atol: float | None = None
    train: Factory | None = None

    @property
    def label(self) -> str:
        """Its name with its note."""
        return f"{self.name} {self.note}".strip()

    def samples(
        self, spec: QNNSpec, workload: Workload | None, batch: int, ref_batch: int | None = None
    ) -> int | None:
        """Samples to measure a batch of ``batch`` on (``ref_batch``: ``--ref-batch``, over
        the peer's and the workload's), or None for the full batch."""
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


BACKPROP_BUDGET = 3 << 30
"""Bytes a PennyLane backprop call may hold: autograd keeps about 1.5 states per gate
(measured: 1.75 GiB for the 12-qubit, 303-gate workload at batch 64)."""


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
"""Every peer by name."""

JAX_PEERS = ("tensorcircuit-jax", "tensorcircuit-jax-c64", "pennylane-jax")
"""The JAX peers (issue 13), installed by the ``jax`` extra."""

CPU_PEERS = ("qiskit-ml", "pennylane-backprop", "lightning-adjoint", *JAX_PEERS)
"""The CPU benchmark's peers (issue 5's, then issue 13's JAX peers)."""

GPU_PEERS = ("qiskit-aer-gpu", "pennylane-backprop", "qiskit-ml")
"""The GPU benchmark's peers (the issue's)."""

TRAIN_PEERS = tuple(name for name, peer in PEERS.items() if peer.train is not None)
"""The training-step benchmark's peers, each with its native VJP."""


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

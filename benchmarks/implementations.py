"""What the benchmarks time: the :class:`Implementation` protocol, and gpuqnn's configurations
(:class:`Variant`) behind it; the peers are in :mod:`benchmarks.peers`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from qiskit_machine_learning.neural_networks import NeuralNetwork

import gpuqnn
from benchmarks.internals import use_kernels
from benchmarks.workloads import QNNSpec

Gradients = tuple[np.ndarray | None, np.ndarray | None]  # (input gradients or None, weights')
JACOBIAN = "jacobian"  # backward gives per-sample Jacobians, (B, *out, I) and (B, *out, W)
VJP = "vjp"  # backward gives one VJP with measure.vjp_cotangent: (B, I) and (W,)


class Unsupported(Exception):
    """An implementation cannot run a workload (the message says why)."""


class Implementation(Protocol):
    """One built network of one implementation; ``gradients`` (:data:`JACOBIAN` or
    :data:`VJP`) says what ``backward`` returns."""

    gradients: str

    def forward(self, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Outputs, shape ``(batch, *output_shape)``."""
        ...

    def backward(self, inputs: np.ndarray, weights: np.ndarray, input_gradients: bool) -> Gradients:
        """``(input_grads or None, weight_grads)``, in the layout :attr:`gradients` names."""
        ...

    def sync(self) -> None:
        """Wait for work queued on a device (a no-op on the CPU); timers call it."""
        ...

    def describe(self) -> str:
        """Where it runs (device, dtype), for the header."""
        ...


@dataclass(frozen=True)
class Options:
    """Settings passed to every peer factory: ``device`` ``"cpu"`` or ``"gpu"``."""

    device: str = "cpu"


def _no_sync() -> None:
    """Nothing to wait for on the CPU."""


@dataclass
class NetworkImplementation:
    """An :class:`Implementation` around a qiskit-machine-learning ``NeuralNetwork`` (or a
    subclass), ``wait`` waiting for its device work."""

    network: NeuralNetwork
    wait: Callable[[], None] = _no_sync
    label: str = ""
    gradients: str = JACOBIAN

    def forward(self, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Run the network's forward pass."""
        return np.asarray(self.network.forward(inputs, weights))

    def backward(self, inputs: np.ndarray, weights: np.ndarray, input_gradients: bool) -> Gradients:
        """Run the network's backward pass, with or without input gradients."""
        self.network.input_gradients = input_gradients
        return self.network.backward(inputs, weights)

    def sync(self) -> None:
        """Wait for the network's device work."""
        self.wait()

    def describe(self) -> str:
        """The label, or the device and dtype the network reports (``cpu`` when none)."""
        if self.label:
            return self.label
        device = str(getattr(self.network, "device", "cpu"))
        dtype = getattr(self.network, "dtype", None)
        return device if dtype is None else f"{device}, {dtype}"


SHORT_DTYPES = {"c128": "complex128", "c64": "complex64"}
SHORT_METHODS = {"auto": "auto", "adjoint": "adjoint", "shift": "parameter_shift"}
ENGINES = ("auto", "native", "numpy")


@dataclass(frozen=True)
class Variant:
    """One gpuqnn configuration, its own column; ``kernels`` is the CUDA kernel choice
    (``use_kernels``; no effect on the CPU), ``engine`` the CPU engine (``auto``: the native
    engine where it is built)."""

    name: str
    gradient_method: str = "auto"
    dtype: str = "complex128"
    device: str = "cpu"
    kernels: str = "auto"
    engine: str = "auto"

    @classmethod
    def parse(cls, text: str, device: str = "cpu") -> Variant:
        """A CPU variant from ``METHOD/DTYPE[/ENGINE]``, e.g. ``shift/c64`` or
        ``auto/c128/numpy``."""
        method, _, rest = text.partition("/")
        dtype, _, engine = rest.partition("/")
        engine = engine or "auto"
        if method not in SHORT_METHODS or dtype not in SHORT_DTYPES or engine not in ENGINES:
            raise ValueError(
                f"a gpuqnn variant is METHOD/DTYPE[/ENGINE] with METHOD in "
                f"{sorted(SHORT_METHODS)}, DTYPE in {sorted(SHORT_DTYPES)} and ENGINE in "
                f"{sorted(ENGINES)}, got {text!r}"
            )
        return cls(text, SHORT_METHODS[method], SHORT_DTYPES[dtype], device, engine=engine)

    def same_forward(self, other: Variant) -> bool:
        """Whether the forward pass runs the same code as ``other``'s (only the gradient
        method differs), so timing it again adds nothing."""
        mine = (self.dtype, self.device, self.kernels, self.engine)
        return mine == (other.dtype, other.device, other.kernels, other.engine)

    def tolerance(self) -> float:
        """Absolute tolerance of results in this variant's dtype."""
        return 1e-4 if self.dtype == "complex64" else 1e-8

    def build(self, spec: QNNSpec, max_memory: int | None = None) -> NetworkImplementation:
        """The gpuqnn network of ``spec``; ``Unsupported`` when the kernels cannot run it."""
        cls = gpuqnn.EstimatorQNN if spec.kind == "estimator" else gpuqnn.SamplerQNN
        network = cls(
            **spec.qiskit_kwargs(),
            device=self.device,
            dtype=self.dtype,
            gradient_method=self.gradient_method,
            max_memory=max_memory,
            engine=self.engine,
        )
        if self.kernels != "auto":
            try:
                use_kernels(network, self.kernels)
            except ValueError as exc:  # e.g. a row too big for the fused kernel
                raise Unsupported(str(exc)) from exc
        return NetworkImplementation(network, wait=_device_sync(network.device))


def _device_sync(device: str) -> Callable[[], None]:
    """A function that waits for the CUDA device ``cuda:N`` (CuPy), or a no-op for ``cpu``."""
    if not device.startswith("cuda"):
        return _no_sync
    import cupy  # noqa: PLC0415 - only on a GPU

    index = int(device.split(":")[1])

    def wait() -> None:
        cupy.cuda.Device(index).synchronize()

    return wait

"""The engines a network can run on, in ONE table (:data:`ENGINES`), and the emulated GPU.

The conformance suite (``test_conformance.py``) runs every test body once per entry of
:data:`ENGINES`, through the ``engine`` fixture (``conftest.py``). Adding an engine (a
density-matrix mode) is one :class:`Engine` entry here: a name, a function that puts a network
on it, and the marks its tests carry (``gpu``: needs CuPy and a device, skipped elsewhere with
the reason; ``gpu_logic``: the CUDA kernels emulated on the host, runs in CI). The two CPU
engines are ``numpy`` (the block engine) and ``native`` (the C++ engine, skipped where it is
not built unless ``GPUQNN_REQUIRE_NATIVE=1``).

This is also the one test module that reaches into gpuqnn's private kernel and backend modules
(``gpuqnn._cuda``, ``gpuqnn._sim.backend``) for the emulation: other tests import the names they
need from here, so that renaming those modules is a change to this file only.

The emulated GPU: a backend whose "device" arrays are NumPy arrays, with the CUDA kernels' host
build (``-DGPUQNN_HOST``, ``gpuqnn/_cuda/host.py``) standing in for the CuPy runners, plugged in
through the runner seam :func:`gpuqnn._internals.use_backend`. It exercises everything gpuqnn
does on a GPU except CuPy itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pytest

from gpuqnn._cuda.host import HostFusedLauncher, HostKernels, HostPerOpLauncher
from gpuqnn._cuda.runner import select_runner
from gpuqnn._internals import use_backend, use_kernels
from gpuqnn._native import load_core
from gpuqnn._sim.backend import Backend, host_available_memory

__all__ = [
    "CURRENT_DEVICE",
    "ENGINES",
    "KERNEL_MODES",
    "THREAD_ORDERS",
    "EmulatedGpu",
    "Emulation",
    "Engine",
    "HostFusedLauncher",
    "HostKernels",
    "HostPerOpLauncher",
    "OnEngine",
    "build_host_kernels",
    "engines_marked",
    "native_built",
]

KERNEL_MODES = ("fused", "per_op", "none")
"""The GPU variants: the fused kernels, the per-op kernels, the block engine on the device."""

H200_SHARED = 227 * 1024
"""Shared memory per block of an H100/H200, the emulation's default limit."""

THREAD_ORDERS: dict[str, dict[str, Any]] = {
    "forward": {},
    "reverse": {"reverse": True},
    "strict": {"strict": 18},
}
"""How the host build runs a phase's threads, as host launcher keyword arguments: one after the
other in increasing or decreasing order, or the strict emulation (snapshot phases, seeded random
order, same-byte writes and partial warp collectives fail the launch)."""


def build_host_kernels(directory: str | os.PathLike) -> HostKernels:
    """The CUDA kernels built for the host (g++) into ``directory``; skips without a compiler."""
    try:
        return HostKernels(directory)
    except RuntimeError as exc:
        if "not found" in str(exc):
            pytest.skip(str(exc))
        raise


# ---- the emulated GPU --------------------------------------------------------------------------
@dataclass(frozen=True)
class EmulatedGpu(Backend):
    """A backend that takes the GPU code paths with NumPy arrays as its device arrays."""

    def asarray(self, array: Any, dtype: Any = None) -> Any:
        return np.asarray(array, dtype=dtype)

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def free_memory(self) -> int:
        return host_available_memory()

    def synchronize(self) -> None:
        return None

    def is_array(self, value: Any) -> bool:
        return isinstance(value, np.ndarray)

    @contextmanager
    def activate(self):
        """Make this emulated device current (recorded in CURRENT_DEVICE, like CuPy's)."""
        CURRENT_DEVICE.append(self.name)
        try:
            yield
        finally:
            CURRENT_DEVICE.pop()


CURRENT_DEVICE: list[str] = ["cuda:0"]
"""The emulated current device (last entry), as ``cupy.cuda.Device`` keeps it."""


class Emulation:
    """Moves networks onto the emulated GPU backend through the runner seam
    (:func:`gpuqnn._internals.use_backend`), with host-built kernels (of the classes given) in
    the kernel mode set by calling it; ``runners`` collects the host runners built (None: the
    block engine)."""

    def __init__(
        self,
        kernels: HostKernels,
        shared_limit: int = H200_SHARED,
        fused: type = HostFusedLauncher,
        per_op: type = HostPerOpLauncher,
    ) -> None:
        self.kernels = kernels
        self.shared_limit = shared_limit
        self.fused, self.per_op = fused, per_op
        self.mode = "auto"
        self.runners: list = []

    def __call__(self, mode: str) -> list:
        """Set the kernel mode ('auto', 'fused', 'per_op', 'none'); the list of runners built."""
        self.mode = mode
        self.runners.clear()
        return self.runners

    def factory(self, circuit, readout, backend, _options):
        """The runner factory handed to the simulator: host runners, chosen as on a GPU."""
        runner = select_runner(
            circuit,
            readout,
            backend,
            self.mode,
            make_fused=partial(self.fused, self.kernels, shared_limit=self.shared_limit),
            make_per_op=partial(self.per_op, self.kernels),
            shared_limit=lambda: self.shared_limit,
        )
        self.runners.append(None if runner is None else runner.launcher)
        return runner

    def move(self, network, backend: Backend | None = None) -> None:
        """Rebuild ``network``'s simulator on ``backend`` (default: an emulated cuda:0)."""
        if backend is None:
            backend = EmulatedGpu(np, "cuda:0", np.dtype(network.dtype))
        use_backend(network, backend, self.factory)

    def build(self, cls, **kwargs):
        """A network of ``cls`` on the emulated GPU (built on the CPU, then moved)."""
        network = cls(**kwargs, device="cpu")
        self.runners.clear()
        self.move(network)
        return network


# ---- the engine table --------------------------------------------------------------------------
Builder = Callable[[pytest.FixtureRequest, type, dict[str, Any]], Any]


@dataclass(frozen=True)
class Engine:
    """One engine of the conformance suite.

    Attributes:
        name: the test id.
        build: ``build(request, cls, kwargs)``, a network ``cls(**kwargs)`` on this engine; it
            asserts that the engine really serves the network (the runner built, the device),
            and may ask ``request`` for fixtures (the emulation's ``kernels``).
        marks: the marks of every test run on this engine.
    """

    name: str
    build: Builder
    marks: tuple[pytest.MarkDecorator, ...] = ()

    def param(self) -> Any:
        """This engine as a ``pytest.param`` (its name as id, its marks)."""
        return pytest.param(self, id=self.name, marks=self.marks)


@dataclass(frozen=True)
class OnEngine:
    """What the ``engine`` fixture gives a test: ``engine(cls, **kwargs)`` builds a network of
    ``cls`` on the engine of this test instance."""

    engine: Engine
    request: pytest.FixtureRequest

    @property
    def name(self) -> str:
        return self.engine.name

    def __call__(self, cls: type, **kwargs: Any) -> Any:
        return self.engine.build(self.request, cls, kwargs)


def _numpy(_request: pytest.FixtureRequest, cls: type, kwargs: dict[str, Any]) -> Any:
    """The NumPy block engine."""
    network = cls(**kwargs, device="cpu", engine="numpy")
    assert network.device == "cpu"
    assert network.engine == "block engine", network.engine
    return network


def native_built() -> bool:
    """Whether the native engine's module is built; where CI requires it
    (``GPUQNN_REQUIRE_NATIVE=1``), a missing module fails instead of skipping."""
    if load_core() is not None:
        return True
    if os.environ.get("GPUQNN_REQUIRE_NATIVE") == "1":
        raise AssertionError("GPUQNN_REQUIRE_NATIVE=1 but gpuqnn._native._core is not built")
    return False


def _native(_request: pytest.FixtureRequest, cls: type, kwargs: dict[str, Any]) -> Any:
    """The native C++ engine (skipped where it is not built)."""
    if not native_built():
        pytest.skip("the native engine is not built (no C++ compiler at install time)")
    network = cls(**kwargs, device="cpu", engine="native")
    assert network.device == "cpu"
    assert network.engine.startswith("native CPU engine"), network.engine
    return network


def _emulated(mode: str) -> Builder:
    """The host build of the CUDA kernels in kernel mode ``mode`` on an emulated cuda:0."""
    expected = {"fused": HostFusedLauncher, "per_op": HostPerOpLauncher, "none": type(None)}[mode]

    def build(request: pytest.FixtureRequest, cls: type, kwargs: dict[str, Any]) -> Any:
        emulation = Emulation(request.getfixturevalue("kernels"))
        runners = emulation(mode)
        network = emulation.build(cls, **kwargs)
        assert runners and isinstance(runners[0], expected), (mode, runners)
        assert network.device == "cuda:0"
        return network

    return build


def _cupy(mode: str) -> Builder:
    """CuPy on the first CUDA device, kernel mode ``mode``."""

    def build(_request: pytest.FixtureRequest, cls: type, kwargs: dict[str, Any]) -> Any:
        network = cls(**kwargs, device="gpu")
        use_kernels(network, mode)
        assert network.device == "cuda:0"
        return network

    return build


ENGINES: tuple[Engine, ...] = (
    Engine("numpy", _numpy),
    Engine("native", _native),
    *(
        Engine(f"emulated-{mode}", _emulated(mode), (pytest.mark.gpu_logic,))
        for mode in KERNEL_MODES
    ),
    *(Engine(f"cupy-{mode}", _cupy(mode), (pytest.mark.gpu,)) for mode in KERNEL_MODES),
)
"""Every engine, in one place: the conformance suite runs each test body on each of them."""


def engines_marked(mark: str) -> list[Any]:
    """The engines whose tests carry ``mark``, as ``pytest.param``s: parametrise the ``engine``
    fixture indirectly with them to run a test on those engines only."""
    return [engine.param() for engine in ENGINES if any(m.name == mark for m in engine.marks)]

"""The one door from benchmarks and tests into a network's simulator.

Not public API: it may change with the simulator. Benchmarks and tests use these functions
instead of private attributes, so that the simulator's layout can change behind them.

- :func:`simulator_of`: the network's :class:`~gpuqnn._sim.simulator.Simulator` (its fused
  ``circuit``, ``runner``, ``executor``, ``method()``, ...).
- :func:`use_kernels`: rebuild with another CUDA kernel choice, to compare the GPU variants.
- :func:`use_backend`: rebuild on another backend (or several, sharded), optionally with a
  runner factory (tests run the whole GPU path on the CPU with an emulated backend and the
  kernels' host build, and the multi-device path over CPU backends).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._network import SimulatorNetwork
from ._network.handle import AnySimulator
from ._options import check_kernel_mode
from ._sim.backend import Backend
from ._sim.runners import RunnerFactory


def _network(network: Any) -> SimulatorNetwork:
    if not isinstance(network, SimulatorNetwork):
        raise TypeError(
            f"network must be a gpuqnn EstimatorQNN or SamplerQNN, got {type(network).__name__}"
        )
    return network


def simulator_of(network: Any) -> AnySimulator:
    """The simulator of a gpuqnn network (built on first use): a
    :class:`~gpuqnn._sim.simulator.Simulator`, or a
    :class:`~gpuqnn._sim.sharded.ShardedSimulator` over several devices."""
    return _network(network)._simulator()


def use_kernels(network: Any, mode: str) -> None:
    """Rebuild ``network``'s simulator with the CUDA kernel choice ``mode`` (``"auto"``,
    ``"fused"``, ``"per_op"`` or ``"none"``; see :mod:`gpuqnn._cuda.runner`). No effect on the
    CPU.

    Raises:
        ValueError: ``mode`` is not a kernel choice, or asks for kernels that cannot serve the
            network's circuit.
    """
    _network(network)._reconfigure(kernels=check_kernel_mode(mode))


def use_backend(
    network: Any,
    backend: Backend | Sequence[Backend],
    runner_factory: RunnerFactory | None = None,
) -> None:
    """Rebuild ``network``'s simulator on ``backend`` (or shard it over several backends:
    tests shard over CPU backends to check the multi-device path), with ``runner_factory``
    building its kernel runners on GPU backends."""
    backends = (backend,) if isinstance(backend, Backend) else tuple(backend)
    _network(network)._reconfigure(backends=backends, runner_factory=runner_factory)

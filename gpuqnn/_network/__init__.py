"""What gpuqnn's EstimatorQNN and SamplerQNN share: options, input checks, the simulator.

:class:`SimulatorNetwork` is a mixin placed before qiskit-machine-learning's network class in the
MRO, built from three layers, one module each:

- :mod:`.handle`: :class:`~.handle.SimulatorHandle`, the options, backends and simulator's life
  cycle (compile once, build, rebuild, pickle);
- :mod:`.routing`: :class:`~.routing.RoutingMixin`, the boundary checks and the routing of
  ``forward``/``backward`` to the simulator when the primitives are exact, else to the parent;
- :mod:`.training`: :class:`~.training.TrainingMixin`, ``vjp`` and the taped forward pass that
  :class:`gpuqnn.TorchConnector` trains with.
"""

from __future__ import annotations

from .training import TrainingMixin

__all__ = ["SimulatorNetwork"]


class SimulatorNetwork(TrainingMixin):
    """Mixin of gpuqnn's networks: simulator handle, boundary checks, routing and training."""

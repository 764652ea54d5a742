"""The engines a simulator may run on, registered in one place.

An engine is one way to run a pass, with a :class:`~gpuqnn._sim.protocols.Runner` that declares
its capabilities. The block engine (NumPy, or CuPy on a GPU) is always there: it is the
simulator's own runner and the fallback for what another runner cannot do. Every other engine is
a :data:`~gpuqnn._sim.runners.RunnerFactory` in :data:`FACTORIES`; the first that returns a
runner for a circuit, readout, backend and options serves it.

This module sits above both ``gpuqnn._sim`` (which knows no engine but the block engine) and
``gpuqnn._cuda`` and ``gpuqnn._native``: it is where they meet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._cuda.runner import cuda_runner
from ._native.runner import native_runner
from ._options import SimulatorOptions
from ._sim.backend import Backend
from ._sim.block_circuit import BlockCircuit
from ._sim.protocols import Readout, Runner
from ._sim.runners import RunnerFactory

if TYPE_CHECKING:
    from ._cuda.runner import FusedKernelRunner, KernelRunner
    from ._native.runner import NativeRunner
    from ._sim.protocols import AdjointRunner, TapeRunner
    from ._sim.runners import BlockRunner

    def _runners_implement_their_capabilities(
        block: BlockRunner, fused: FusedKernelRunner, per_op: KernelRunner, native: NativeRunner
    ) -> tuple[TapeRunner, AdjointRunner, Runner, TapeRunner]:
        """Never called: mypy checks here that every engine's runner implements the protocols
        its capabilities name (the simulator checks the same at run time)."""
        return block, fused, per_op, native


FACTORIES: tuple[RunnerFactory, ...] = (cuda_runner, native_runner)
"""The engines besides the block engine, tried in order: the CUDA kernels (GPU backends), the
native CPU engine (CPU backends, where it is built)."""


def runner_factory(
    circuit: BlockCircuit, readout: Readout, backend: Backend, options: SimulatorOptions
) -> Runner | None:
    """The runner of the first registered engine that serves ``circuit`` with ``readout`` on
    ``backend``, or None (the block engine serves it): the networks' and primitives' default
    :data:`~gpuqnn._sim.runners.RunnerFactory`."""
    for factory in FACTORIES:
        runner = factory(circuit, readout, backend, options)
        if runner is not None:
            return runner
    return None

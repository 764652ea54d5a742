"""The adjoint method as a :class:`~.protocols.GradientStrategy`: on the first runner that offers
it for the pass (:attr:`~.protocols.Capability.ADJOINT`, and :attr:`~.protocols.Capability.VJP`
for a product), chunked by the executor within the memory budget, slot derivatives chained to
parameters through the angle map.

``gradient_method="auto"`` weighs only the preferred runner's adjoint (the simulator's own
runner where it has one, else the block engine): costs of two engines are in different units.

Shapes: B samples, P parameters, O outputs, S differentiated slots, J differentiated columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import _profile
from .executor import ChunkExecutor
from .parameters import AngleMap, ParameterRows
from .protocols import AdjointRunner, Capability, ParameterAdjointRunner
from .sinks import Sink

CHECKPOINT_MIN_SAMPLES = 16
"""Checkpoints are kept when at least this many samples (or the whole batch) fit with them."""


class AdjointStrategy:
    """Adjoint differentiation of chunks of samples.

    Args:
        runners: the runners with :attr:`~.protocols.Capability.ADJOINT`, preferred first (the
            block engine last: it always serves).
        num_outputs: O.
        executor: sizes and runs the chunks.
        angle_map: the program's angles and their Jacobian.
    """

    name = "adjoint"

    def __init__(
        self,
        runners: Sequence[AdjointRunner],
        num_outputs: int,
        executor: ChunkExecutor,
        angle_map: AngleMap,
    ) -> None:
        if not runners or any(Capability.ADJOINT not in r.capabilities for r in runners):
            raise ValueError("AdjointStrategy needs runners with the ADJOINT capability")
        self.runners = tuple(runners)
        self.num_outputs = num_outputs
        self.executor = executor
        self.angle_map = angle_map

    def runner(self, slots: Sequence[int], vjp: bool) -> AdjointRunner:
        """The first runner whose adjoint serves a pass by ``slots`` (a product with ``vjp``)."""
        for runner in self.runners:
            serves = Capability.VJP in runner.capabilities or not vjp
            if serves and runner.adjoint_fits(slots, vjp):
                return runner
        return self.runners[-1]

    def sample_bytes(
        self, slots: Sequence[int], columns: Sequence[int], checkpoints: bool, vjp: bool = False
    ) -> int:
        """Peak bytes per sample of a pass on the runner that serves it, with or without
        checkpoints, the angle map's included."""
        runner = self.runner(slots, vjp)
        own = runner.adjoint_sample_bytes(slots, vjp, checkpoints)
        return own + self.angle_map.host_bytes(slots, columns)

    def fits(self, slots: Sequence[int], columns: Sequence[int], vjp: bool = False) -> bool:
        """Whether ``gradient_method="auto"`` may choose this strategy: the preferred runner's
        adjoint serves the pass and one sample of it (without checkpoints) fits the budget."""
        preferred = self.runners[0]
        if vjp and Capability.VJP not in preferred.capabilities:
            return False
        if not preferred.adjoint_fits(slots, vjp):
            return False
        own = preferred.adjoint_sample_bytes(slots, vjp, checkpoints=False)
        return own + self.angle_map.host_bytes(slots, columns) <= self.executor.budget()

    def cost(self, slots: Sequence[int], vjp: bool = False) -> float:
        """Relative cost per sample, in the units of the runner that serves the pass."""
        return self.runner(slots, vjp).adjoint_cost(slots, vjp)

    def run(
        self,
        params: Any,
        slots: Sequence[int],
        columns: Sequence[int],
        grad: Sink,
        sample: Callable[[Any], Any] | None = None,
        cotangent: Any = None,
    ) -> None:
        """Add the (B, O, J) derivatives of (B, P) ``params`` by ``columns`` into ``grad``,
        chunk by chunk; or, with a (B, O) ``cotangent`` on the backend, their (B, 1, J)
        vector-Jacobian product.

        Raises:
            ValueError: ``sample`` is given (sampled outputs have no adjoint states).
        """
        if sample is not None:
            raise ValueError("the adjoint method differentiates exact outputs only, not shots")
        executor = self.executor
        batch = params.shape[0]
        vjp = cotangent is not None
        runner = self.runner(slots, vjp)
        with_checkpoints = self.sample_bytes(slots, columns, True, vjp)
        enough = min(batch, CHECKPOINT_MIN_SAMPLES)
        checkpoints = executor.budget() // with_checkpoints >= enough
        per_sample = (
            with_checkpoints if checkpoints else self.sample_bytes(slots, columns, False, vjp)
        )
        sizing = executor.sizing(
            per_sample,
            f"an adjoint pass over one sample ({runner.description})",
            batch,
            states=2 if vjp else 1 + self.num_outputs,
        )

        if Capability.PARAMETERS in runner.capabilities and isinstance(
            runner, ParameterAdjointRunner
        ):
            rows = ParameterRows.on_backend(params, self.angle_map.backend)

            def direct(start: int, stop: int) -> None:
                assert isinstance(runner, ParameterAdjointRunner)
                _profile.count("host_ops", 1 if cotangent is None else 2)  # the chunks' slices
                derivatives = runner.adjoint_parameters(
                    rows.rows(start, stop),
                    slots,
                    columns,
                    executor.buffers(),
                    None if cotangent is None else cotangent[start:stop],
                )
                grad.add(start, stop, derivatives)

            executor.run(direct, batch, sizing)
            return

        def task(start: int, stop: int) -> None:
            chunk = params[start:stop]
            dslot = runner.adjoint(
                self.angle_map.angles(chunk),
                slots,
                executor.buffers(),
                checkpoints,
                None if cotangent is None else cotangent[start:stop],
            )
            _profile.count("host_ops")
            grad.add(start, stop, dslot @ self.angle_map.jacobian(chunk, slots, columns))

        executor.run(task, batch, sizing)

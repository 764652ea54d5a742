"""Trajectories: a noisy network's outputs as averages over T sampled pure-state rows per
sample (``noise_method="trajectories"``).

:class:`TrajectorySimulator` has a simulator's interface (as the sharded one does) over a
simulator of a trajectory program (:mod:`gpuqnn._compile.trajectory`): each pass repeats every
sample's parameters T times, appends one uniform random number per noise location and row from
``numpy.random.default_rng(seed)`` created per call (so a seeded call repeats its result), runs
the rows and averages them per sample. Gradients are parameter shift on the rows: the shifted
copies of a row share its random numbers (common random numbers), and the average of the rows'
derivatives is an unbiased estimate of the exact derivative.

Shapes: B samples, T trajectories, P parameters, L noise locations, O outputs, J columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class TrajectorySimulator:
    """A simulator of averages over trajectories.

    Args:
        simulator: the simulator of the trajectory program (its parameters: the network's P,
            then the L uniforms), with ``gradient_method="parameter_shift"``.
        trajectories: T, rows per sample.
        locations: L, noise locations of the program.
        seed: None, a non-negative int or a NumPy Generator.
    """

    def __init__(self, simulator: Any, trajectories: int, locations: int, seed: Any) -> None:
        self.simulator = simulator
        self.trajectories = trajectories
        self.locations = locations
        self.seed = seed
        self.num_outputs = simulator.num_outputs
        self.backend = simulator.backend

    @property
    def max_memory(self) -> int | None:
        return self.simulator.max_memory  # type: ignore[no-any-return]

    @property
    def runner(self) -> Any:
        """The wrapped simulator's runner: what runs the trajectories' rows."""
        return self.simulator.runner

    @property
    def row_bytes(self) -> int:
        return self.simulator.row_bytes  # type: ignore[no-any-return]

    def differentiated_slots(self, columns: Sequence[int]) -> list[int]:
        return self.simulator.differentiated_slots(columns)  # type: ignore[no-any-return]

    def method(self, columns: Sequence[int], shots: bool = False, vjp: bool = False) -> str:
        """``"parameter_shift"``: a trajectory has no adjoint."""
        return "parameter_shift"

    def precompile(self, columns: Sequence[int] | None, vjps: bool, shots: bool = False) -> int:
        """What the wrapped simulator compiles ahead for its forward passes (the trajectories'
        rows; their gradients are parameter shifts, forward passes too); the kernels built."""
        return self.simulator.precompile(None, False, shots)  # type: ignore[no-any-return]

    def _rows(self, params: Any) -> np.ndarray:
        """(B T, P + L) rows: each sample's parameters T times, then fresh uniforms."""
        host = np.asarray(self.backend.to_host(params[0 : params.shape[0]]), dtype=np.float64)
        rng = np.random.default_rng(self.seed)
        uniforms = rng.random((host.shape[0] * self.trajectories, self.locations))
        return np.hstack([np.repeat(host, self.trajectories, axis=0), uniforms])

    def _mean(self, values: Any, batch: int) -> tuple[Any, Any]:
        """Per-sample mean and standard error of (B T, ...) row values."""
        grouped = values.reshape((batch, self.trajectories) + values.shape[1:])
        mean = grouped.mean(axis=1)
        if self.trajectories < 2:
            return mean, grouped[:, 0] * float("nan")
        error = grouped.std(axis=1, ddof=1) / np.sqrt(self.trajectories)
        return mean, error

    def forward_stats(self, params: Any) -> tuple[Any, Any]:
        """(B, O) float64 means over the trajectories and their standard errors."""
        return self._mean(self.simulator.forward(self._rows(params)), params.shape[0])

    def forward(self, params: Any) -> Any:
        """(B, O) float64 means over the trajectories."""
        return self.forward_stats(params)[0]

    def backward_stats(self, params: Any, columns: Sequence[int]) -> tuple[Any, Any]:
        """(B, O, J) float64 mean derivatives and their standard errors."""
        grad = self.simulator.backward(self._rows(params), columns)
        return self._mean(grad, params.shape[0])

    def backward(self, params: Any, columns: Sequence[int], sample: Any = None) -> Any:
        """(B, O, J) float64 mean derivatives.

        Raises:
            ValueError: ``sample`` is given (shots are not drawn on trajectories).
        """
        if sample is not None:
            raise ValueError("shots are not sampled on trajectories")
        return self.backward_stats(params, columns)[0]

    def forward_taped(self, params: Any, columns: Sequence[int]) -> tuple[Any, None]:
        """:meth:`forward`; nothing is kept (the product runs parameter shift)."""
        return self.forward(params), None

    def vjp(
        self,
        params: Any,
        columns: Sequence[int],
        cotangent: Any,
        tape: Any = None,
        sample: Any = None,
        summed: int = 0,
    ) -> tuple[Any, Any]:
        """The vector-Jacobian products of the mean derivatives, as
        :meth:`~.simulator.Simulator.vjp`: (B, J - summed) per sample and the (summed,) sums."""
        grad = self.backward(params, columns, sample)
        g = self.backend.asarray(cotangent, dtype="float64")
        product = (g[:, None, :] @ grad)[:, 0]  # (B, J)
        keep = len(columns) - summed
        return product[:, :keep], product[:, keep:].sum(axis=0)

"""The rows of a parameter-shift pass, planned once for all its chunks: what the strategy
(:mod:`.shift`) plans and every runner executes (:meth:`.protocols.Runner.shifted`).

Shapes: S differentiated slots, T shifted row blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .blocks import Shifts

Rule = tuple[tuple[float, float], ...]
"""A slot's shift rule: (coefficient, shift) pairs with ``d f = sum c * f(theta + shift)``."""


@dataclass(frozen=True)
class ShiftPlan:
    """A parameter-shift pass's rows.

    Attributes:
        slots: the S slots differentiated.
        branches: block index -> its planned branches (the block engine's rows after the base
            rows, in block order).
        shift_slot: (1 + T,) int32 slot shifted in each row block, -1 for the base rows (the
            kernels' table).
        shift_value: (1 + T,) float64 shift of each row block.
        weights: (T, S) coefficient of each shifted row block in each slot's derivative, on
            the backend.
    """

    slots: list[int]
    branches: dict[int, Shifts]
    shift_slot: np.ndarray
    shift_value: np.ndarray
    weights: Any

    @property
    def rows_per_sample(self) -> int:
        """1 + T: the base row and one per shifted row block."""
        return int(self.shift_slot.shape[0])

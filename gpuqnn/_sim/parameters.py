"""From parameter rows to angles: the (B, P) parameter matrix, built per chunk, and the angle
table evaluated on the backend with its Jacobian for the chain rule.

Shapes: B samples, I inputs, W weights, P = I + W parameters, K angle slots, S differentiated
slots, J differentiated parameter columns, O outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .. import _profile
from .._compile import AngleTable
from .backend import Backend


class SampleRows:
    """A (B, P) parameter matrix built on demand: each sample's inputs, then the weights that
    every sample shares. Slicing rows gives a float64 array; nothing is tiled over the batch.

    Args:
        inputs: (B, I) float64 inputs, one row per sample.
        weights: (W,) float64 weights.
        xp: the array module of ``inputs`` and ``weights`` (NumPy, or CuPy on a GPU).
    """

    def __init__(self, inputs: Any, weights: Any, xp: ModuleType = np) -> None:
        self.inputs = inputs
        self.weights = weights
        self.xp = xp
        self.shape = (inputs.shape[0], inputs.shape[1] + weights.shape[0])

    @property
    def size(self) -> int:
        return int(self.shape[0] * self.shape[1])

    def __getitem__(self, rows: slice) -> Any:
        chunk = self.inputs[rows]
        tiled = self.xp.broadcast_to(self.weights, (chunk.shape[0], self.weights.shape[0]))
        return self.xp.concatenate([chunk, tiled], axis=1)


@dataclass(frozen=True)
class ParameterRows:
    """Parameter rows on the backend as kernels read them, without a (B, P) copy: column
    ``j < num_inputs`` of sample b is ``inputs[b, j]``, a later column ``weights[j -
    num_inputs]`` (shared by every sample).

    Attributes:
        inputs: (B, num_inputs) float64 C-contiguous backend array.
        weights: (P - num_inputs,) float64 C-contiguous backend array (may be empty).
        num_inputs: the columns read per sample.
    """

    inputs: Any
    weights: Any
    num_inputs: int

    @property
    def batch(self) -> int:
        """B."""
        return int(self.inputs.shape[0])

    def rows(self, start: int, stop: int) -> ParameterRows:
        """Samples ``start:stop`` (a view)."""
        return ParameterRows(self.inputs[start:stop], self.weights, self.num_inputs)

    @classmethod
    def on_backend(cls, params: Any, backend: Backend) -> ParameterRows:
        """The (B, P) ``params`` (a host or backend array, or :class:`SampleRows`) on
        ``backend``, each array copied there once (not at all where it is already there).

        Args:
            params: (B, P) float64 parameter values.
            backend: where the kernels run.
        """
        xp = backend.xp
        if isinstance(params, SampleRows):
            parts = (params.inputs, params.weights)
        else:
            parts = (params, np.zeros(0))
        arrays = []
        for part in parts:
            if not backend.is_array(part):
                _profile.count("host_to_device_bytes", 8 * int(np.size(part)))
                _profile.count("host_ops")
            array = backend.asarray(part, dtype=np.float64)
            if not array.flags.c_contiguous:
                _profile.count("host_ops")
                array = xp.ascontiguousarray(array)
            arrays.append(array)
        inputs, weights = arrays
        return cls(inputs, weights, int(inputs.shape[1]))


class AngleMap:
    """The angle table of a program on a backend.

    Args:
        table: the program's angle table.
        backend: where the angles are evaluated.
        num_outputs: O, for the bytes of slot derivatives.
    """

    def __init__(self, table: AngleTable, backend: Backend, num_outputs: int) -> None:
        self.table = table
        self.backend = backend
        self.num_outputs = num_outputs

    def angles(self, params: Any) -> Any:
        """(B, K) float64 angles on the backend of (B, P) float64 parameter rows (host or
        backend)."""
        return self.table.angles(self.backend.asarray(params, dtype=np.float64), self.backend.xp)

    def jacobian(self, params: Any, slots: Sequence[int], columns: Sequence[int]) -> Any:
        """(S, J) or (B, S, J) float64 derivatives of the ``slots``' angles by the parameter
        ``columns`` at (B, P) ``params`` (per sample only where a slot is not affine)."""
        return self.table.jacobian(
            self.backend.asarray(params, dtype=np.float64), slots, columns, self.backend.xp
        )

    def differentiated_slots(self, columns: Sequence[int]) -> list[int]:
        """The slots whose angles depend on any of the parameter ``columns``."""
        depends = self.table.depends[:, list(columns)].any(axis=1)
        return [int(k) for k in np.flatnonzero(depends)]

    def host_bytes(self, slots: Sequence[int], columns: Sequence[int]) -> int:
        """Bytes per sample beside the states: its angles, its parameters, its Jacobian rows
        (when a differentiated slot is not affine), its slot derivatives."""
        table = self.table
        jacobian = 0 if table.is_affine_in(slots) else len(slots) * len(columns)
        return 8 * (
            table.num_slots
            + table.num_parameters
            + jacobian
            + 2 * self.num_outputs * max(1, len(slots))
        )

"""Forward and parameter-shift backward passes over a batch, in memory-bounded chunks.

The backward pass packs, for a chunk of samples, the base rows and every shifted copy into ONE
state tensor: rows ``[0:nb]`` are the samples' unshifted base rows, then one block per
(slot, shift term), ``nb`` rows each. A shifted block branches off the base rows as late as
possible: after its op and every later op that commutes with it (e.g. a whole run of diagonal
gates such as a ZZ feature map), where it gets the shift applied on its own. So the prefix is
simulated once per sample, and each op is applied only to the rows that are live by then. Slot
derivatives are combined from the blocks' outputs and chained to parameter derivatives through
the angle table's Jacobian.

Shapes: B batch, P parameters, J requested parameters, K slots, S shifted slots, O outputs,
R rows, D = 2**n.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._backend import Backend
from ._compile import Program
from ._engine import Engine

# Peak bytes per row: the state, an op's temporaries and the readout's.
_ROW_FACTOR = 4


def state_row_bytes(num_qubits: int, dtype: np.dtype) -> int:
    """Peak bytes one statevector row needs in the engine, temporaries included."""
    return 2**num_qubits * np.dtype(dtype).itemsize * _ROW_FACTOR


class Simulator:
    """Forward and backward passes of a program with a readout.

    Args:
        program: the compiled circuit.
        readout: maps (R, D) states to (R, O) real outputs on the backend.
        backend: array module, device and dtype.
    """

    def __init__(self, program: Program, readout: Callable[[Any], Any],
                 backend: Backend) -> None:
        self.program = program
        self.readout = readout
        self.backend = backend
        self.engine = Engine(program, backend)
        self.num_outputs = readout.num_outputs
        self.row_bytes = state_row_bytes(program.num_qubits, backend.dtype)

    def _work_rows(self, budget: int) -> int:
        """Rows per engine call: the backend's preferred chunk, never above ``budget``."""
        preferred = self.backend.work_chunk_bytes
        if preferred is None:
            return budget
        return max(1, min(budget, preferred // self.row_bytes))

    def _row_budget(self, max_memory: int | None) -> int:
        limit = max_memory if max_memory is not None else self.backend.free_memory() // 2
        rows = limit // self.row_bytes
        if rows < 1:
            what = f"max_memory={limit} bytes" if max_memory is not None else (
                f"half of the free memory ({limit} bytes; set max_memory to choose)")
            raise ValueError(
                f"{what} is too small: one statevector row of {self.program.num_qubits} "
                f"qubits needs about {self.row_bytes} bytes"
            )
        return int(rows)

    def forward(self, params: np.ndarray, max_memory: int | None = None) -> np.ndarray:
        """Outputs for a batch.

        Args:
            params: (B, P) float64 parameter values.
            max_memory: bound on the bytes of states held at once (None: half of free memory).

        Returns:
            (B, O) float64 outputs.
        """
        budget = self._row_budget(max_memory)
        chunk = self._work_rows(budget)
        angles = self.program.angles.angles(params)
        out = np.empty((params.shape[0], self.num_outputs))
        for start in range(0, params.shape[0], chunk):
            stop = min(start + chunk, params.shape[0])
            psi = self.engine.evolve(self.backend.asarray(angles[start:stop]))
            out[start:stop] = self.backend.to_host(self.readout(psi))
        return out

    def backward(self, params: np.ndarray, columns: Sequence[int],
                 max_memory: int | None = None,
                 sample: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Derivatives of the outputs by parameter shift.

        Args:
            params: (B, P) float64 parameter values.
            columns: the J parameter columns to differentiate by.
            max_memory: bound on the bytes of states held at once (None: half of free memory).
            sample: optional map of (R, O) exact outputs to sampled ones (shots).

        Returns:
            (B, O, J) float64 derivatives.
        """
        table = self.program.angles
        batch = params.shape[0]
        grad = np.zeros((batch, self.num_outputs, len(columns)))
        slots = [k for k in range(table.num_slots) if table.depends[k, list(columns)].any()]
        if not slots or batch == 0:
            return grad
        angles = table.angles(params)
        jac = table.jacobian(params, slots, columns)
        rules = [self.program.ops[self.program.slot_ops[k]].shift_rule for k in slots]
        budget = self._row_budget(max_memory)
        target = self._work_rows(budget)
        for group in _slot_groups(rules, budget):
            positions = [g for g, _terms in group]
            rows_per_sample = 1 + sum(len(terms) for _g, terms in group)
            nb = max(1, min(batch, target // rows_per_sample))
            for start in range(0, batch, nb):
                stop = min(start + nb, batch)
                dslot = self._shifted(angles[start:stop], [slots[g] for g in positions],
                                      [terms for _g, terms in group], sample)
                sub_jac = (jac[:, positions] if jac.shape[0] == 1
                           else jac[start:stop, positions])
                grad[start:stop] += np.matmul(dslot, sub_jac)
        return grad

    def _shifted(self, angles: np.ndarray, slots: Sequence[int],
                 rules: Sequence[Sequence[tuple[float, float]]],
                 sample: Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
        """(nb, O, S) slot derivatives for nb samples, all shifted rows in one tensor."""
        nb = angles.shape[0]
        ops = [int(self.program.slot_ops[k]) for k in slots]
        points = [self.engine.branch_points[i] for i in ops]
        blocks = []  # (slot position, coefficient, start row)
        branches: dict[int, list[tuple[int, int, int, float]]] = {}
        active = np.full(len(self.program.ops), nb, dtype=np.int64)
        row = nb
        for s in sorted(range(len(slots)), key=lambda s: points[s]):
            for coeff, shift in rules[s]:
                branches.setdefault(points[s], []).append((row, row + nb, ops[s], shift))
                blocks.append((s, coeff, row))
                row += nb
            active[points[s]:] = row
        table = self.backend.asarray(np.tile(angles, (row // nb, 1)))
        psi = self.engine.evolve(table, num_base=nb, branches=branches, active=active)
        out = self.backend.to_host(self.readout(psi))
        del psi
        if sample is not None:
            out = sample(out)
        dslot = np.zeros((nb, self.num_outputs, len(slots)))
        for s, coeff, start in blocks:
            dslot[:, :, s] += coeff * out[start:start + nb]
        return dslot


def _slot_groups(rules: Sequence[Sequence[tuple[float, float]]],
                 budget: int) -> list[list[tuple[int, tuple[tuple[float, float], ...]]]]:
    """Split the (slot, shift term) rows of one sample into groups that fit ``budget`` rows
    with the base row: each group is a list of (slot position, its terms in this group)."""
    if budget < 2:
        raise ValueError(
            "max_memory is too small for a parameter-shift step: it needs 2 statevector rows "
            f"(a base row and a shifted one) and fits {budget}"
        )
    groups: list[list[tuple[int, tuple[tuple[float, float], ...]]]] = [[]]
    rows = 1
    for g, rule in enumerate(rules):
        terms = list(rule)
        while terms:
            if rows == budget:
                groups.append([])
                rows = 1
            take = terms[: budget - rows]
            terms = terms[len(take):]
            groups[-1].append((g, tuple(take)))
            rows += len(take)
    return groups

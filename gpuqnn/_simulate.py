"""Forward and backward passes over a batch, in memory-bounded chunks of rows.

Two gradient methods, both exact and both batched over the whole chunk:

- **adjoint** (:mod:`gpuqnn._adjoint`): one forward and one backward sweep per sample, all samples
  (and all outputs) in one tensor. Its cost grows with the number of outputs.
- **parameter shift**: for a chunk of samples, the base rows and every shifted copy are ONE state
  tensor: rows ``[0:nb]`` are the samples' unshifted base rows, then one block of ``nb`` rows per
  (slot, shift term). A shifted block starts as a copy of the base rows just before the block
  that holds its slot, so the common prefix is simulated once per sample. Its cost grows with the
  number of differentiated slots. It is the method when shots are sampled.

``gradient_method="auto"`` takes the cheaper one by a cost model over the fused blocks. Slot
derivatives are chained to parameters through the angle table's Jacobian.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ._adjoint import adjoint_cost, adjoint_gradients
from ._backend import Backend
from ._blocks import PhaseBlock
from ._compile import Program
from ._engine import Engine
from ._workspace import Workspace

GRADIENT_METHODS = ("auto", "adjoint", "parameter_shift")

_STATE_BUFFERS = 5
"""States a row needs in a forward or parameter-shift pass: the state, its spare and scratch
buffers, a phase block's per-row phases and the readout's temporaries."""

_ADJOINT_BUFFERS = 3
"""States a sample needs in an adjoint pass besides checkpoints and adjoint states: the state,
its spare and scratch buffers."""

_ADJOINT_PER_OUTPUT = 5
"""States per output of a sample in an adjoint pass: the adjoint state, its spare and scratch
buffers, and a block gradient's temporaries."""


def state_row_bytes(num_qubits: int, dtype: np.dtype) -> int:
    """Peak bytes one statevector row needs in a forward pass, temporaries included."""
    return 2**num_qubits * np.dtype(dtype).itemsize * _STATE_BUFFERS


class Simulator:
    """Forward and backward passes of a program with a readout.

    Args:
        program: the compiled circuit.
        readout: maps (R, D) states to (R, O) real outputs on the backend, and gives the
            adjoint states (R, O, D) of the outputs.
        backend: array module, device and dtype.
        gradient_method: ``"auto"``, ``"adjoint"`` or ``"parameter_shift"``.
    """

    def __init__(self, program: Program, readout: Any, backend: Backend,
                 gradient_method: str = "auto") -> None:
        if gradient_method not in GRADIENT_METHODS:
            raise ValueError(f"gradient_method must be one of {GRADIENT_METHODS}, "
                             f"got {gradient_method!r}")
        self.program = program
        self.readout = readout
        self.backend = backend
        self.gradient_method = gradient_method
        self.engine = Engine(program, backend)
        self.num_outputs = readout.num_outputs
        self.state_bytes = 2**program.num_qubits * np.dtype(backend.dtype).itemsize
        self.row_bytes = self.state_bytes * _STATE_BUFFERS
        self.workers = backend.workers
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None

    def workspace(self) -> Workspace:
        """This thread's reusable buffers (a thread never shares them with another)."""
        work = getattr(self._local, "work", None)
        if work is None:
            work = self._local.work = Workspace(self.backend.xp)
        return work

    # ---- memory and threads ---------------------------------------------------------------------
    def _budget(self, max_memory: int | None) -> int:
        return max_memory if max_memory is not None else self.backend.free_memory() // 2

    def _rows(self, per_row: int, max_memory: int | None, what: str, total: int) -> int:
        """Rows of ``per_row`` bytes per chunk: what fits the budget with every worker holding
        a chunk, capped by the backend's preferred chunk, and small enough that ``total`` rows
        give every worker some; raises when not even one row fits."""
        limit = self._budget(max_memory)
        rows = limit // per_row
        if rows < 1:
            budget = f"max_memory={limit} bytes" if max_memory is not None else (
                f"half of the free memory ({limit} bytes; set max_memory to choose)")
            raise ValueError(
                f"{budget} is too small: {what} of {self.program.num_qubits} qubits needs "
                f"about {per_row} bytes"
            )
        workers = self._workers_for(total, per_row)
        rows = max(1, rows // workers)
        preferred = self.backend.work_chunk_bytes
        if preferred is not None:
            rows = min(rows, max(1, preferred // per_row))
        return int(min(rows, max(1, -(-total // workers))))

    def _workers_for(self, total: int, per_row: int) -> int:
        """Workers worth using for ``total`` rows: each should get at least a few hundred KiB
        of states, or the threads' overhead outweighs their gain."""
        return max(1, min(self.workers, total * per_row // (256 << 10)))

    def _map(self, task: Callable[[int, int], None], total: int, chunk: int) -> None:
        """Run ``task(start, stop)`` over ``range(0, total, chunk)``, chunks on worker threads
        when there are several (each thread has its own workspace)."""
        ranges = [(start, min(start + chunk, total)) for start in range(0, total, chunk)]
        if len(ranges) <= 1 or self.workers == 1:
            for start, stop in ranges:
                task(start, stop)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gpuqnn")
            weakref.finalize(self, self._pool.shutdown, wait=False)
        for future in [self._pool.submit(task, start, stop) for start, stop in ranges]:
            future.result()

    # ---- forward ------------------------------------------------------------------------------
    def forward(self, params: np.ndarray, max_memory: int | None = None) -> np.ndarray:
        """Outputs for a batch.

        Args:
            params: (B, P) float64 parameter values.
            max_memory: bound on the bytes of states held at once (None: half of free memory).

        Returns:
            (B, O) float64 outputs.
        """
        batch = params.shape[0]
        chunk = self._rows(self.row_bytes, max_memory, "one statevector row", batch)
        angles = self.program.angles.angles(params)
        out = np.empty((batch, self.num_outputs))

        def task(start: int, stop: int) -> None:
            psi = self.engine.evolve(self.backend.asarray(angles[start:stop]),
                                     work=self.workspace())
            out[start:stop] = self.backend.to_host(self.readout(psi))

        self._map(task, batch, chunk)
        return out

    # ---- backward -----------------------------------------------------------------------------
    def differentiated_slots(self, columns: Sequence[int]) -> list[int]:
        """The slots whose angles depend on any of the parameter ``columns``."""
        table = self.program.angles
        cols = list(columns)
        return [k for k in range(table.num_slots) if table.depends[k, cols].any()]

    def method(self, columns: Sequence[int], shots: bool = False) -> str:
        """The gradient method a backward pass by ``columns`` uses.

        Args:
            columns: the parameter columns differentiated by.
            shots: whether outputs are sampled (then only parameter shift applies).
        """
        if shots or self.gradient_method == "parameter_shift":
            return "parameter_shift"
        if self.gradient_method == "adjoint":
            return "adjoint"
        slots = self.differentiated_slots(columns)
        if not slots:
            return "adjoint"
        costs = self.engine.block_costs()
        blocks = self.engine.slot_block[slots]
        adjoint = adjoint_cost(costs, int(blocks.min()), self.num_outputs, checkpoints=True)
        rows = np.ones(len(costs))
        for k, j in zip(slots, blocks, strict=True):
            rows[j:] += len(self._rule(k))
        shift = float(rows @ costs)
        return "adjoint" if adjoint <= shift else "parameter_shift"

    def backward(self, params: np.ndarray, columns: Sequence[int],
                 max_memory: int | None = None,
                 sample: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Derivatives of the outputs.

        Args:
            params: (B, P) float64 parameter values.
            columns: the J parameter columns to differentiate by.
            max_memory: bound on the bytes of states held at once (None: half of free memory).
            sample: optional map of (R, O) exact outputs to sampled ones (shots); forces
                parameter shift.

        Returns:
            (B, O, J) float64 derivatives.
        """
        table = self.program.angles
        batch = params.shape[0]
        grad = np.zeros((batch, self.num_outputs, len(columns)))
        slots = self.differentiated_slots(columns)
        if not slots or batch == 0:
            return grad
        angles = table.angles(params)
        jac = table.jacobian(params, slots, columns)
        if self.method(columns, shots=sample is not None) == "adjoint":
            self._adjoint(angles, slots, jac, max_memory, grad)
        else:
            self._parameter_shift(angles, slots, jac, max_memory, sample, grad)
        return grad

    def _adjoint(self, angles: np.ndarray, slots: list[int], jac: np.ndarray,
                 max_memory: int | None, grad: np.ndarray) -> None:
        engine = self.engine
        first = int(engine.slot_block[slots].min())
        kept = len(engine.blocks) - first
        phases = sum(isinstance(b, PhaseBlock) and b.parametric for b in engine.blocks[first:])
        base = _ADJOINT_BUFFERS + phases + _ADJOINT_PER_OUTPUT * self.num_outputs
        with_checkpoints = (base + kept) * self.state_bytes
        limit = self._budget(max_memory)
        batch = angles.shape[0]
        checkpoints = limit // with_checkpoints >= min(batch, 16)
        per_sample = with_checkpoints if checkpoints else base * self.state_bytes
        chunk = self._rows(per_sample, max_memory, "an adjoint pass over one sample", batch)

        def task(start: int, stop: int) -> None:
            dslot = adjoint_gradients(engine, self.readout,
                                      self.backend.asarray(angles[start:stop]), slots,
                                      checkpoints, self.workspace())
            _chain(self.backend.to_host(dslot), jac, start, stop, grad)

        self._map(task, batch, chunk)

    def _rule(self, slot: int) -> tuple[tuple[float, float], ...]:
        return self.program.ops[self.program.slot_ops[slot]].shift_rule

    def _parameter_shift(self, angles: np.ndarray, slots: list[int], jac: np.ndarray,
                         max_memory: int | None,
                         sample: Callable[[np.ndarray], np.ndarray] | None,
                         grad: np.ndarray) -> None:
        batch = angles.shape[0]
        rules = [self._rule(k) for k in slots]
        rows_total = batch * (1 + sum(len(rule) for rule in rules))
        workers = self._workers_for(rows_total, self.row_bytes)
        budget = max(1, self._budget(max_memory) // self.row_bytes // workers)
        target = self._rows(self.row_bytes, max_memory, "one statevector row", rows_total)
        for group in _slot_groups(rules, budget):
            positions = [g for g, _terms in group]
            group_slots = [slots[g] for g in positions]
            group_rules = [terms for _g, terms in group]
            rows_per_sample = 1 + sum(len(terms) for terms in group_rules)
            nb = max(1, min(batch, target // rows_per_sample))

            def task(start: int, stop: int, group_slots=group_slots, group_rules=group_rules,
                     positions=positions) -> None:
                dslot = self._shifted(angles[start:stop], group_slots, group_rules, sample)
                _chain(dslot, jac[:, positions], start, stop, grad)

            # shots draw from one generator: keep their order by running chunks in turn
            if sample is not None:
                for start in range(0, batch, nb):
                    task(start, min(start + nb, batch))
            else:
                self._map(task, batch, nb)

    def _shifted(self, angles: np.ndarray, slots: Sequence[int],
                 rules: Sequence[Sequence[tuple[float, float]]],
                 sample: Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
        """(nb, O, S) slot derivatives for nb samples, all shifted rows in one tensor."""
        nb = angles.shape[0]
        blocks = [int(self.engine.slot_block[k]) for k in slots]
        terms = []  # (slot position, coefficient, start row)
        branches: dict[int, list[tuple[int, int]]] = {}
        active = np.full(len(self.engine.blocks), nb, dtype=np.int64)
        table = [angles]
        row = nb
        for s in sorted(range(len(slots)), key=lambda s: blocks[s]):
            for coeff, shift in rules[s]:
                branches.setdefault(blocks[s], []).append((row, row + nb))
                shifted = angles.copy()
                shifted[:, slots[s]] += shift
                table.append(shifted)
                terms.append((s, coeff, row))
                row += nb
            active[blocks[s]:] = row
        psi = self.engine.evolve(self.backend.asarray(np.concatenate(table)), num_base=nb,
                                 branches=branches, active=active, work=self.workspace())
        out = self.backend.to_host(self.readout(psi))
        del psi
        if sample is not None:
            out = sample(out)
        dslot = np.zeros((nb, self.num_outputs, len(slots)))
        for s, coeff, start in terms:
            dslot[:, :, s] += coeff * out[start:start + nb]
        return dslot


def _chain(dslot: np.ndarray, jac: np.ndarray, start: int, stop: int, grad: np.ndarray) -> None:
    """grad[start:stop] += dslot (n, O, S) @ jac (1 | B, S, J) rows start..stop."""
    sub_jac = jac if jac.shape[0] == 1 else jac[start:stop]
    grad[start:stop] += np.matmul(dslot, sub_jac)


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

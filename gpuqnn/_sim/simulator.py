"""Forward and backward passes over a batch, in memory-bounded chunks of rows.

Two gradient methods, both exact and both batched over the whole chunk:

- **adjoint** (:mod:`.adjoint`): one forward and one backward sweep per sample, all samples
  (and all outputs) in one tensor. Its cost grows with the number of outputs.
- **parameter shift**: for a chunk of samples, the base rows and every shifted copy are ONE state
  tensor: rows ``[0:nb]`` are the samples' unshifted base rows, then one block of ``nb`` rows per
  (slot, shift term). A shifted block starts as a copy of the base rows just after the block
  that holds its slot, with the shift applied in that block's output frame, so the common
  prefix is simulated once per sample and every row uses its sample's per-sample data. Its cost
  grows with the number of differentiated slots. It is the method when shots are sampled. On a
  GPU the CUDA kernels run it (see :mod:`gpuqnn._cuda.select`).

``gradient_method="auto"`` takes the cheaper one by a cost model over the fused blocks. Slot
derivatives are chained to parameters through the angle table's Jacobian.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from .._compile import Program
from .._cuda.select import RunnerFactory, check_kernel_mode, cuda_runner, runner_row_bytes
from .adjoint import adjoint_cost, adjoint_gradients
from .backend import Backend
from .blocks import LayerBlock, Shifts
from .buffers import Workspace
from .fused import Engine

GRADIENT_METHODS = ("auto", "adjoint", "parameter_shift")

_FORWARD_STATES = 6
"""States per row of a forward or parameter-shift pass at its peak besides the blocks' per-sample
data: the state, its spare and scratch buffers and three for the readout's temporaries (a
gathered copy, its conjugate product and the real/imaginary parts); checked with tracemalloc."""

_ADJOINT_STATES = 5
"""States per sample of an adjoint pass besides checkpoints, adjoint states and the blocks'
per-sample data: the state, its spare and scratch, and two for the readout's temporaries."""

_ADJOINT_PER_OUTPUT = 5
"""States per output of a sample in an adjoint pass: the adjoint state, its spare and scratch
buffers, and a block gradient's temporaries (a product and its imaginary part)."""

_MARGIN = 0.8
"""Share of the memory budget the chunks are sized for."""

RETAIN_BYTES = 64 << 20
"""A thread's workspace is kept between calls up to this size, released above it."""


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
        return self.shape[0] * self.shape[1]

    def __getitem__(self, rows: slice) -> Any:
        chunk = self.inputs[rows]
        tiled = self.xp.broadcast_to(self.weights, (chunk.shape[0], self.weights.shape[0]))
        return self.xp.concatenate([chunk, tiled], axis=1)


def state_row_bytes(num_qubits: int, dtype: np.dtype) -> int:
    """Peak bytes one statevector row needs in a forward pass, temporaries included."""
    return 2**num_qubits * np.dtype(dtype).itemsize * _FORWARD_STATES


class Simulator:
    """Forward and backward passes of a program with a readout.

    On a GPU backend, forward and parameter-shift passes of programs the CUDA kernels support
    run through them (see :mod:`gpuqnn._cuda.select`); the rest runs the block engine.

    Args:
        program: the compiled circuit.
        readout: maps (R, D) states to (R, O) real outputs on the backend, and gives the
            adjoint states (R, O, D) of the outputs.
        backend: array module, device and dtype.
        gradient_method: ``"auto"``, ``"adjoint"`` or ``"parameter_shift"``.
        kernels: on a GPU, ``"auto"``, ``"fused"``, ``"per_op"`` or ``"none"``.
        runner_factory: builds the kernel runner (default: the CuPy runners); tests pass the
            host build's runners to check this class's GPU path on the CPU.
    """

    def __init__(
        self,
        program: Program,
        readout: Any,
        backend: Backend,
        gradient_method: str = "auto",
        kernels: str = "auto",
        runner_factory: RunnerFactory | None = None,
    ) -> None:
        if gradient_method not in GRADIENT_METHODS:
            raise ValueError(
                f"gradient_method must be one of {GRADIENT_METHODS}, got {gradient_method!r}"
            )
        check_kernel_mode(kernels)
        self.program = program
        self.readout = readout
        self.backend = backend
        self.gradient_method = gradient_method
        self.engine = Engine(program, backend)
        self.num_outputs = readout.num_outputs
        factory = cuda_runner if runner_factory is None else runner_factory
        self.runner = factory(program, readout, backend, kernels) if backend.is_gpu else None
        self._runner_row = (
            0
            if self.runner is None
            else runner_row_bytes(self.runner, program, self.num_outputs, backend.dtype)
        )
        self.state_bytes = 2**program.num_qubits * np.dtype(backend.dtype).itemsize
        preps = [block.prep_bytes() for block in self.engine.blocks]
        self._prep_peak = max((kept + temp for kept, temp in preps), default=0)
        self._prep_kept = sum(kept for kept, _temp in preps)
        self._prep_temp = max((temp for _kept, temp in preps), default=0)
        self._gradient_temp = max(
            (
                block.gradient_bytes()
                for block in self.engine.blocks
                if isinstance(block, LayerBlock)
            ),
            default=0,
        )
        self.row_bytes = self.state_bytes * _FORWARD_STATES + self._prep_peak
        self.workers = backend.workers
        self._local = threading.local()
        self._workspaces: list[Workspace] = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._blas: ThreadpoolController | None = None

    def workspace(self) -> Workspace:
        """This thread's reusable buffers (a thread never shares them with another)."""
        work = getattr(self._local, "work", None)
        if work is None:
            work = self._local.work = Workspace(self.backend.xp)
            with self._lock:
                self._workspaces.append(work)
        return work

    def _release(self, max_memory: int | None) -> None:
        """After a call: with an explicit ``max_memory`` drop every buffer (the bound covers
        whatever the process holds during the next call); else drop those of workspaces grown
        past :data:`RETAIN_BYTES` (after a big batch, e.g. on a GPU)."""
        with self._lock:
            for work in self._workspaces:
                if max_memory is not None or work.nbytes > RETAIN_BYTES:
                    work.clear()

    # ---- memory and threads -------------------------------------------------------------------
    def _budget(self, max_memory: int | None) -> int:
        """Bytes the chunks are sized for: :data:`_MARGIN` of ``max_memory`` (or of half the
        free memory), leaving room for what the byte counts above do not model."""
        limit = max_memory if max_memory is not None else self.backend.free_memory() // 2
        return int(limit * _MARGIN)

    def _rows(
        self, per_row: int, max_memory: int | None, what: str, total: int, states: int = 1
    ) -> tuple[int, int]:
        """Rows of ``per_row`` bytes per chunk, and the workers that hold one each: what fits
        the budget with every worker holding a chunk, capped by the backend's preferred chunk,
        and small enough that ``total`` rows give every worker some; raises when not even one
        row fits. ``states``: the statevectors one row's work sweeps (a sample's shifted copies,
        or its adjoint states), which decides how many workers pay."""
        limit = self._budget(max_memory)
        rows = limit // per_row
        if rows < 1:
            budget = (
                f"max_memory={max_memory} bytes"
                if max_memory is not None
                else (
                    f"half of the free memory ({limit / _MARGIN:.0f} bytes; set max_memory to "
                    "choose)"
                )
            )
            raise ValueError(
                f"{budget} is too small: {what} of {self.program.num_qubits} qubits needs "
                f"about {per_row} bytes, and chunks are sized for {_MARGIN:.0%} of the bound"
            )
        workers = self._workers_for(total * states, rows)
        rows = max(1, rows // workers)
        preferred = self.backend.work_chunk_bytes
        if preferred is not None:
            rows = min(rows, max(1, preferred // per_row))
        return int(min(rows, max(1, -(-total // workers)))), workers

    def _workers_for(self, states: int, fit: int) -> int:
        """Workers worth using for a pass that sweeps ``states`` statevectors when ``fit``
        units (rows or samples) fit the budget: each should get at least 512 KiB of states, so
        that NumPy's calls, not Python between them, take its time (measured: two workers slow
        a 6-qubit pass at batch 256 down by 20-70% and speed an 8-qubit one up by 20%), and a
        unit of its own within the budget."""
        return max(1, min(self.workers, states * self.state_bytes // (512 << 10), fit))

    def _map(
        self,
        task: Callable[[int, int], None],
        total: int,
        sizing: tuple[int, int],
        max_memory: int | None,
    ) -> None:
        """Run ``task(start, stop)`` over ``range(0, total, chunk)`` for ``sizing = (chunk,
        workers)`` from :meth:`_rows`, chunks on that many worker threads (each thread has its
        own workspace); release buffers after."""
        chunk, workers = sizing
        ranges = [(start, min(start + chunk, total)) for start in range(0, total, chunk)]
        try:
            if len(ranges) <= 1 or workers == 1:
                for start, stop in ranges:
                    task(start, stop)
                return
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gpuqnn")
                    weakref.finalize(self, self._pool.shutdown, wait=False)
                    self._blas = ThreadpoolController()

            def share(first: int) -> None:  # every workers-th chunk, in one thread
                for start, stop in ranges[first::workers]:
                    task(start, stop)

            # one BLAS thread per worker: OpenBLAS's own threads spin after each call and would
            # take the cores from the workers (measured: a 12-qubit backward 35 ms -> 4.5 s)
            with self._blas.limit(limits=1, user_api="blas"):
                futures = [
                    self._pool.submit(share, first) for first in range(min(workers, len(ranges)))
                ]
                for future in futures:
                    future.result()
        finally:
            self._release(max_memory)

    def _host_bytes(self, slots: Sequence[int], columns: Sequence[int]) -> int:
        """Host bytes per sample beside the states: its angles, its parameters, its Jacobian
        rows (when a differentiated slot is not affine), its slot derivatives."""
        table = self.program.angles
        per_sample_jacobian = not table.is_affine_in(slots)
        jacobian = len(slots) * len(columns) if per_sample_jacobian else 0
        return 8 * (
            table.num_slots
            + table.num_parameters
            + jacobian
            + 2 * self.num_outputs * max(1, len(slots))
        )

    # ---- forward ------------------------------------------------------------------------------
    def forward(self, params: Any, max_memory: int | None = None) -> np.ndarray:
        """Outputs for a batch, on the host.

        Args:
            params: (B, P) float64 parameter values: an array, or :class:`SampleRows`.
            max_memory: bound on the bytes of states held at once (None: half of free memory).

        Returns:
            (B, O) float64 outputs.
        """
        return self.backend.to_host(self.forward_device(params, max_memory))

    def forward_device(self, params: Any, max_memory: int | None = None) -> Any:
        """Outputs for a batch, on the backend (a CuPy array on a GPU).

        Args:
            params: (B, P) float64 parameter values (host or backend array, or
                :class:`SampleRows`).
            max_memory: bound on the bytes of states held at once (None: half of free memory).

        Returns:
            (B, O) float64 outputs on the backend.
        """
        xp = self.backend.xp
        batch = params.shape[0]
        out = xp.empty((batch, self.num_outputs), dtype=np.float64)
        host = self._host_bytes([], [])
        if self.runner is not None:
            sizing = self._rows(self._runner_row + host, max_memory, "one kernel row", batch)
            unshifted = (np.full(1, -1, dtype=np.int32), np.zeros(1))

            def task(start: int, stop: int) -> None:
                out[start:stop] = self.runner.run(self._angles(params[start:stop]), *unshifted)
        else:
            sizing = self._rows(self.row_bytes + host, max_memory, "one statevector row", batch)

            def task(start: int, stop: int) -> None:
                psi = self.engine.evolve(self._angles(params[start:stop]), work=self.workspace())
                out[start:stop] = self.readout(psi[: stop - start])

        self._map(task, batch, sizing, max_memory)
        return out

    def _angles(self, params: Any) -> Any:
        """(B, K) angles on the backend of (B, P) parameter rows (host or backend)."""
        xp = self.backend.xp
        return self.program.angles.angles(self.backend.asarray(params, dtype=np.float64), xp)

    def _jacobian(self, params: Any, slots: Sequence[int], columns: Sequence[int]) -> Any:
        xp = self.backend.xp
        return self.program.angles.jacobian(
            self.backend.asarray(params, dtype=np.float64), slots, columns, xp
        )

    # ---- backward -----------------------------------------------------------------------------
    def differentiated_slots(self, columns: Sequence[int]) -> list[int]:
        """The slots whose angles depend on any of the parameter ``columns``."""
        table = self.program.angles
        cols = list(columns)
        return [k for k in range(table.num_slots) if table.depends[k, cols].any()]

    def method(
        self, columns: Sequence[int], shots: bool = False, max_memory: int | None = None
    ) -> str:
        """The gradient method a backward pass by ``columns`` uses.

        Args:
            columns: the parameter columns differentiated by.
            shots: whether outputs are sampled (then only parameter shift applies).
            max_memory: the pass's memory bound; ``"auto"`` takes parameter shift when not
                even one sample's adjoint pass fits it.
        """
        if shots or self.gradient_method == "parameter_shift":
            return "parameter_shift"
        if self.gradient_method == "adjoint":
            return "adjoint"
        slots = self.differentiated_slots(columns)
        if not slots:
            return "adjoint"
        if self._adjoint_bytes(slots, columns, checkpoints=False) > self._budget(max_memory):
            return "parameter_shift"
        costs = self.engine.block_costs()
        blocks = self.engine.slot_block[slots]
        adjoint = adjoint_cost(costs, int(blocks.min()), self.num_outputs, checkpoints=True)
        rows = np.ones(len(costs))
        for k, j in zip(slots, blocks, strict=True):
            rows[j + 1 :] += len(self._rule(k))
        shift = float(rows @ costs)
        return "adjoint" if adjoint <= shift else "parameter_shift"

    def backward(
        self,
        params: Any,
        columns: Sequence[int],
        max_memory: int | None = None,
        sample: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> np.ndarray:
        """Derivatives of the outputs, on the host.

        Args:
            params: (B, P) float64 parameter values: an array, or :class:`SampleRows`.
            columns: the J parameter columns to differentiate by.
            max_memory: bound on the bytes of states held at once (None: half of free memory).
            sample: optional map of (R, O) exact outputs to sampled ones (shots, on the host);
                forces parameter shift.

        Returns:
            (B, O, J) float64 derivatives.
        """
        return self.backend.to_host(self.backward_device(params, columns, max_memory, sample))

    def backward_device(
        self,
        params: Any,
        columns: Sequence[int],
        max_memory: int | None = None,
        sample: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Any:
        """Derivatives of the outputs, on the backend (a CuPy array on a GPU); arguments as
        :meth:`backward`.

        Returns:
            (B, O, J) float64 derivatives on the backend.
        """
        batch = params.shape[0]
        grad = self.backend.xp.zeros((batch, self.num_outputs, len(columns)), dtype=np.float64)
        slots = self.differentiated_slots(columns)
        if not slots or batch == 0:
            return grad
        if self.method(columns, sample is not None, max_memory) == "adjoint":
            self._adjoint(params, slots, columns, max_memory, grad)
        else:
            self._parameter_shift(params, slots, columns, max_memory, sample, grad)
        return grad

    def _adjoint(
        self,
        params: np.ndarray,
        slots: list[int],
        columns: Sequence[int],
        max_memory: int | None,
        grad: np.ndarray,
    ) -> None:
        engine = self.engine
        with_checkpoints = self._adjoint_bytes(slots, columns, checkpoints=True)
        batch = params.shape[0]
        checkpoints = self._budget(max_memory) // with_checkpoints >= min(batch, 16)
        per_sample = (
            with_checkpoints
            if checkpoints
            else self._adjoint_bytes(slots, columns, checkpoints=False)
        )
        sizing = self._rows(
            per_sample,
            max_memory,
            "an adjoint pass over one sample",
            batch,
            states=1 + self.num_outputs,
        )

        def task(start: int, stop: int) -> None:
            chunk_params = params[start:stop]
            dslot = adjoint_gradients(
                engine,
                self.readout,
                self._angles(chunk_params),
                slots,
                checkpoints,
                self.workspace(),
            )
            grad[start:stop] += dslot @ self._jacobian(chunk_params, slots, columns)

        self._map(task, batch, sizing, max_memory)

    def _adjoint_bytes(
        self, slots: Sequence[int], columns: Sequence[int], checkpoints: bool
    ) -> int:
        """Peak bytes per sample of an adjoint pass, with or without checkpoints."""
        states = _ADJOINT_STATES + _ADJOINT_PER_OUTPUT * self.num_outputs
        if checkpoints:
            states += len(self.engine.blocks) - int(self.engine.slot_block[slots].min())
        fixed = (
            self._prep_kept
            + self._prep_temp
            + self._host_bytes(slots, columns)
            + self._gradient_temp * self.num_outputs
        )
        return states * self.state_bytes + fixed

    def _rule(self, slot: int) -> tuple[tuple[float, float], ...]:
        return self.program.ops[self.program.slot_ops[slot]].shift_rule

    def _parameter_shift(
        self,
        params: np.ndarray,
        slots: list[int],
        columns: Sequence[int],
        max_memory: int | None,
        sample: Callable[[np.ndarray], np.ndarray] | None,
        grad: np.ndarray,
    ) -> None:
        batch = params.shape[0]
        rules = [self._rule(k) for k in slots]
        if self.runner is not None:  # per row: the kernels' outputs (fused) or states
            row, fixed = self._runner_row, self._host_bytes(slots, columns)
        else:  # per row: the engine's states; once per sample: its per-sample data
            row = self.state_bytes * _FORWARD_STATES
            fixed = self._prep_peak + self._host_bytes(slots, columns)
        for group in _slot_groups(rules, (self._budget(max_memory) - fixed) // row):
            positions = [g for g, _terms in group]
            group_slots = [slots[g] for g in positions]
            group_rules = [terms for _g, terms in group]
            rows_per_sample = 1 + sum(len(terms) for terms in group_rules)
            sizing = self._rows(
                rows_per_sample * row + fixed,
                max_memory,
                "a parameter-shift step over one sample",
                batch,
                states=rows_per_sample,
            )

            plan = self._plan_shifts(group_slots, group_rules)

            def task(start: int, stop: int, plan=plan) -> None:
                chunk_params = params[start:stop]
                dslot = self._shifted(self._angles(chunk_params), plan, sample)
                grad[start:stop] += dslot @ self._jacobian(chunk_params, plan.slots, columns)

            # shots draw from one generator: keep their order by running chunks in turn
            if sample is not None:
                self._map(task, batch, (sizing[0], 1), max_memory)
            else:
                self._map(task, batch, sizing, max_memory)

    def _plan_shifts(
        self, slots: Sequence[int], rules: Sequence[Sequence[tuple[float, float]]]
    ) -> _ShiftPass:
        """The rows of a parameter-shift pass over ``slots``, planned once for all its chunks:
        after the base rows, the branches of each block in the order the block applies them."""
        engine = self.engine
        by_block: dict[int, list[tuple[int, float, float]]] = {}  # block -> (s, coeff, shift)
        for s, (k, rule) in enumerate(zip(slots, rules, strict=True)):
            for coeff, shift in rule:
                by_block.setdefault(int(engine.slot_block[k]), []).append((s, coeff, shift))
        branches, terms = {}, []
        for j in sorted(by_block):
            block_terms = by_block[j]
            entries = [(int(engine.slot_local[slots[s]]), shift) for s, _c, shift in block_terms]
            branches[j] = engine.blocks[j].plan_shifts(entries)
            terms += [block_terms[e] for e in branches[j].order]
        weights = np.zeros((len(terms), len(slots)))
        for row, (s, coeff, _shift) in enumerate(terms):
            weights[row, s] = coeff
        return _ShiftPass(
            slots=list(slots),
            branches=branches,
            shift_slot=np.array([-1] + [slots[s] for s, _c, _v in terms], dtype=np.int32),
            shift_value=np.array([0.0] + [shift for _s, _c, shift in terms]),
            weights=self.backend.asarray(weights),
        )

    def _shifted(
        self,
        angles: Any,
        plan: _ShiftPass,
        sample: Callable[[np.ndarray], np.ndarray] | None,
    ) -> Any:
        """(nb, O, S) slot derivatives on the backend for nb samples: every shifted row of
        the chunk in one tensor (engine) or one kernel call (GPU)."""
        nb = angles.shape[0]
        terms = plan.weights.shape[0]
        if self.runner is not None:
            out = self.runner.run(angles, plan.shift_slot, plan.shift_value)
        else:
            psi = self.engine.evolve(angles, plan.branches, work=self.workspace())
            out = self.readout(psi[: nb * (1 + terms)])
            del psi
        if sample is not None:
            out = self.backend.asarray(sample(self.backend.to_host(out)))
        # dslot[b, o, s] = sum over the rows of slot s of coeff * out[row block, b, o]
        blocks_out = out[nb:].reshape(terms, nb, self.num_outputs)
        return self.backend.xp.einsum("tbo,ts->bos", blocks_out, plan.weights)


@dataclass(frozen=True)
class _ShiftPass:
    """A parameter-shift pass's rows, planned once (see ``Simulator._plan_shifts``).

    Attributes:
        slots: the S slots differentiated.
        branches: block index -> its planned branches (the engine's rows after the base rows).
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


def _slot_groups(
    rules: Sequence[Sequence[tuple[float, float]]], budget: int
) -> list[list[tuple[int, tuple[tuple[float, float], ...]]]]:
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
            terms = terms[len(take) :]
            groups[-1].append((g, tuple(take)))
            rows += len(take)
    return groups

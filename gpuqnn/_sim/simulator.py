"""The simulator: forward and backward passes of a compiled program over a batch.

A thin coordinator over its parts:

- a :class:`~.fused.FusedCircuit` (the program fused into blocks for the backend);
- a :class:`~.protocols.Runner` for forward and parameter-shift passes: the block engine
  (:class:`~.runners.BlockRunner`) or, on a GPU, the CUDA kernels
  (:class:`gpuqnn._cuda.select.KernelRunner`);
- two gradient strategies, :class:`~.adjoint.AdjointStrategy` (always on the block engine) and
  :class:`~.shift.ParameterShiftStrategy` (on the runner);
- a :class:`~.executor.ChunkExecutor` that sizes chunks to the memory budget and runs them on the
  shared worker pool.

``gradient_method="auto"`` compares the strategies' costs per sample for the runners that will
execute them; parameter shift when shots are sampled or when not one sample's adjoint pass fits
the memory budget. On the fused CUDA kernels it chooses between the fused adjoint kernel (where
a row's state and adjoint state fit shared memory) and the fused parameter-shift kernel by the
kernels' own cost model, never the block engine. Slot derivatives are chained to parameters
through the angle table's Jacobian. Every result is an array of the backend (NumPy, or CuPy on
a GPU); callers convert.

Shapes: B samples, P parameters, K angle slots, O outputs, J differentiated columns.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .._compile import Program
from .._cuda.select import RunnerFactory, cuda_runner
from .._options import SimulatorOptions
from .adjoint import AdjointStrategy, adjoint_states, forward_sweep, reverse_sweep
from .backend import Backend, on_device
from .executor import ChunkExecutor
from .fused import FusedCircuit
from .parameters import AngleMap
from .protocols import Readout, Runner
from .runners import BlockRunner
from .shift import ParameterShiftStrategy
from .tape import BufferPool, Tape, TapeLedger

logger = logging.getLogger(__name__)


class Simulator:
    """Forward and backward passes of a program with a readout.

    Args:
        program: the compiled circuit.
        readout: maps (R, D) states to (R, O) real outputs, and gives the adjoint states.
        backend: array module, device and dtype.
        options: the checked options (gradient method, memory bound, kernel mode).
        runner_factory: builds the CUDA kernel runner on a GPU backend (default: the CuPy
            runners, :func:`gpuqnn._cuda.select.cuda_runner`); tests pass the host build's.

    Attributes:
        circuit: the fused program.
        runner: what runs forward and parameter-shift passes.
        executor: sizes and runs chunks.
    """

    def __init__(
        self,
        program: Program,
        readout: Readout,
        backend: Backend,
        options: SimulatorOptions | None = None,
        runner_factory: RunnerFactory | None = None,
    ) -> None:
        self.program = program
        self.readout = readout
        self.backend = backend
        self.options = options if options is not None else SimulatorOptions()
        self.num_outputs = readout.num_outputs
        with backend.activate():  # runners and tables bind to the current device
            self.circuit = FusedCircuit(program, backend)
            self.executor = ChunkExecutor(backend, program.num_qubits, self.options.threads)
            self.angle_map = AngleMap(program.angles, backend, self.num_outputs)
            engine = BlockRunner(self.circuit, readout)
            kernels = None
            if backend.is_gpu:
                factory = cuda_runner if runner_factory is None else runner_factory
                kernels = factory(self.circuit, readout, backend, self.options.kernels)
            self.runner: Runner = engine if kernels is None else kernels
            self.adjoint = AdjointStrategy(
                self.circuit,
                readout,
                self.executor,
                self.angle_map,
                kernel=kernels if kernels is not None and kernels.name == "fused" else None,
            )
            rules = [program.ops[i].shift_rule for i in program.slot_ops]
            self.parameter_shift = ParameterShiftStrategy(
                self.circuit, self.runner, self.executor, self.angle_map, rules
            )
            self._tape_buffers = BufferPool(backend.xp)
            self._tapes_held = TapeLedger()
            # bytes of one forward row on the block engine: what must fit for the network at all
            self.row_bytes = engine.row_bytes() + engine.sample_bytes()

    @property
    def max_memory(self) -> int | None:
        """The memory bound of every pass (None: half of the free memory at call time)."""
        return self.options.max_memory

    # ---- forward ------------------------------------------------------------------------------
    @on_device("backend")
    def forward(self, params: Any) -> Any:
        """Outputs for a batch.

        Args:
            params: (B, P) float64 parameter values: a host or backend array, or
                :class:`~.parameters.SampleRows`.

        Returns:
            (B, O) float64 outputs on the backend.
        """
        xp = self.backend.xp
        batch = params.shape[0]
        out = xp.empty((batch, self.num_outputs), dtype="float64")
        per_row = (
            self.runner.row_bytes() + self.runner.sample_bytes() + self.angle_map.host_bytes([], [])
        )
        what = "one statevector row" if self.runner.name == "engine" else "one kernel row"
        sizing = self.executor.sizing(per_row, self.max_memory, what, batch)

        def task(start: int, stop: int) -> None:
            angles = self.angle_map.angles(params[start:stop])
            out[start:stop] = self.runner.forward(angles, self.executor.buffers())

        self.executor.run(task, batch, sizing, self.max_memory)
        return out

    # ---- backward -----------------------------------------------------------------------------
    def differentiated_slots(self, columns: Sequence[int]) -> list[int]:
        """The slots whose angles depend on any of the parameter ``columns``."""
        return self.angle_map.differentiated_slots(columns)

    def method(self, columns: Sequence[int], shots: bool = False, vjp: bool = False) -> str:
        """The gradient method a backward pass by ``columns`` uses: ``"adjoint"`` or
        ``"parameter_shift"``.

        Args:
            columns: the parameter columns differentiated by.
            shots: whether outputs are sampled (then only parameter shift applies).
            vjp: for a vector-Jacobian product (the adjoint sweeps one state per sample
                whatever the number of outputs; parameter shift computes every output).
        """
        asked = self.options.gradient_method
        if shots or asked == "parameter_shift":
            return "parameter_shift"
        if asked == "adjoint":
            return "adjoint"
        slots = self.differentiated_slots(columns)
        if not slots:
            return "adjoint"
        if not self.adjoint.fits(slots, columns, self.max_memory, vjp):
            return "parameter_shift"
        if self.adjoint.cost(slots, vjp) <= self.parameter_shift.cost(slots):
            return "adjoint"
        return "parameter_shift"

    @on_device("backend")
    def backward(
        self,
        params: Any,
        columns: Sequence[int],
        sample: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Derivatives of the outputs.

        Args:
            params: (B, P) float64 parameter values: a host or backend array, or
                :class:`~.parameters.SampleRows`.
            columns: the J parameter columns to differentiate by.
            sample: optional map of (R, O) exact outputs on the backend to sampled ones
                (shots); forces parameter shift.

        Returns:
            (B, O, J) float64 derivatives on the backend.
        """
        batch = params.shape[0]
        grad = self.backend.xp.zeros((batch, self.num_outputs, len(columns)), dtype="float64")
        slots = self.differentiated_slots(columns)
        if not slots or batch == 0:
            return grad
        if self.method(columns, sample is not None) == "adjoint":
            self.adjoint.run(params, slots, columns, self.max_memory, grad)
        else:
            self.parameter_shift.run(params, slots, columns, self.max_memory, grad, sample)
        return grad

    @on_device("backend")
    def forward_taped(self, params: Any, columns: Sequence[int]) -> tuple[Any, Tape | None]:
        """Outputs for a batch, keeping the forward sweep for a :meth:`vjp` by ``columns``
        when the adjoint method on the block engine will run it and the whole batch's
        checkpoints fit the memory budget; otherwise a plain :meth:`forward` (and the product
        will sweep forward again; logged at INFO).

        Args:
            params: (B, P) float64 parameter values (host or backend array, or SampleRows).
            columns: the J parameter columns the product will differentiate by.

        Returns:
            (B, O) float64 outputs on the backend, and the tape or None.
        """
        batch = params.shape[0]
        slots = self.differentiated_slots(columns)
        if (
            batch == 0
            or not slots
            or self.runner.name != "engine"
            or self.method(columns, vjp=True) != "adjoint"
        ):
            return self.forward(params), None
        per_sample = self.adjoint.sample_bytes(slots, columns, checkpoints=True, vjp=True)
        budget = self.executor.budget(self.max_memory)
        ticket = self._tapes_held.reserve(batch * per_sample, budget)
        if ticket is None:
            logger.info(
                "not keeping the forward pass of %d samples (%d bytes each) within the memory "
                "budget (with the tapes already kept): the vector-Jacobian product will sweep "
                "forward again",
                batch,
                per_sample,
            )
            return self.forward(params), None
        sizing = self.executor.sizing(
            per_sample, self.max_memory, "an adjoint pass over one sample", batch, states=2
        )
        tape = Tape(columns, slots, batch, sizing)
        tape.ticket = ticket
        weakref.finalize(tape, ticket.release)
        first = int(self.circuit.slot_block[slots].min())
        out = self.backend.xp.empty((batch, self.num_outputs), dtype="float64")

        def task(start: int, stop: int) -> None:
            angles = self.angle_map.angles(params[start:stop])
            sweep = forward_sweep(self.circuit, angles, first, True, self._tape_buffers.take())
            out[start:stop] = self.readout(sweep.phi[0])
            tape.add(start, sweep)

        self.executor.run(task, batch, sizing, self.max_memory)
        return out, tape

    @on_device("backend")
    def vjp(
        self,
        params: Any,
        columns: Sequence[int],
        cotangent: Any,
        tape: Tape | None = None,
        sample: Callable[[Any], Any] | None = None,
    ) -> Any:
        """The vector-Jacobian product ``sum_o g[b, o] d out[b, o] / d params[b, j]``: what
        training needs, at the cost of about one forward and one reverse sweep per sample on
        the adjoint method, whatever the number of outputs.

        Args:
            params: (B, P) float64 parameter values: a host or backend array, or
                :class:`~.parameters.SampleRows`.
            columns: the J parameter columns to differentiate by.
            cotangent: (B, O) float64 ``g``, a host or backend array.
            tape: the forward pass of these ``params`` from :meth:`forward_taped`, if kept:
                then the product is one reverse sweep (a tape serves once).
            sample: optional map of (R, O) exact outputs to sampled ones (shots): parameter
                shift on sampled rows, contracted chunk by chunk.

        Returns:
            (B, J) float64 per-sample products on the backend.
        """
        batch = params.shape[0]
        xp = self.backend.xp
        grad = xp.zeros((batch, 1, len(columns)), dtype="float64")
        slots = self.differentiated_slots(columns)
        if not slots or batch == 0:
            return grad[:, 0]
        g = self.backend.asarray(cotangent, dtype="float64")
        if tape is not None and tape.serves(columns, batch):
            self._reverse(params, columns, g, tape, grad)
            return grad[:, 0]
        if self.method(columns, sample is not None, vjp=True) == "adjoint":
            self.adjoint.run(params, slots, columns, self.max_memory, grad, cotangent=g)
        else:
            self.parameter_shift.run(
                params, slots, columns, self.max_memory, grad, sample, cotangent=g
            )
        return grad[:, 0]

    def _reverse(self, params: Any, columns: Sequence[int], g: Any, tape: Tape, grad: Any) -> None:
        """The (B, 1, J) product from a tape: one reverse sweep per chunk."""
        slots = tape.slots

        def task(start: int, stop: int) -> None:
            sweep = tape.sweeps[start]
            lam = adjoint_states(self.readout, sweep.phi, g[start:stop])
            dslot = reverse_sweep(self.circuit, sweep, slots, lam)
            grad[start:stop] += dslot @ self.angle_map.jacobian(params[start:stop], slots, columns)

        try:
            self.executor.run(task, tape.batch, tape.sizing, self.max_memory)
        finally:
            self._tape_buffers.give(tape.take(), keep=self.max_memory is None)

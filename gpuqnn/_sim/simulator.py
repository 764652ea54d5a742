"""The simulator: forward and backward passes of a compiled program over a batch.

A thin coordinator over its parts:

- a :class:`~.block_circuit.BlockCircuit` (the program fused into blocks for the backend);
- a :class:`~.protocols.Runner` for its passes: the block engine's
  (:class:`~.runners.BlockRunner`), or the one a :data:`~.runners.RunnerFactory` builds for
  another engine (the CUDA kernels on a GPU); the block engine's runner stays as the fallback
  for what that runner cannot do (its :attr:`~.protocols.Runner.capabilities`);
- two gradient strategies (:class:`~.protocols.GradientStrategy`):
  :class:`~.adjoint_strategy.AdjointStrategy` (on the first runner whose adjoint serves the pass)
  and :class:`~.shift.ParameterShiftStrategy` (on the runner, if it shifts rows);
- a :class:`~.executor.ChunkExecutor` that owns the memory budget, sizes chunks to it and runs
  them on the shared worker pool.

``gradient_method="auto"`` asks each strategy whether it applies and what it costs per sample
on the runner that will execute it, and takes the cheaper; parameter shift when shots are
sampled or when not one sample's adjoint pass fits the memory budget. Slot derivatives are
chained to parameters through the angle table's Jacobian. Every result is an array of the
backend (NumPy, or CuPy on a GPU); callers convert.

Shapes: B samples, P parameters, K angle slots, O outputs, J differentiated columns.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _profile
from .._compile import Program
from .._options import SimulatorOptions
from .adjoint_strategy import AdjointStrategy
from .backend import Backend, on_device
from .block_circuit import BlockCircuit
from .executor import ChunkExecutor
from .parameters import AngleMap, ParameterRows
from .protocols import (
    AdjointRunner,
    Capability,
    GradientStrategy,
    ParameterRunner,
    PrecompilingRunner,
    Readout,
    Runner,
    TapeRunner,
    check_capabilities,
)
from .runners import BlockRunner, RunnerFactory
from .shift import ParameterShiftStrategy
from .sinks import DenseSink, ProductSink
from .tape import BufferPool, Tape, TapeLedger

logger = logging.getLogger(__name__)


class Simulator:
    """Forward and backward passes of a program with a readout.

    Args:
        program: the compiled circuit.
        readout: maps (R, D) states to (R, O) real outputs, and gives the adjoint states.
        backend: array module, device and dtype.
        options: the checked options (gradient method, memory bound, kernel mode).
        runner_factory: builds another engine's runner (the networks pass
            :func:`gpuqnn._engines.runner_factory`; tests pass the kernels' host build); None or
            a None result: the block engine runs everything.

    Attributes:
        circuit: the program fused into blocks.
        runner: what runs forward passes (and the rest, as its capabilities allow).
        executor: owns the memory budget, sizes and runs chunks.
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
            self.circuit = BlockCircuit(program, backend)
            self.executor = ChunkExecutor(
                backend, program.num_qubits, self.options.threads, self.options.max_memory
            )
            self.angle_map = AngleMap(program.angles, backend, self.num_outputs)
            self.engine = BlockRunner(self.circuit, readout)
            other = (
                None
                if runner_factory is None
                else runner_factory(self.circuit, readout, backend, self.options)
            )
            self.runner: Runner = self.engine if other is None else check_capabilities(other)
            self.adjoint = AdjointStrategy(
                self._adjoint_runners(), self.num_outputs, self.executor, self.angle_map
            )
            shifter = self.runner if Capability.SHIFTED in self.runner.capabilities else self.engine
            rules = [program.ops[i].shift_rule for i in program.slot_ops]
            self.parameter_shift = ParameterShiftStrategy(
                self.circuit, shifter, self.executor, self.angle_map, rules
            )
            self._tape_buffers = BufferPool(backend.xp)
            self._tapes_held = TapeLedger()
            # bytes of one forward row on the block engine: what must fit for the network at all
            self.row_bytes = self.engine.row_bytes() + self.engine.sample_bytes()

    def _adjoint_runners(self) -> list[AdjointRunner]:
        """The runners whose adjoint may serve a pass: the simulator's runner where it has
        one, then the block engine's."""
        runner = self.runner
        if runner is not self.engine and isinstance(runner, AdjointRunner):
            if Capability.ADJOINT in runner.capabilities:
                return [runner, self.engine]
        return [self.engine]

    @property
    def max_memory(self) -> int | None:
        """The memory bound of every pass (None: half of the free memory at call time)."""
        return self.executor.max_memory

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
        with self._recording("forward", params.shape[0], None):
            return self._forward(params)

    def _recording(self, call: str, batch: int, method: str | None) -> Any:
        """The profile record of one call (:func:`gpuqnn.profile`; nothing outside one)."""
        return _profile.recording(
            call, self.backend.name, self.runner.description, method, int(batch)
        )

    def _forward(self, params: Any) -> Any:
        xp = self.backend.xp
        batch = params.shape[0]
        runner = self.runner
        direct = Capability.PARAMETERS in runner.capabilities
        per_row = runner.row_bytes() + runner.sample_bytes()
        per_row += self.angle_map.host_bytes([], []) if not direct else 0
        what = f"one row of a forward pass ({runner.description})"
        sizing = self.executor.sizing(per_row, what, batch)
        if direct and isinstance(runner, ParameterRunner):
            rows = ParameterRows.on_backend(params, self.backend)
            if sizing.chunk >= batch:  # one chunk: the kernel's output is the result
                return runner.forward_parameters(rows, self.executor.buffers())
        _profile.count("host_ops")
        out = xp.empty((batch, self.num_outputs), dtype="float64")

        def task(start: int, stop: int) -> None:
            if direct and isinstance(runner, ParameterRunner):
                result = runner.forward_parameters(rows.rows(start, stop), self.executor.buffers())
            else:
                angles = self.angle_map.angles(params[start:stop])
                result = runner.forward(angles, self.executor.buffers())
            _profile.count("host_ops")
            out[start:stop] = result

        self.executor.run(task, batch, sizing)
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
        return self._strategy(columns, shots, vjp).name

    @on_device("backend")
    def precompile(self, columns: Sequence[int] | None, vjps: bool, shots: bool = False) -> int:
        """Compile ahead what the next passes will launch: the forward (and parameter-shift)
        kernels, and with ``columns`` the adjoint kernels of a backward pass by them (with
        ``vjps`` also of a vector-Jacobian product, what training's backward runs) where the
        method chosen for it (``shots``: sampled outputs) runs on this runner. Nothing where
        the runner compiles nothing (the block engine).

        Returns:
            The number of kernels built by this call.
        """
        runner = self.runner
        if Capability.PRECOMPILE not in runner.capabilities:
            return 0
        assert isinstance(runner, PrecompilingRunner)
        slots = self.differentiated_slots(columns) if columns else []
        products = (False, True) if vjps else (False,)
        shifted = bool(slots) and any(
            self._strategy(columns or (), shots, vjp) is not self.adjoint for vjp in products
        )
        built = runner.precompile(None, False, shifted=shifted)
        for vjp in products:
            if not slots or self._strategy(columns or (), shots, vjp) is not self.adjoint:
                continue
            serving: object = self.adjoint.runner(slots, vjp)
            if serving is runner:
                built += runner.precompile(slots, vjp, list(columns or ()))
        return built

    def _strategy(self, columns: Sequence[int], shots: bool, vjp: bool) -> GradientStrategy:
        """The strategy of :meth:`method`: the one asked for, else the cheaper of those that
        fit (the adjoint method on a tie)."""
        asked = self.options.gradient_method
        if shots or asked == "parameter_shift":
            return self.parameter_shift
        if asked == "adjoint":
            return self.adjoint
        slots = self.differentiated_slots(columns)
        if not slots:
            return self.adjoint
        strategies: list[GradientStrategy] = [self.adjoint, self.parameter_shift]
        fitting = [s for s in strategies if s.fits(slots, columns, vjp)]
        return min(fitting, key=lambda strategy: strategy.cost(slots, vjp))

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
        strategy = self._strategy(columns, sample is not None, False)
        with self._recording("backward", batch, strategy.name):
            _profile.count("host_ops")
            grad = self.backend.xp.zeros((batch, self.num_outputs, len(columns)), dtype="float64")
            slots = self.differentiated_slots(columns)
            if not slots or batch == 0:
                return grad
            strategy.run(params, slots, columns, DenseSink(grad), sample)
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
        runner = self._tape_runner(columns, slots)
        if batch == 0 or not slots or runner is None:
            return self.forward(params), None
        per_sample = self.adjoint.sample_bytes(slots, columns, checkpoints=True, vjp=True)
        budget = self.executor.budget()
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
            per_sample, f"an adjoint pass over one sample ({runner.description})", batch, states=2
        )
        tape = Tape(runner, columns, slots, batch, sizing)
        tape.ticket = ticket
        weakref.finalize(tape, ticket.release)
        out = self.backend.xp.empty((batch, self.num_outputs), dtype="float64")

        def task(start: int, stop: int) -> None:
            angles = self.angle_map.angles(params[start:stop])
            sweep = runner.sweep(angles, slots, self._tape_buffers.take())
            outputs = sweep.outputs
            out[start:stop] = self.readout(sweep.phi[0]) if outputs is None else outputs
            tape.add(start, sweep)

        self.executor.run(task, batch, sizing)
        return out, tape

    def _tape_runner(self, columns: Sequence[int], slots: Sequence[int]) -> TapeRunner | None:
        """The runner that keeps a training step's forward sweep: the one the adjoint method
        of a product by ``slots`` runs on, where it has :attr:`~.protocols.Capability.TAPE`
        and ``auto`` (or the user) chose the adjoint method."""
        if not slots or self._strategy(columns, False, True) is not self.adjoint:
            return None
        runner = self.adjoint.runner(slots, vjp=True)
        if Capability.TAPE in runner.capabilities and isinstance(runner, TapeRunner):
            return runner
        return None

    @on_device("backend")
    def vjp(
        self,
        params: Any,
        columns: Sequence[int],
        cotangent: Any,
        tape: Tape | None = None,
        sample: Callable[[Any], Any] | None = None,
        summed: int = 0,
    ) -> tuple[Any, Any]:
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
            summed: how many of the last ``columns`` (the weights, which every sample
                shares) to sum over the samples, chunk by chunk, instead of keeping per sample.

        Returns:
            The (B, J - summed) float64 per-sample products of the first columns and the
            (summed,) sums over the samples of the others, on the backend.
        """
        batch = params.shape[0]
        taped = tape is not None and tape.serves(columns, batch)
        strategy = self._strategy(columns, sample is not None, True)
        with self._recording("vjp", batch, "adjoint (tape)" if taped else strategy.name):
            grad = ProductSink(self.backend.xp, batch, len(columns), len(columns) - summed)
            slots = self.differentiated_slots(columns)
            if slots and batch > 0:
                if not self.backend.is_array(cotangent):
                    _profile.count("host_to_device_bytes", 8 * int(np.size(cotangent)))
                    _profile.count("host_ops")
                g = self.backend.asarray(cotangent, dtype="float64")
                if taped:
                    assert tape is not None
                    self._reverse(params, columns, g, tape, grad)
                else:
                    strategy.run(params, slots, columns, grad, sample, cotangent=g)
            return grad.per_sample, grad.total

    def _reverse(
        self, params: Any, columns: Sequence[int], g: Any, tape: Tape, grad: ProductSink
    ) -> None:
        """The (B, 1, J) product from a tape: one reverse sweep per chunk."""
        slots = tape.slots

        def task(start: int, stop: int) -> None:
            dslot = tape.runner.reverse(tape.sweeps[start], slots, g[start:stop])
            jacobian = self.angle_map.jacobian(params[start:stop], slots, columns)
            grad.add(start, stop, dslot @ jacobian)

        try:
            self.executor.run(task, tape.batch, tape.sizing)
        finally:
            self._tape_buffers.give(tape.take(), keep=self.max_memory is None)

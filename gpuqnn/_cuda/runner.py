"""The CUDA kernels as an engine: which kernels serve a program on a GPU backend, behind the
simulator's :class:`~gpuqnn._sim.protocols.Runner` protocol.

On a CUDA device, forward passes and parameter-shift passes of a program the kernels support
(:func:`gpuqnn._cuda.unsupported_reason`) run through them: the fused kernels (the whole program
and readout of every row in ONE launch, the state in shared memory) when a row fits the
device's shared memory, else the per-op kernels replayed as a CUDA graph. The fused kernels also
run the adjoint method (one launch per backward pass or vector-Jacobian product) where a row's
two states fit. What a runner cannot do (its ``capabilities``), the simulator runs on the block
engine on CuPy.

``kernels`` chooses: ``"auto"`` (fused where it fits, else per-op), ``"fused"``, ``"per_op"``
(errors when they cannot serve the program), or ``"none"`` (the block engine only).

:func:`cuda_runner` is this engine's :data:`~gpuqnn._sim.runners.RunnerFactory` (registered in
:mod:`gpuqnn._engines`); tests build one over the kernels' host build with
:func:`select_runner` (:mod:`gpuqnn._cuda.host`) to run the whole GPU path on the CPU.

Shapes: B samples, K angle slots, O outputs, S differentiated slots, T shifted row blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._options import SimulatorOptions
from .._sim.backend import Backend
from .._sim.block_circuit import BlockCircuit
from .._sim.buffers import Buffers
from .._sim.parameters import ParameterRows
from .._sim.protocols import Capability, Readout
from .._sim.readout import PauliReadout, ProbabilityReadout
from .._sim.runners import engine_cost
from .._sim.shift_plan import ShiftPlan
from .launchers import FusedLauncherBase, PerOpLauncherBase
from .tables import KernelTables, encode_tables, unsupported_reason

logger = logging.getLogger(__name__)

_UNSHIFTED = (np.full(1, -1, dtype=np.int32), np.zeros(1))


class KernelRunner:
    """The per-op CUDA kernels (CuPy or the host build): forward and shifted passes.

    Args:
        launcher: issues the launches: ``run(base_angles (B, K) float64, shift_slot (S,)
            int32, shift_value (S,) float64) -> (S * B, O) float64``.
        circuit: the program fused into blocks (its block costs stand in for the kernels'
            until the cost model is calibrated on a device).
        num_outputs: O.
    """

    description = "per-op CUDA kernels"
    capabilities = frozenset({Capability.SHIFTED, Capability.PRECOMPILE})

    def __init__(self, launcher: Any, circuit: BlockCircuit, num_outputs: int) -> None:
        self.launcher = launcher
        self.circuit = circuit
        self.num_outputs = num_outputs
        if launcher.angle_code is not None:  # angles by a generated kernel; else from the host
            self.capabilities = self.capabilities | {Capability.PARAMETERS}
        itemsize = circuit.backend.dtype.itemsize
        state = 2 * circuit.dim * itemsize
        factors = 2 * circuit.program.angles.num_slots * itemsize
        self._row_bytes = state + factors + self._output_bytes()

    def _output_bytes(self) -> int:
        return 8 * self.num_outputs + 16

    def row_bytes(self) -> int:
        """Device bytes per row: the state, its readout partials, its angle factors and the
        outputs."""
        return self._row_bytes

    def sample_bytes(self) -> int:
        """Nothing per sample beyond the rows (the tables are shared)."""
        return 0

    def cost(self, rows_per_block: np.ndarray, rows: int = 1) -> float:
        """The block engine's model (:func:`gpuqnn._sim.runners.engine_cost`), not calibrated
        for the kernels."""
        return engine_cost(self.circuit, rows_per_block)

    def precompile(
        self,
        slots: Sequence[int] | None,
        vjp: bool,
        columns: Sequence[int] = (),
        shifted: bool = False,
    ) -> int:
        """Build the launcher's kernels and, where angles come from parameter rows, the angle
        kernel (the per-op module has no adjoint and shifts in the same kernels: ``slots``,
        ``vjp``, ``columns`` and ``shifted`` change nothing); the number built by this call."""
        built = int(self.launcher.precompile())
        if Capability.PARAMETERS in self.capabilities:
            built += self.launcher.precompile_angles()
        return built

    def forward(self, angles: Any, buffers: Buffers) -> Any:
        """(B, O) float64 outputs of (B, K) float64 ``angles``: one unshifted pass."""
        return self.launcher.run(angles, *_UNSHIFTED)

    def shifted(self, angles: Any, plan: ShiftPlan, buffers: Buffers) -> Any:
        """((1 + T) B, O) float64 outputs: the plan's shift tables in one pass."""
        return self.launcher.run(angles, plan.shift_slot, plan.shift_value)

    def forward_parameters(self, rows: ParameterRows, buffers: Buffers) -> Any:
        """(B, O) float64 outputs of the parameter ``rows``: every angle from one launch of
        the generated angle kernel, then the per-op launches."""
        angles = self.launcher.parameter_angles(rows.inputs, rows.weights)
        return self.launcher.run(angles, *_UNSHIFTED)


class FusedKernelRunner(KernelRunner):
    """The fused CUDA kernels: forward, shifted and adjoint passes, each one launch.

    Args:
        launcher: a fused launcher (:class:`~.launchers.FusedLauncherBase`).
        circuit: the program fused into blocks.
        num_outputs: O.
    """

    description = "fused CUDA kernels"
    capabilities = frozenset(
        {Capability.SHIFTED, Capability.ADJOINT, Capability.VJP, Capability.PRECOMPILE}
    )

    def __init__(self, launcher: FusedLauncherBase, circuit: BlockCircuit, num_outputs: int):
        super().__init__(launcher, circuit, num_outputs)
        self._row_bytes = self._output_bytes() + launcher.state_bytes()

    def row_bytes(self) -> int:
        """Device bytes per row: its outputs (the state lives in shared memory), and its state
        between the kernels of a chain (a program deeper than the cap on passes)."""
        return self._row_bytes

    def cost(self, rows_per_block: np.ndarray, rows: int = 1) -> float:
        """Every one of the pass's ``rows`` rows per sample (base and shifted) makes every pass
        of the generated kernel over its state from the start, then the readout (the units of
        :meth:`adjoint_cost`)."""
        return float(rows) * (self.launcher.forward_kernel.passes + 1)

    def precompile(
        self,
        slots: Sequence[int] | None,
        vjp: bool,
        columns: Sequence[int] = (),
        shifted: bool = False,
    ) -> int:
        """Build the forward kernel (or chain) and, with ``slots``, the adjoint kernel(s) by
        them (a product with ``vjp``). Where angles come from parameter rows, the kernels that
        read them (the adjoint by ``columns``), and with ``shifted`` the (B, K)-angle forward
        kernel that parameter-shift passes launch; the number built by this call."""
        launcher = self.launcher
        if Capability.PARAMETERS not in self.capabilities:
            return launcher.precompile(slots, vjp)
        if slots:
            return launcher.precompile_parameters(slots, columns, vjp)
        built = launcher.precompile_parameters(None, (), False)
        return built + (launcher.precompile(None) if shifted else 0)

    def adjoint_fits(self, slots: Sequence[int], vjp: bool) -> bool:
        """Whether a row's state and adjoint state(s) fit the device's shared memory."""
        return self.launcher.adjoint_kernel(slots, vjp) is not None

    def adjoint_cost(self, slots: Sequence[int], vjp: bool) -> float:
        """Passes over one state per sample of the fused adjoint kernel: the forward sweep, then
        per output (one with ``vjp``) the adjoint state and a backward sweep over two states,
        and without room to keep the final state, a forward sweep again per further output."""
        kernel = self.launcher.adjoint_kernel(slots, vjp)
        outputs = 1 if vjp else self.num_outputs
        passes = kernel.passes
        again = 1 if kernel.keeps_final else passes
        return float(passes + outputs * (1 + 2 * passes) + (outputs - 1) * again)

    def adjoint_sample_bytes(self, slots: Sequence[int], vjp: bool, checkpoints: bool) -> int:
        """Device bytes per sample of a launch: its derivatives, angles and cotangent (the
        states live in shared memory, but between the kernels of a chain in device memory;
        ``checkpoints`` changes nothing)."""
        outputs = 1 if vjp else self.num_outputs
        num_slots = self.circuit.program.angles.num_slots
        chained = self.launcher.adjoint_state_bytes(slots, vjp)
        return 8 * (outputs * len(slots) + num_slots + self.num_outputs) + chained

    def adjoint(
        self,
        angles: Any,
        slots: Sequence[int],
        buffers: Buffers,
        checkpoints: bool,
        cotangent: Any = None,
    ) -> Any:
        """(B, O, S) float64 slot derivatives of (B, K) float64 ``angles``, or (B, 1, S) for a
        (B, O) float64 ``cotangent``: one launch of the fused adjoint kernel."""
        return self.launcher.adjoint(angles, slots, cotangent)

    def forward_parameters(self, rows: ParameterRows, buffers: Buffers) -> Any:
        """(B, O) float64 outputs of the parameter ``rows``: one launch, the angles computed
        in the kernel."""
        return self.launcher.forward_parameters(rows.inputs, rows.weights)

    def adjoint_parameters(
        self,
        rows: ParameterRows,
        slots: Sequence[int],
        columns: Sequence[int],
        buffers: Buffers,
        cotangent: Any = None,
    ) -> Any:
        """(B, O, J) float64 derivatives by the parameter ``columns``, or (B, 1, J) for a
        (B, O) float64 ``cotangent``: one launch, the chain rule in the kernel."""
        launcher = self.launcher
        return launcher.adjoint_parameters(rows.inputs, rows.weights, slots, columns, cotangent)


def cuda_runner(
    circuit: BlockCircuit, readout: Readout, backend: Backend, options: SimulatorOptions
) -> KernelRunner | None:
    """The CuPy runner that serves ``circuit`` with ``readout`` on ``backend`` (the kernels
    ``options.kernels`` asks for), or None (the block engine serves it). See
    :func:`select_runner`."""
    if options.kernels == "none" or not backend.is_gpu:
        return None
    from .cupy_launchers import (  # noqa: PLC0415 - CuPy's launchers only on a GPU
        FusedLauncher,
        PerOpLauncher,
        shared_memory_limit,
    )

    device = int(backend.name.split(":")[1])
    return select_runner(
        circuit,
        readout,
        backend,
        options.kernels,
        make_fused=FusedLauncher,
        make_per_op=PerOpLauncher,
        shared_limit=lambda: shared_memory_limit(device),
    )


def select_runner(
    circuit: BlockCircuit,
    readout: Readout,
    backend: Backend,
    mode: str,
    *,
    make_fused: Callable[[KernelTables, str], FusedLauncherBase],
    make_per_op: Callable[[KernelTables, str], PerOpLauncherBase],
    shared_limit: Callable[[], int],
) -> KernelRunner | None:
    """The kernel runner for ``circuit`` and ``readout``, or None.

    Args:
        circuit: the program fused into blocks.
        readout: the network's readout.
        backend: the (GPU) backend; its dtype is the kernels' dtype.
        mode: one of :data:`gpuqnn._options.KERNEL_MODES`.
        make_fused: builds a fused launcher from (kernel tables, dtype name).
        make_per_op: builds a per-op launcher from (kernel tables, dtype name).
        shared_limit: the device's shared memory per block, in bytes.

    Raises:
        ValueError: ``mode`` asks for kernels that cannot serve this program.
    """
    if mode == "none":
        return None
    program = circuit.program
    reason = unsupported_reason(program)
    if reason is None and not isinstance(readout, (PauliReadout, ProbabilityReadout)):
        reason = f"the readout {type(readout).__name__} has no kernel"
    if reason is not None:
        if mode != "auto":
            raise ValueError(f"kernels={mode!r} cannot run this circuit: {reason}")
        logger.info("CUDA kernels not used (%s); the block engine runs on CuPy", reason)
        return None
    assert isinstance(readout, (PauliReadout, ProbabilityReadout))
    tables = encode_tables(program, readout)
    dtype = backend.dtype.name
    if mode in ("auto", "fused"):
        if tables.fits_fused(dtype, shared_limit()):
            return FusedKernelRunner(make_fused(tables, dtype), circuit, readout.num_outputs)
        if mode == "fused":
            raise ValueError(
                f"kernels='fused': a row of {program.num_qubits} qubits in {dtype} does not fit "
                "the device's shared memory; use kernels='per_op' or 'auto'"
            )
    return KernelRunner(make_per_op(tables, dtype), circuit, readout.num_outputs)

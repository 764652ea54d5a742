"""The simulator handle of a gpuqnn network: its options, backends and simulator's life cycle.

:class:`SimulatorHandle` builds the simulator for the network's checked options (compiling the
circuit once), rebuilds it on another backend, kernel mode or readout, drops it on pickling and
rebuilds it on unpickling. It declares the hooks each network provides (which passes the
simulator serves, its readout, its output format).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from qiskit.circuit import QuantumCircuit

from .._aer_noise import noise_table
from .._compile import Program, compile_circuit
from .._compile.density import density_program
from .._compile.noise import NoiseTable
from .._compile.trajectory import trajectory_program
from .._engines import runner_factory as default_runner_factory
from .._exact import Noise, Route
from .._options import SimulatorOptions
from .._sim.backend import Backend, select_backends
from .._sim.density_readout import density_readout
from .._sim.protocols import Readout
from .._sim.readout import InterpretError
from .._sim.runners import RunnerFactory, state_row_bytes
from .._sim.sharded import ShardedSimulator
from .._sim.shots import GaussianNoise, OutputSampler, ReferenceShots, ShotSampler
from .._sim.simulator import Simulator
from .._sim.threads import default_threads
from .._sim.trajectories import TrajectorySimulator

if TYPE_CHECKING:
    # the mixins sit before qiskit-machine-learning's network class in the MRO
    from qiskit_machine_learning.neural_networks import NeuralNetwork as _ParentNetwork
else:
    _ParentNetwork = object

AnySimulator = Simulator | ShardedSimulator | TrajectorySimulator
"""One device's simulator, one sharded over several devices, or averages over noise
trajectories (same interface)."""


class SimulatorHandle(_ParentNetwork):
    """The network's simulator: options, backends, life cycle, pickling and ``repr``."""

    _circuit: QuantumCircuit  # set by qiskit-machine-learning's EstimatorQNN / SamplerQNN

    _unpicklable = (
        "_backend",
        "_backends",
        "_sim",
        "_program",
        "_shot_sampler",
        "_runner_factory",
    )

    def _init_simulator(
        self,
        options: SimulatorOptions,
        shots: int | None = None,
        seed: Any = None,
        noise: NoiseTable | None = None,
        trajectories: tuple[int, Any] | None = None,
    ) -> None:
        """Set up the simulator for checked ``options`` (and, for a sampler, checked ``shots``
        and ``seed``; a checked noise model's channels, and with ``trajectories`` the number
        per sample and their seed); build it now when the simulator serves forward passes.

        Raises:
            ValueError: a noise model with a primitive or gradient the simulator does not
                stand in for (that code path would run without the noise).
        """
        self._options = options
        self._shots = shots
        self._seed = seed
        route = self._route()
        if route.noise_model is not None:  # an exact qiskit-aer estimator's: simulate it
            if noise is not None:
                raise ValueError(
                    "noise_model was given, and the qiskit-aer estimator has its own; pass one"
                )
            noise = noise_table(route.noise_model)
        self._noise = noise
        self._trajectories = trajectories
        if trajectories is not None and noise is None:
            raise ValueError(
                "noise_method='trajectories' samples a noise model's errors, but no noise_model "
                "was given"
            )
        if noise is not None:
            if not (route.forward and route.backward):
                raise ValueError(
                    "noise_model is simulated by gpuqnn's engine, but this network's "
                    f"primitive or gradient is not one it stands in for ({route.reason}); pass "
                    "noise_model with the default (exact) primitive and gradient"
                )
        self._runner_factory: RunnerFactory = default_runner_factory
        self._set_backends(select_backends(options.device, options.dtype))

    def _set_backends(self, backends: Sequence[Backend]) -> None:
        """Run on ``backends``: one, or several that each pass's samples are sharded over
        (the first is home: arrays come back there)."""
        if len(backends) > 1 and self._shots is not None:
            raise ValueError(
                f"shots are sampled on one device, but device={self._options.device!r} names "
                f"{len(backends)}; use one device with shots"
            )
        self._backends = tuple(backends)
        backend = self._backend = self._backends[0]
        self._shot_sampler = (
            None if self._shots is None else ShotSampler(self._shots, self._seed, backend)
        )
        self._sim: AnySimulator | None = None
        self._program: Program | None = None
        if self._simulator_serves_forward():
            self._build_or_defer(self._build_simulator)

    # ---- what subclasses provide ------------------------------------------------------------
    def _route(self) -> Route:
        """Which passes the simulator serves for the network's primitives, and their noise."""
        raise NotImplementedError

    def _simulator_serves_forward(self) -> bool:
        return self._route().forward

    def _simulator_serves_backward(self) -> bool:
        route = self._route()
        if route.backward and route.backward_noise is not None and len(self._backends) > 1:
            return False  # noisy rows are drawn on one device (the sharded passes refuse them)
        return route.backward

    def _output_sampler(self, backward: bool) -> OutputSampler | None:
        """What maps the simulator's exact outputs (or each shifted row of a backward pass) to
        sampled or noisy ones: the ``shots`` option, else the noise of the primitive the
        simulator stands in for; None for exact outputs."""
        if self._shot_sampler is not None:
            return self._shot_sampler
        route = self._route()
        noise = route.backward_noise if backward else route.forward_noise
        return None if noise is None else _sampler_of(noise, self._backend, backward)

    def _make_readout(self, program: Program, backend: Backend) -> Readout:
        raise NotImplementedError

    def _format(self, values: Any, gradient: bool) -> Any:
        """Turn (B, O[, J]) values into the network's output format."""
        return values

    # ---- options ----------------------------------------------------------------------------
    @property
    def device(self) -> str:
        """Where the simulator runs: ``"cpu"`` or ``"cuda:N"``."""
        return self._backend.name

    @property
    def devices(self) -> tuple[str, ...]:
        """Every device the passes run on: ``(device,)``, or the shards' devices."""
        return tuple(backend.name for backend in self._backends)

    @property
    def dtype(self) -> str:
        """The statevectors' complex dtype."""
        return str(self._backend.dtype.name)

    @property
    def gradient_method(self) -> str:
        """The gradient method asked for: ``"auto"``, ``"adjoint"`` or ``"parameter_shift"``
        (see :meth:`resolved_gradient_method` for what ``"auto"`` picks)."""
        return self._options.gradient_method

    @property
    def threads(self) -> int:
        """Worker threads of the passes: the ``threads`` option or its default on the CPU
        (``OMP_NUM_THREADS`` if set, else the cores this process may use); one on a GPU."""
        if self._backend.is_gpu:
            return 1
        return self._options.threads or default_threads()

    @property
    def max_memory(self) -> int | None:
        """Bound on the bytes of statevectors held at once; None: half of free memory."""
        return self._options.max_memory

    @property
    def engine(self) -> str:
        """What runs the forward passes: ``"native CPU engine (avx2)"``, ``"block engine"``,
        ``"fused CUDA kernels"``, ... (the simulator's runner; built on first use)."""
        return str(self._simulator().runner.description)

    def resolved_gradient_method(self) -> str | None:
        """The method the next ``backward`` uses with the current ``input_gradients``:
        ``"adjoint"`` or ``"parameter_shift"``; None when the parent's code path runs."""
        if not self._simulator_serves_backward():
            return None
        first = 0 if self._input_gradients else self.num_inputs
        columns = range(first, self.num_inputs + self.num_weights)
        return self._simulator().method(columns, self._output_sampler(True) is not None)

    def precompile(self, *, input_gradients: bool | None = None, training: bool = True) -> int:
        """Compile now the CUDA kernels the next ``forward`` and ``backward`` calls launch, so
        that a training loop's first timed step does not include them: NVRTC takes seconds per
        generated kernel on one core (CuPy's disk cache serves later processes). A no-op on
        NumPy, and where the network runs qiskit-machine-learning's own code path.

        Args:
            input_gradients: whether backward passes differentiate by the inputs too (default:
                the network's :attr:`input_gradients`).
            training: also the kernels of the vector-Jacobian product that
                :class:`~gpuqnn.TorchConnector`'s backward runs.

        Returns:
            The number of kernels compiled (or loaded from CuPy's cache) by this call; 0 when
            there is nothing to compile or it was done before.

        Raises:
            TypeError: ``input_gradients`` is not a bool or None, or ``training`` not a bool.
        """
        if input_gradients is not None and not isinstance(input_gradients, bool):
            raise TypeError(
                f"input_gradients must be a bool or None, got {type(input_gradients).__name__}"
            )
        if not isinstance(training, bool):
            raise TypeError(f"training must be a bool, got {type(training).__name__}")
        if not self._simulator_serves_forward():
            return 0
        gradients = self._input_gradients if input_gradients is None else input_gradients
        first = 0 if gradients else self.num_inputs
        columns = range(first, self.num_inputs + self.num_weights)
        backward = self._simulator_serves_backward() and len(columns) > 0
        shots = self._output_sampler(True) is not None
        return self._simulator().precompile(columns if backward else None, training, shots)

    # ---- the simulator's life cycle ---------------------------------------------------------
    def _build_simulator(self) -> AnySimulator:
        """Compile the circuit and build the simulator on the network's backends (checked
        against the memory budget); returns it."""
        parameters = list(self._circuit.parameters)
        noise = getattr(self, "_noise", None)
        program = compile_circuit(self._circuit, parameters, noise)
        max_memory = self._options.max_memory
        limit = max_memory or self._backend.free_memory()
        bound = f"max_memory={limit}" if max_memory else f"the {limit} bytes free"
        density = noise is not None and getattr(self, "_trajectories", None) is None
        width = program.num_qubits * (2 if density else 1)  # a density matrix: 4**n
        row_bytes = state_row_bytes(width, self._backend.dtype)
        if row_bytes > limit:
            row = "density-matrix row (4**n amplitudes)" if density else "statevector row"
            raise ValueError(
                f"the circuit simulates {program.num_qubits} qubits: one {row} and "
                f"its temporaries need about {row_bytes} bytes, more than {bound}"
            )
        simulator = self._new_simulator(program)
        if simulator.row_bytes > limit:
            raise ValueError(
                f"the circuit simulates {program.num_qubits} qubits: one sample's statevector "
                f"and the data of its fused blocks need about {simulator.row_bytes} bytes, more "
                f"than {bound}"
            )
        self._program = program
        self._sim = simulator
        return simulator

    def _new_simulator(self, program: Program) -> AnySimulator:
        """Simulators of ``program`` on the backends; with a noise model, of its density
        matrix (:func:`~gpuqnn._compile.density.density_program`) with the density readout."""
        trajectories = getattr(self, "_trajectories", None)
        if getattr(self, "_noise", None) is not None and trajectories is not None:
            return self._trajectory_simulator(program, *trajectories)
        if getattr(self, "_noise", None) is None:
            run, readout = program, self._make_readout
        else:
            run = density_program(program)

            def readout(program: Program, backend: Backend) -> Readout:
                pure = self._make_readout(program, backend)
                return density_readout(pure, program.num_qubits, backend)

        simulators = [
            Simulator(
                run,
                readout(program, backend),
                backend,
                self._options,
                self._runner_factory,
            )
            for backend in self._backends
        ]
        return simulators[0] if len(simulators) == 1 else ShardedSimulator(simulators)

    def _trajectory_simulator(self, program: Program, count: int, seed: Any) -> AnySimulator:
        """Averages over ``count`` trajectories per sample of noisy ``program``, on the block
        engine with parameter shift (a trajectory has no adjoint; the CUDA kernels take no
        channels)."""
        run, locations = trajectory_program(program)
        options = replace(self._options, gradient_method="parameter_shift")
        simulators = [
            Simulator(run, self._make_readout(run, backend), backend, options)
            for backend in self._backends
        ]
        inner = simulators[0] if len(simulators) == 1 else ShardedSimulator(simulators)
        return TrajectorySimulator(inner, count, locations, seed)

    def _simulator(self) -> AnySimulator:
        """The simulator, built on first use."""
        return self._build_simulator() if self._sim is None else self._sim

    def _rebuild_readout(self) -> None:
        program = self._program
        if program is not None:
            self._build_or_defer(lambda: setattr(self, "_sim", self._new_simulator(program)))

    def _build_or_defer(self, build: Callable[[], object]) -> None:
        """Run ``build``; an ``interpret`` that does not fit ``output_shape`` is left to the
        first pass (the simulator is built on first use and raises it there), as
        qiskit-machine-learning accepts such a network and fails only when it runs."""
        try:
            build()
        except InterpretError:
            self._sim = None
            self._program = None

    def _reconfigure(
        self,
        kernels: str | None = None,
        backends: Sequence[Backend] | None = None,
        runner_factory: RunnerFactory | None = None,
    ) -> None:
        """Rebuild the simulator with another CUDA kernel mode, backends or runner factory
        (see :mod:`gpuqnn._internals`)."""
        if kernels is not None:
            self._options = replace(self._options, kernels=kernels)
        if runner_factory is not None:
            self._runner_factory = runner_factory
        self._set_backends(self._backends if backends is None else backends)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in self._unpicklable:
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._runner_factory = default_runner_factory
        self._set_backends(select_backends(self._options.device, self._options.dtype))

    def __repr__(self) -> str:
        engine = "delegating to qiskit primitives"
        if self._simulator_serves_forward():
            try:
                engine = f"engine: {self.engine}"
            except InterpretError:  # reported by the first pass
                engine = "engine: not built (interpret does not fit output_shape)"
        noisy = ""
        if getattr(self, "_noise", None) is not None:
            sampled = getattr(self, "_trajectories", None)
            mode = "density matrix" if sampled is None else f"{sampled[0]} trajectories"
            noisy = f", noise_model ({mode})"
        method = f"'{self.gradient_method}'"
        try:
            resolved = self.resolved_gradient_method()
        except InterpretError:  # reported by the first pass
            resolved = None
        if self.gradient_method == "auto" and resolved is not None:
            method += f" ({resolved})"
        return (
            f"{type(self).__name__}(num_qubits={self._circuit.num_qubits}, "
            f"num_inputs={self.num_inputs}, num_weights={self.num_weights}, "
            f"output_shape={self.output_shape}, device='{self.device}', "
            f"dtype='{self.dtype}', gradient_method={method}, {engine}{noisy})"
        )


def _sampler_of(noise: Noise, backend: Backend, backward: bool) -> OutputSampler:
    """The sampler of a reference primitive's ``noise`` on ``backend``: a forward pass is one
    pub per output, a backward pass one pub per shifted evaluation."""
    if noise.kind == "shots":
        return ReferenceShots(int(noise.value), noise.seed, backend)
    return GaussianNoise(noise.value, noise.seed, backend, per_output_pubs=not backward)

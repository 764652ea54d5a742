"""gpuqnn's SamplerQNN: qiskit-machine-learning's SamplerQNN on the batched simulator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from qiskit.circuit import Parameter, QuantumCircuit
from qiskit.primitives import BaseSamplerV2
from qiskit.transpiler.passmanager import BasePassManager
from qiskit_machine_learning.gradients import BaseSamplerGradient
from qiskit_machine_learning.neural_networks import SamplerQNN as _QmlSamplerQNN

from ._aer_noise import noise_table
from ._compile import Program
from ._exact import Route, sampler_route
from ._network import SimulatorNetwork
from ._options import (
    SimulatorOptions,
    check_noise_method,
    check_parameters,
    check_seed,
    check_shots,
    document_options,
)
from ._sim.backend import Backend
from ._sim.readout import ProbabilityReadout


def _identity(key: int) -> int:
    """The default ``interpret``: the measured integer itself."""
    return key


@document_options
class SamplerQNN(SimulatorNetwork, _QmlSamplerQNN):
    """Drop-in replacement for qiskit-machine-learning's ``SamplerQNN``.

    Same arguments, properties, shapes and values as
    :class:`qiskit_machine_learning.neural_networks.SamplerQNN`; exact probabilities and
    parameter-shift gradients come from gpuqnn's batched statevector simulator whenever the sampler
    and gradient are exact (the defaults). A user-supplied sampler or gradient that the simulator
    cannot stand in for (shots, hardware, noise) is used as qiskit-machine-learning would use it.

    Unlike qiskit-machine-learning 0.9.1, a circuit that measures into its own classical
    register gets each sample's own probabilities (0.9.1 returns the batch mean in every row),
    and a transpiled circuit with its own measurements gets the distribution of its clbits as
    those measurements define them (0.9.1 remaps them through the layout a second time).

    Args:
        circuit: the parametrized circuit; without classical bits, every qubit is measured.
        sampler: optional sampler primitive (default: exact).
        input_params: parameters fed by the input data.
        weight_params: trainable parameters.
        sparse: return ``sparse.COO`` arrays (needs the ``sparse`` package).
        interpret: maps a measured integer (the clbits, clbit j as bit j) to an int or a
            tuple of ints (an output index).
        output_shape: shape of the interpreted output (required with ``interpret``); without
            ``interpret`` it is ``2**num_qubits``, or ``2**num_clbits`` when the circuit has more
            clbits than (logical) qubits.
        gradient: optional sampler gradient (default: parameter shift).
        input_gradients: whether ``backward`` also returns gradients by the inputs.
        pass_manager: optional pass manager the circuit is transpiled with once; outputs are
            over the logical qubits of the layout.
        {options: device, dtype, gradient_method, max_memory, threads, engine, shots, seed}
        {options: noise_model, noise_method, trajectories, noise_seed}

    Raises:
        QiskitMachineLearningError: the circuit cannot be simulated, or ``interpret`` without
            ``output_shape``.
        ValueError: inconsistent parameters, an ``interpret`` that returns an index outside
            ``output_shape`` or something else than an int or a tuple of ints, or invalid
            options.
        RuntimeError: ``device="gpu"``/``"cuda"``/``"cuda:N"`` without CuPy or a CUDA device,
            or under ``torchrun`` a ``LOCAL_RANK`` not below the number of visible devices.
    """

    def __init__(
        self,
        *,
        circuit: QuantumCircuit,
        sampler: BaseSamplerV2 | None = None,
        input_params: Sequence[Parameter] | None = None,
        weight_params: Sequence[Parameter] | None = None,
        sparse: bool = False,
        interpret: Callable[[int], int | tuple[int, ...]] | None = None,
        output_shape: int | tuple[int, ...] | None = None,
        gradient: BaseSamplerGradient | None = None,
        input_gradients: bool = False,
        pass_manager: BasePassManager | None = None,
        device: str = "auto",
        dtype: str = "complex128",
        gradient_method: str = "auto",
        max_memory: int | str | None = None,
        threads: int | None = None,
        engine: str = "auto",
        shots: int | None = None,
        seed: int | None = None,
        noise_model: Any = None,
        noise_method: str = "density_matrix",
        trajectories: int = 256,
        noise_seed: Any = None,
    ) -> None:
        options = SimulatorOptions.checked(
            device, dtype, gradient_method, max_memory, threads=threads, engine=engine
        )
        check_parameters(circuit, input_params, weight_params)
        shots = check_shots(shots)
        check_seed(seed)
        noise = noise_table(noise_model)
        sampled = check_noise_method(noise_method, trajectories, noise_seed, gradient_method)
        if sampled is not None and shots is not None:
            raise ValueError(
                "noise_method='trajectories' averages exact rows; shots are not drawn on "
                "them: leave shots=None"
            )
        if shots is not None and gradient_method == "adjoint":
            raise ValueError(
                "gradient_method='adjoint' needs exact probabilities, but shots="
                f"{shots!r} was given; use gradient_method='parameter_shift' or 'auto' with shots"
            )
        if interpret is not None and not callable(interpret):
            raise TypeError(f"interpret must be callable, got {type(interpret).__name__}")
        super().__init__(
            circuit=circuit,
            sampler=sampler,
            input_params=input_params,
            weight_params=weight_params,
            sparse=sparse,
            interpret=interpret,
            output_shape=output_shape,
            gradient=gradient,
            input_gradients=input_gradients,
            pass_manager=pass_manager,
        )
        self._init_simulator(options, shots, seed, noise, sampled)

    @property
    def shots(self) -> int | None:
        """Shots sampled per row by the simulator, or None for exact probabilities."""
        return self._shots

    def set_interpret(
        self,
        interpret: Callable[[int], int | tuple[int, ...]] | None = None,
        output_shape: int | tuple[int, ...] | None = None,
    ) -> None:
        """Change ``interpret`` and the corresponding ``output_shape``.

        Args:
            interpret: maps a measured integer to an int or a tuple of ints; None: identity.
            output_shape: the interpreted output's shape (required with ``interpret``).

        Raises:
            QiskitMachineLearningError: ``interpret`` without ``output_shape``.
            ValueError: ``interpret`` returns an index outside ``output_shape``.
        """
        super().set_interpret(interpret, output_shape)
        if interpret is None:
            self._interpret = _identity  # the parent's lambda cannot be pickled
            num_clbits = self._org_circuit.num_clbits
            if num_clbits > self.num_virtual_qubits:
                # every outcome of the measured clbits gets its column, so that rows sum to 1
                # (qiskit-machine-learning 0.9.1 keeps 2**num_qubits and drops the rest)
                self._output_shape = (2**num_clbits,)
        self._output_shape = tuple(int(n) for n in self._output_shape)
        self._user_interpret = interpret
        if getattr(self, "_program", None) is not None:
            self._rebuild_readout()

    def _route(self) -> Route:
        return sampler_route(self.sampler, self.gradient)

    def _make_readout(self, program: Program, backend: Backend) -> ProbabilityReadout:
        key_bits = [
            int(program.qubit_map[program.measurements[c]]) if c in program.measurements else -1
            for c in range(program.num_clbits)
        ]
        layout = getattr(self._org_circuit, "layout", None)
        if layout is not None and self._org_circuit.num_clbits == 0:
            # the network measured every physical qubit of the transpiled circuit (clbit p reads
            # qubit p): key bit i is the final position of logical qubit i, ancillas dropped
            physical = layout.final_index_layout(filter_ancillas=True)
            key_bits = [key_bits[p] if p < len(key_bits) else -1 for p in physical]
        # otherwise the circuit's own measurements define the key: clbit j is bit j, wherever
        # layout and routing put the measured qubit (qiskit-machine-learning 0.9.1 remaps these
        # keys through the layout once more, which gives wrong distributions)
        return ProbabilityReadout(
            key_bits,
            program.num_qubits,
            self._user_interpret,
            self._output_shape,
            None,
            backend,
        )

    def _format(self, values: Any, gradient: bool) -> Any:
        shape = (values.shape[0], *self._output_shape) + ((values.shape[-1],) if gradient else ())
        values = values.reshape(shape)
        if self._sparse:
            import sparse  # noqa: PLC0415 - optional dependency, required by the parent too

            return sparse.COO.from_numpy(values)
        return values

    def _device_call(self, *arrays: Any) -> bool:
        device = super()._device_call(*arrays)
        if device and self._sparse:
            raise ValueError(
                "a sparse SamplerQNN returns sparse.COO arrays on the host; pass "
                "NumPy arrays, or build the network with sparse=False"
            )
        return device

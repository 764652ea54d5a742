"""What gpuqnn's EstimatorQNN and SamplerQNN share: options, input checks, the simulator.

:class:`SimulatorNetwork` is a mixin placed before qiskit-machine-learning's network class in the
MRO. It checks the boundary (constructor options, parameters, forward/backward inputs), compiles
the circuit once, and routes ``_forward``/``_backward`` to the batched simulator whenever the
network's primitives are exact statevector ones; otherwise to the parent's own code, unchanged.

The simulator returns arrays of its backend; this mixin converts them once, to NumPy for host
calls, or leaves them on the device for calls with CuPy arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from qiskit_machine_learning.exceptions import QiskitMachineLearningError

from ._compile import Program, compile_circuit
from ._engines import runner_factory as default_runner_factory
from ._options import SimulatorOptions
from ._sim.backend import Backend, on_device, select_backends
from ._sim.parameters import SampleRows
from ._sim.protocols import Readout
from ._sim.runners import RunnerFactory, state_row_bytes
from ._sim.sharded import ShardedSimulator
from ._sim.shots import ShotSampler
from ._sim.simulator import Simulator
from ._sim.tape import Tape
from ._sim.threads import default_threads


class SimulatorNetwork:
    """Mixin: simulator options, boundary checks and routing between simulator and parent."""

    _unpicklable = (
        "_backend",
        "_backends",
        "_sim",
        "_program",
        "_shot_sampler",
        "_runner_factory",
    )

    def _init_simulator(
        self, options: SimulatorOptions, shots: int | None = None, seed: Any = None
    ) -> None:
        """Set up the simulator for checked ``options`` (and, for a sampler, checked ``shots``
        and ``seed``); build it now when the simulator serves forward passes."""
        self._options = options
        self._shots = shots
        self._seed = seed
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
        self._sim: Simulator | None = None
        self._program: Program | None = None
        if self._simulator_serves_forward():
            self._build_simulator()

    # ---- what subclasses provide ------------------------------------------------------------
    def _simulator_serves_forward(self) -> bool:
        raise NotImplementedError

    def _simulator_serves_backward(self) -> bool:
        raise NotImplementedError

    def _make_readout(self, program: Program, backend: Backend) -> Readout:
        raise NotImplementedError

    def _format(self, values: Any, gradient: bool) -> Any:
        """Turn (B, O[, J]) values into the network's output format."""
        return values

    # ---- simulator life cycle ---------------------------------------------------------------
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
        return self._backend.dtype.name

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

    def resolved_gradient_method(self) -> str | None:
        """The method the next ``backward`` uses with the current ``input_gradients``:
        ``"adjoint"`` or ``"parameter_shift"``; None when the parent's code path runs."""
        if not self._simulator_serves_backward():
            return None
        first = 0 if self._input_gradients else self.num_inputs
        columns = range(first, self.num_inputs + self.num_weights)
        return self._simulator().method(columns, self._shot_sampler is not None)

    def _build_simulator(self) -> None:
        parameters = list(self._circuit.parameters)
        program = compile_circuit(self._circuit, parameters)
        max_memory = self._options.max_memory
        limit = max_memory or self._backend.free_memory()
        bound = f"max_memory={limit}" if max_memory else f"the {limit} bytes free"
        row_bytes = state_row_bytes(program.num_qubits, self._backend.dtype)
        if row_bytes > limit:
            raise ValueError(
                f"the circuit simulates {program.num_qubits} qubits: one statevector row and "
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

    def _new_simulator(self, program: Program) -> Simulator | ShardedSimulator:
        simulators = [
            Simulator(
                program,
                self._make_readout(program, backend),
                backend,
                self._options,
                self._runner_factory,
            )
            for backend in self._backends
        ]
        return simulators[0] if len(simulators) == 1 else ShardedSimulator(simulators)

    def _simulator(self) -> Simulator:
        """The simulator, built on first use."""
        if self._sim is None:
            self._build_simulator()
        return self._sim

    def _rebuild_readout(self) -> None:
        if self._program is not None:
            self._sim = self._new_simulator(self._program)

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

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in self._unpicklable:
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._runner_factory = default_runner_factory
        self._set_backends(select_backends(self._options.device, self._options.dtype))

    def __repr__(self) -> str:
        engine = "engine" if self._simulator_serves_forward() else "delegating to qiskit primitives"
        method = f"'{self.gradient_method}'"
        resolved = self.resolved_gradient_method()
        if self.gradient_method == "auto" and resolved is not None:
            method += f" ({resolved})"
        return (
            f"{type(self).__name__}(num_qubits={self._circuit.num_qubits}, "
            f"num_inputs={self.num_inputs}, num_weights={self.num_weights}, "
            f"output_shape={self.output_shape}, device='{self.device}', "
            f"dtype='{self.dtype}', gradient_method={method}, {engine})"
        )

    # ---- boundary checks --------------------------------------------------------------------
    def _checked(self, name: str, value: Any, xp: Any) -> Any:
        """``value`` as a float64 array of ``xp``, checked to be real and finite (and, for a
        device array, to be on the network's device)."""
        if xp is not np:
            self._backend.check_device(name, value)
        try:
            array = xp.asarray(value, dtype=float)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be an array of real numbers: {exc}") from exc
        if not bool(xp.all(xp.isfinite(array))):
            raise ValueError(f"{name} must be finite, but it holds NaN or infinite values")
        return array

    def _checked_inputs(self, input_data: Any, xp: Any) -> Any:
        if input_data is None:
            if self.num_inputs > 0:
                raise ValueError(
                    f"input_data is None, but the network has {self.num_inputs} "
                    "inputs; pass an array whose last dimension is num_inputs"
                )
            return None
        array = self._checked("input_data", input_data, xp)
        if array.ndim == 0 and self.num_inputs != 1:
            raise QiskitMachineLearningError(
                f"input_data is a scalar, but the network has {self.num_inputs} inputs"
            )
        if array.ndim > 0 and array.shape[-1] != self.num_inputs:
            raise QiskitMachineLearningError(
                f"input_data has shape {array.shape}: its last dimension must equal the "
                f"number of inputs, {self.num_inputs}, but got {array.shape[-1]}"
            )
        return array

    def _checked_weights(self, weights: Any, xp: Any) -> Any:
        if weights is None:
            if self.num_weights > 0:
                raise ValueError(f"weights is None, but the network has {self.num_weights} weights")
            return None
        array = self._checked("weights", weights, xp)
        if array.size != self.num_weights:
            raise ValueError(
                f"weights must hold num_weights={self.num_weights} values, got "
                f"an array of shape {array.shape}"
            )
        return array.reshape(self.num_weights)

    def _validate_input(self, input_data: Any) -> tuple[np.ndarray | None, tuple | None]:
        array = self._checked_inputs(input_data, np)
        if array is None:
            return None, None
        return super()._validate_input(array)

    def _validate_weights(self, weights: Any) -> np.ndarray | None:
        return self._checked_weights(weights, np)

    # ---- arrays of the device ---------------------------------------------------------------
    def _device_call(self, *arrays: Any) -> bool:
        """Whether a call passes arrays of a GPU backend (CuPy): then it gets CuPy back."""
        return self._backend.is_gpu and any(self._backend.is_array(a) for a in arrays)

    def _device_inputs(self, input_data: Any) -> tuple[Any, tuple | None]:
        """Like ``_validate_input``, on the device: (N, num_inputs) rows and the given shape."""
        array = self._checked_inputs(input_data, self._backend.xp)
        if array is None:
            return None, None
        shape = array.shape
        if array.ndim == 0:
            array = array.reshape(1, 1)
        elif array.ndim == 1:
            array = array.reshape(1, -1)
        elif array.ndim > 2:
            array = array.reshape(-1, shape[-1])
        return array, shape

    @on_device("_backend")
    def forward(self, input_data: Any, weights: Any) -> Any:
        """Forward pass; see qiskit-machine-learning's ``NeuralNetwork.forward``.

        Arrays of a GPU backend (CuPy) in give CuPy arrays out, with no host round trip; host
        arrays give NumPy arrays (float64), as in qiskit-machine-learning.
        """
        if not self._device_call(input_data, weights):
            return super().forward(input_data, weights)
        inputs, shape, weights_ = self._checked_call(input_data, weights, self._backend.xp)
        if not self._simulator_serves_forward():
            host = self._backend.to_host
            output = self._forward(
                None if inputs is None else host(inputs),
                None if weights_ is None else host(weights_),
            )
            output = self._backend.asarray(output)
        else:
            output = self._simulated_forward(inputs, weights_, self._backend.xp)
        return self._validate_forward_output(output, shape)

    @on_device("_backend")
    def backward(self, input_data: Any, weights: Any) -> tuple[Any, Any]:
        """Backward pass; see qiskit-machine-learning's ``NeuralNetwork.backward``. Arrays of a
        GPU backend (CuPy) in give CuPy arrays out."""
        if not self._device_call(input_data, weights):
            return super().backward(input_data, weights)
        inputs, shape, weights_ = self._checked_call(input_data, weights, self._backend.xp)
        if not self._simulator_serves_backward():
            host = self._backend.to_host
            grads = self._backward(
                None if inputs is None else host(inputs),
                None if weights_ is None else host(weights_),
            )
            grads = tuple(None if g is None else self._backend.asarray(g) for g in grads)
        else:
            grads = self._simulated_backward(inputs, weights_, self._backend.xp)
        return self._validate_backward_output(*grads, shape)

    # ---- passes -----------------------------------------------------------------------------
    def _forward(self, input_data: np.ndarray | None, weights: np.ndarray | None) -> Any:
        if not self._simulator_serves_forward():
            return super()._forward(input_data, weights)
        return self._simulated_forward(input_data, weights, np)

    def _backward(
        self, input_data: np.ndarray | None, weights: np.ndarray | None
    ) -> tuple[Any, Any]:
        if not self._simulator_serves_backward():
            return super()._backward(input_data, weights)
        return self._simulated_backward(input_data, weights, np)

    def _parameter_matrix(self, input_data: Any, weights: Any, xp: Any) -> SampleRows:
        """(B, P) rows of inputs then weights, batched like the parent class does (a missing
        input batch is one sample), built chunk by chunk so that the weights are never tiled
        over the whole batch."""
        # inputs are (N, num_inputs) after validation, (N, 0) for a network without inputs
        inputs = xp.zeros((1, 0)) if input_data is None else xp.asarray(input_data, dtype=float)
        shared = xp.zeros(0) if weights is None else xp.asarray(weights, dtype=float).ravel()
        return SampleRows(inputs, shared, xp)

    def _to_caller(self, values: Any, xp: Any) -> Any:
        """Backend ``values`` as arrays of the caller's array module ``xp``: NumPy for host
        calls (one copy from a device), the backend's own for device calls."""
        return self._backend.to_host(values) if xp is np else values

    def _simulated_forward(self, input_data: Any, weights: Any, xp: Any) -> Any:
        """The simulator's forward values, as arrays of ``xp`` (the caller's array module)."""
        values = self._simulator().forward(self._parameter_matrix(input_data, weights, xp))
        if self._shot_sampler is not None:
            values = self._shot_sampler.for_call()(values)
        return self._format(self._to_caller(values, xp), gradient=False)

    def _simulated_backward(self, input_data: Any, weights: Any, xp: Any) -> tuple[Any, Any]:
        """The simulator's gradients, as arrays of ``xp`` (the caller's array module)."""
        params = self._parameter_matrix(input_data, weights, xp)
        columns = self._trained_columns()
        if params.size == 0 or columns is None:
            return None, None
        sample = None if self._shot_sampler is None else self._shot_sampler.for_call()
        grad = self._to_caller(self._simulator().backward(params, columns, sample), xp)
        input_grad = None
        if self._input_gradients:
            input_grad = self._format(grad[..., : self.num_inputs], gradient=True)
        weight_grad = self._format(grad[..., grad.shape[-1] - self.num_weights :], gradient=True)
        return input_grad, weight_grad

    # ---- vector-Jacobian products (a gpuqnn addition) -----------------------------------------
    def vjp(self, input_data: Any, weights: Any, cotangent: Any) -> tuple[Any, Any]:
        """Vector-Jacobian product: the gradients of ``sum(cotangent * forward(input_data,
        weights))``, without forming the per-sample Jacobians that ``backward`` returns.

        This is what training needs (``TorchConnector`` uses it): on the adjoint method it
        costs about one forward and one reverse sweep per sample, whatever the number of
        outputs. A gpuqnn addition; qiskit-machine-learning has no such method.

        Args:
            input_data: inputs as for ``forward``: (N, num_inputs), (num_inputs,), N-D with
                the inputs last, or None for a network without inputs.
            weights: (num_weights,) weights, or None for a network without weights.
            cotangent: float array with the shape of ``forward``'s output, (N, *output_shape)
                (the batch shape of ``input_data``, then the output shape).

        Returns:
            ``(input_grad, weight_grad)``: input_grad with the shape of ``input_data`` (a
            leading batch axis of 1 for one sample), None unless ``input_gradients``;
            weight_grad (num_weights,), None for a network without weights. float64 NumPy
            arrays, or CuPy arrays for CuPy arguments.

        Raises:
            ValueError: ``cotangent`` has the wrong shape or non-finite values (besides the
                checks of ``forward``).
        """
        return self._vjp(input_data, weights, cotangent, None)

    @on_device("_backend")
    def _vjp(self, input_data: Any, weights: Any, cotangent: Any, tape: Tape | None) -> tuple:
        """:meth:`vjp`, from the ``tape`` of :meth:`_forward_for_training` when it serves."""
        xp = self._backend.xp if self._device_call(input_data, weights, cotangent) else np
        inputs, shape, weights_ = self._checked_call(input_data, weights, xp)
        batch = 1 if inputs is None else inputs.shape[0]
        g = self._checked_cotangent(cotangent, batch, shape, xp)
        if self._simulator_serves_backward():
            input_grad, weight_grad = self._simulated_vjp(inputs, weights_, g, xp, tape)
        else:
            input_grad, weight_grad = self._contracted_vjp(inputs, weights_, g, xp)
        if input_grad is not None:
            input_grad = input_grad.reshape(
                (*shape[:-1], self.num_inputs) if shape and len(shape) >= 2 else (1, -1)
            )
        return input_grad, weight_grad

    def _checked_cotangent(self, cotangent: Any, batch: int, shape: Any, xp: Any) -> Any:
        """``cotangent`` as a (B, O) float64 array of ``xp``, checked against the output shape
        ``forward`` gives for inputs of ``shape``."""
        expected = (
            (*shape[:-1], *self.output_shape)
            if shape and len(shape) >= 2
            else (batch, *self.output_shape)
        )
        array = self._checked("cotangent", cotangent, xp)
        if tuple(array.shape) != tuple(expected):
            raise ValueError(
                f"cotangent must have the shape of forward's output, {tuple(expected)}, got "
                f"{tuple(array.shape)}"
            )
        return array.reshape(batch, -1)

    def _checked_call(self, input_data: Any, weights: Any, xp: Any) -> tuple[Any, Any, Any]:
        """(inputs (N, num_inputs) or None, the inputs' given shape, weights) checked as
        ``forward`` checks them, as arrays of ``xp``."""
        if xp is np:
            inputs, shape = self._validate_input(input_data)
            return inputs, shape, self._validate_weights(weights)
        inputs, shape = self._device_inputs(input_data)
        return inputs, shape, self._checked_weights(weights, xp)

    def _trained_columns(self) -> range | None:
        """The parameter columns a training step differentiates by, or None for none."""
        if not self._input_gradients and self.num_weights == 0:
            return None
        first = 0 if self._input_gradients else self.num_inputs
        return range(first, self.num_inputs + self.num_weights)

    @on_device("_backend")
    def _forward_for_training(self, input_data: Any, weights: Any) -> tuple[Any, Tape | None]:
        """``forward``, also returning the tape of the forward sweep for the :meth:`_vjp` that
        follows (None where the simulator does not keep one: see
        :meth:`~gpuqnn._sim.simulator.Simulator.forward_taped`)."""
        xp = self._backend.xp if self._device_call(input_data, weights) else np
        columns = self._trained_columns()
        if not self._simulator_serves_backward() or self._shot_sampler is not None or not columns:
            return self.forward(input_data, weights), None
        inputs, shape, weights_ = self._checked_call(input_data, weights, xp)
        params = self._parameter_matrix(inputs, weights_, xp)
        values, tape = self._simulator().forward_taped(params, columns)
        output = self._format(self._to_caller(values, xp), gradient=False)
        return self._validate_forward_output(output, shape), tape

    def _simulated_vjp(
        self, inputs: Any, weights: Any, g: Any, xp: Any, tape: Tape | None = None
    ) -> tuple[Any, Any]:
        params = self._parameter_matrix(inputs, weights, xp)
        columns = self._trained_columns()
        if columns is None:
            return None, None
        sample = None if self._shot_sampler is None else self._shot_sampler.for_call()
        grad = self._simulator().vjp(params, columns, g, tape, sample)
        grad = self._to_caller(grad, xp)
        input_grad = grad[:, : self.num_inputs] if self._input_gradients else None
        weight_grad = None
        if self.num_weights:
            weight_grad = grad[:, grad.shape[1] - self.num_weights :].sum(axis=0)
        return input_grad, weight_grad

    def _contracted_vjp(self, inputs: Any, weights: Any, g: Any, xp: Any) -> tuple[Any, Any]:
        """The parent's Jacobians (delegated primitives) contracted with ``g``."""
        host = self._backend.to_host
        input_jac, weight_jac = self._backward(
            None if inputs is None else host(inputs), None if weights is None else host(weights)
        )
        g_host = host(g)
        outputs = g_host.shape[1]

        def contract(jacobian: Any, per_sample: bool) -> Any:
            if jacobian is None:
                return None
            dense = np.asarray(jacobian.todense() if hasattr(jacobian, "todense") else jacobian)
            dense = dense.reshape(g_host.shape[0], outputs, -1)
            out = np.einsum("bo,boj->bj" if per_sample else "bo,boj->j", g_host, dense)
            return out if xp is np else self._backend.asarray(out)

        input_grad = contract(input_jac, True) if self._input_gradients else None
        weight_grad = contract(weight_jac, False) if self.num_weights else None
        return input_grad, weight_grad

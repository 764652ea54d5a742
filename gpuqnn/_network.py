"""What gpuqnn's EstimatorQNN and SamplerQNN share: options, input checks, the engine's life cycle.

:class:`EngineNetwork` is a mixin placed before qiskit-machine-learning's network class in the
MRO. It checks the boundary (constructor options, parameters, forward/backward inputs), compiles
the circuit once, and routes ``_forward``/``_backward`` to the batched engine whenever the
network's primitives are exact statevector ones; otherwise to the parent's own code, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
from qiskit.circuit import Parameter, QuantumCircuit
from qiskit_machine_learning.exceptions import QiskitMachineLearningError

from ._compile import Program, compile_circuit
from ._cuda.select import check_kernel_mode
from ._sim.backend import Backend, check_device, check_dtype, select_backend
from ._sim.simulator import GRADIENT_METHODS, SampleRows, Simulator, state_row_bytes


def check_parameters(
    circuit: QuantumCircuit,
    input_params: Sequence[Parameter] | None,
    weight_params: Sequence[Parameter] | None,
) -> None:
    """Check the declared parameters against the circuit.

    Raises:
        TypeError: ``circuit`` is not a QuantumCircuit.
        ValueError: a parameter is declared twice, is not in the circuit, or a circuit
            parameter is declared as neither input nor weight.
    """
    if not isinstance(circuit, QuantumCircuit):
        raise TypeError(f"circuit must be a qiskit QuantumCircuit, got {type(circuit).__name__}")
    inputs = list(input_params) if input_params is not None else []
    weights = list(weight_params) if weight_params is not None else []
    present = set(circuit.parameters)
    seen: dict[Parameter, str] = {}
    for kind, params in (("input_params", inputs), ("weight_params", weights)):
        for param in params:
            if not isinstance(param, Parameter):
                raise TypeError(f"{kind} must hold qiskit Parameters, got {param!r}")
            if param in seen:
                where = f"both {seen[param]} and {kind}" if seen[param] != kind else f"{kind} twice"
                raise ValueError(f"parameter '{param.name}' is listed in {where}")
            seen[param] = kind
            if param not in present:
                raise ValueError(
                    f"{kind} holds '{param.name}', which is not a parameter of "
                    f"the circuit (its parameters: {sorted(p.name for p in present)})"
                )
    free = sorted(p.name for p in present if p not in seen)
    if free:
        raise ValueError(
            f"circuit parameters {free} are in neither input_params nor "
            "weight_params; declare each one as an input or a weight"
        )


def check_max_memory(max_memory: int | str | None) -> int | None:
    """None or 'auto' -> None (half of free memory at call time); else a positive int."""
    if max_memory is None or max_memory == "auto":
        return None
    if isinstance(max_memory, bool) or not isinstance(max_memory, Integral) or max_memory <= 0:
        raise ValueError(
            f"max_memory must be a positive number of bytes or 'auto', got {max_memory!r}"
        )
    return int(max_memory)


class EngineNetwork:
    """Mixin: engine options, boundary checks and routing between engine and parent."""

    _engine_keys = ("_backend", "_simulator", "_program")

    def _init_engine(
        self, device: str, dtype: str, gradient_method: str, max_memory: int | str | None
    ) -> None:
        self._device_request = device
        self._dtype_name = check_dtype(dtype)
        self._gradient_method = gradient_method
        self._max_memory = check_max_memory(max_memory)
        self._backend: Backend = select_backend(device, dtype)
        self._kernels = "auto"
        self._simulator: Simulator | None = None
        self._program: Program | None = None
        if self._engine_serves_forward():
            self._build_engine()

    @staticmethod
    def _check_options(
        device: str, dtype: str, gradient_method: str, max_memory: int | str | None
    ) -> None:
        check_dtype(dtype)
        check_device(device)
        if gradient_method not in GRADIENT_METHODS:
            raise ValueError(
                f"gradient_method must be one of {GRADIENT_METHODS}, got {gradient_method!r}"
            )
        check_max_memory(max_memory)

    # ---- what subclasses provide ------------------------------------------------------------
    def _engine_serves_forward(self) -> bool:
        raise NotImplementedError

    def _engine_serves_backward(self) -> bool:
        raise NotImplementedError

    def _make_readout(self, program: Program) -> Any:
        raise NotImplementedError

    def _finish(self, values: np.ndarray, gradient: bool) -> np.ndarray:
        """Turn (B, O[, J]) engine values into the network's output format."""
        return values

    # ---- engine life cycle ------------------------------------------------------------------
    @property
    def device(self) -> str:
        """Where the engine runs: ``"cpu"`` or ``"cuda:N"``."""
        return self._backend.name

    @property
    def dtype(self) -> str:
        """The statevectors' complex dtype."""
        return self._backend.dtype.name

    @property
    def gradient_method(self) -> str:
        """The gradient method asked for: ``"auto"``, ``"adjoint"`` or ``"parameter_shift"``
        (see :meth:`resolved_gradient_method` for what ``"auto"`` picks)."""
        return self._gradient_method

    def resolved_gradient_method(self) -> str | None:
        """The method the next ``backward`` uses with the current ``input_gradients``:
        ``"adjoint"`` or ``"parameter_shift"``; None when the parent's code path runs."""
        if not self._engine_serves_backward():
            return None
        first = 0 if self._input_gradients else self.num_inputs
        columns = range(first, self.num_inputs + self.num_weights)
        return self._engine().method(columns, self._samples_shots(), self._max_memory)

    def _samples_shots(self) -> bool:
        return False

    @property
    def max_memory(self) -> int | None:
        """Bound on the bytes of statevectors held at once; None: half of free memory."""
        return self._max_memory

    def _build_engine(self) -> None:
        parameters = list(self._circuit.parameters)
        program = compile_circuit(self._circuit, parameters)
        row_bytes = state_row_bytes(program.num_qubits, self._backend.dtype)
        limit = self._max_memory or self._backend.free_memory()
        if row_bytes > limit:
            raise ValueError(
                f"the circuit simulates {program.num_qubits} qubits: one statevector row and "
                f"its temporaries need about {row_bytes} bytes, more than "
                + (f"max_memory={limit}" if self._max_memory else f"the {limit} bytes free")
            )
        simulator = Simulator(
            program,
            self._make_readout(program),
            self._backend,
            self._gradient_method,
            self._kernels,
        )
        if simulator.row_bytes > limit:
            raise ValueError(
                f"the circuit simulates {program.num_qubits} qubits: one sample's statevector "
                f"and the data of its fused blocks need about {simulator.row_bytes} bytes, more "
                "than " + (f"max_memory={limit}" if self._max_memory else f"the {limit} bytes free")
            )
        self._program = program
        self._simulator = simulator

    def _use_kernels(self, mode: str) -> None:
        """Rebuild the engine with the CUDA kernel choice ``mode`` (``"auto"``, ``"fused"``,
        ``"per_op"`` or ``"none"``, see :mod:`gpuqnn._cuda.select`); for tests and benchmarks
        that compare the GPU variants. No effect on the CPU."""
        self._kernels = check_kernel_mode(mode)
        self._simulator = None
        self._program = None
        if self._engine_serves_forward():
            self._build_engine()

    def _engine(self) -> Simulator:
        if self._simulator is None:
            self._build_engine()
        return self._simulator

    def _rebuild_readout(self) -> None:
        if self._program is not None:
            self._simulator = Simulator(
                self._program,
                self._make_readout(self._program),
                self._backend,
                self._gradient_method,
                self._kernels,
            )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in self._engine_keys:
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._backend = select_backend(self._device_request, self._dtype_name)
        self._simulator = None
        self._program = None
        if self._engine_serves_forward():
            self._build_engine()

    def __repr__(self) -> str:
        engine = "engine" if self._engine_serves_forward() else "delegating to qiskit primitives"
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
        """``value`` as a float64 array of ``xp``, checked to be real and finite."""
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

    def forward(self, input_data: Any, weights: Any) -> Any:
        """Forward pass; see qiskit-machine-learning's ``NeuralNetwork.forward``.

        Arrays of a GPU backend (CuPy) in give CuPy arrays out, with no host round trip; host
        arrays give NumPy arrays (float64), as in qiskit-machine-learning.
        """
        if not self._device_call(input_data, weights):
            return super().forward(input_data, weights)
        inputs, shape = self._device_inputs(input_data)
        weights_ = self._checked_weights(weights, self._backend.xp)
        if not self._engine_serves_forward():
            host = self._backend.to_host
            output = self._forward(
                None if inputs is None else host(inputs),
                None if weights_ is None else host(weights_),
            )
            output = self._backend.asarray(output)
        else:
            output = self._engine_forward(inputs, weights_, device=True)
        return self._validate_forward_output(output, shape)

    def backward(self, input_data: Any, weights: Any) -> tuple[Any, Any]:
        """Backward pass; see qiskit-machine-learning's ``NeuralNetwork.backward``. Arrays of a
        GPU backend (CuPy) in give CuPy arrays out."""
        if not self._device_call(input_data, weights):
            return super().backward(input_data, weights)
        inputs, shape = self._device_inputs(input_data)
        weights_ = self._checked_weights(weights, self._backend.xp)
        if not self._engine_serves_backward():
            host = self._backend.to_host
            grads = self._backward(
                None if inputs is None else host(inputs),
                None if weights_ is None else host(weights_),
            )
            grads = tuple(None if g is None else self._backend.asarray(g) for g in grads)
        else:
            grads = self._engine_backward(inputs, weights_, device=True)
        return self._validate_backward_output(*grads, shape)

    # ---- passes -----------------------------------------------------------------------------
    def _parameter_matrix(self, input_data: Any, weights: Any, xp: Any = np) -> SampleRows:
        """(B, P) rows of inputs then weights, batched like the parent class does (a missing
        input batch is one sample), built chunk by chunk so that the weights are never tiled
        over the whole batch."""
        # inputs are (N, num_inputs) after validation, (N, 0) for a network without inputs
        inputs = xp.zeros((1, 0)) if input_data is None else xp.asarray(input_data, dtype=float)
        shared = xp.zeros(0) if weights is None else xp.asarray(weights, dtype=float).ravel()
        return SampleRows(inputs, shared, xp)

    def _forward(self, input_data: np.ndarray | None, weights: np.ndarray | None) -> Any:
        if not self._engine_serves_forward():
            return super()._forward(input_data, weights)
        return self._engine_forward(input_data, weights, device=False)

    def _backward(
        self, input_data: np.ndarray | None, weights: np.ndarray | None
    ) -> tuple[Any, Any]:
        if not self._engine_serves_backward():
            return super()._backward(input_data, weights)
        return self._engine_backward(input_data, weights, device=False)

    def _engine_forward(self, input_data: Any, weights: Any, device: bool) -> Any:
        """The engine's forward values, on the host or (``device``) on the backend."""
        params = self._parameter_matrix(input_data, weights, self._backend.xp if device else np)
        simulator = self._engine()
        if device:
            values = simulator.forward_device(params, self._max_memory)
        else:
            values = simulator.forward(params, self._max_memory)
        return self._finish_on(values, gradient=False, device=device)

    def _engine_backward(self, input_data: Any, weights: Any, device: bool) -> tuple[Any, Any]:
        """The engine's gradients, on the host or (``device``) on the backend."""
        params = self._parameter_matrix(input_data, weights, self._backend.xp if device else np)
        if params.size == 0 or (not self._input_gradients and self.num_weights == 0):
            return None, None
        first = 0 if self._input_gradients else self.num_inputs
        columns = range(first, params.shape[1])
        simulator = self._engine()
        run = simulator.backward_device if device else simulator.backward
        grad = run(params, columns, self._max_memory, **self._backward_options())
        input_grad = None
        if self._input_gradients:
            input_grad = self._finish_on(grad[..., : self.num_inputs], True, device)
        weight_grad = self._finish_on(grad[..., grad.shape[-1] - self.num_weights :], True, device)
        return input_grad, weight_grad

    def _finish_on(self, values: Any, gradient: bool, device: bool) -> Any:
        """``_finish`` for host values, or for backend values when ``device`` (through the
        host where finishing needs it, e.g. sampling shots)."""
        if device and self._finish_needs_host(gradient):
            host = self._finish(self._backend.to_host(values), gradient)
            return self._backend.asarray(host)
        return self._finish(values, gradient)

    def _finish_needs_host(self, gradient: bool) -> bool:
        return False

    def _backward_options(self) -> dict:
        return {}

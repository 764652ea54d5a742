"""Boundary checks and routing of a gpuqnn network's passes.

:class:`RoutingMixin` checks the inputs and weights of every call, and routes ``forward``/
``backward`` (and qiskit-machine-learning's ``_forward``/``_backward``) to the batched simulator
whenever the network's primitives are exact statevector ones; otherwise to the parent's own
code, unchanged. The simulator returns arrays of its backend; they are converted once, to NumPy
for host calls, or left on the device for calls with CuPy arrays.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from qiskit_machine_learning.exceptions import QiskitMachineLearningError

from .. import _profile
from .._exact import FAST_PATH
from .._sim.backend import on_device
from .._sim.parameters import SampleRows
from .handle import SimulatorHandle

logger = logging.getLogger(__name__)


class RoutingMixin(SimulatorHandle):
    """Input checks, and each pass routed to the simulator or to the parent's code."""

    # ---- boundary checks --------------------------------------------------------------------
    def _checked(self, name: str, value: Any, xp: Any) -> Any:
        """``value`` as a float64 array of ``xp``, checked to be real and finite (and, for a
        device array, to be on the network's device)."""
        if xp is not np:
            self._backend.check_device(name, value)
        try:
            array = xp.asarray(value)
            if array.dtype.kind != "c":
                array = xp.asarray(array, dtype=float)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be an array of real numbers: {exc}") from exc
        if array.dtype.kind == "c":
            # a cast would drop the imaginary parts with only a ComplexWarning
            if bool(xp.any(array.imag != 0)):
                raise ValueError(
                    f"{name} must be real, but it holds complex numbers with non-zero "
                    "imaginary parts"
                )
            array = xp.ascontiguousarray(array.real, dtype=float)
        # NaN propagates through min and max, and an infinity is one of them: finiteness
        # without a boolean array as large as the batch
        if array.size and not (bool(xp.isfinite(array.min())) and bool(xp.isfinite(array.max()))):
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

    def _validate_input(self, input_data: Any) -> tuple[np.ndarray | None, tuple[int, ...] | None]:
        return self._input_rows(input_data, np)

    def _input_rows(self, input_data: Any, xp: Any) -> tuple[Any, tuple[int, ...] | None]:
        """Checked inputs as (N, num_inputs) rows of ``xp``, and their given shape (None and
        None for no inputs): as the parent's ``_validate_input``, without its copy of the
        inputs (which grows with the batch), and with every size given so that an empty batch
        (N = 0) reshapes too."""
        array = self._checked_inputs(input_data, xp)
        if array is None:
            return None, None
        if array.ndim <= 1:
            return array.reshape(1, -1), array.shape
        return array.reshape(math.prod(array.shape[:-1]), self.num_inputs), array.shape

    def _validate_weights(self, weights: Any) -> np.ndarray | None:
        return self._checked_weights(weights, np)

    def _checked_call(self, input_data: Any, weights: Any, xp: Any) -> tuple[Any, Any, Any]:
        """(inputs (N, num_inputs) or None, the inputs' given shape, weights) checked as
        ``forward`` checks them, as arrays of ``xp``."""
        if xp is np:
            inputs, shape = self._validate_input(input_data)
            return inputs, shape, self._validate_weights(weights)
        inputs, shape = self._input_rows(input_data, xp)
        return inputs, shape, self._checked_weights(weights, xp)

    # ---- arrays of the device ---------------------------------------------------------------
    def _device_call(self, *arrays: Any) -> bool:
        """Whether a call passes arrays of a GPU backend (CuPy): then it gets CuPy back."""
        return self._backend.is_gpu and any(self._backend.is_array(a) for a in arrays)

    def _to_host(self, *arrays: Any) -> list[Any]:
        """Backend arrays (or None) copied to NumPy, for the parent's host-only code."""
        return [None if a is None else self._backend.to_host(a) for a in arrays]

    def _to_caller(self, values: Any, xp: Any) -> Any:
        """Backend ``values`` as arrays of the caller's array module ``xp``: NumPy for host
        calls (one copy from a device), the backend's own for device calls."""
        if xp is not np:
            return values
        if self._backend.is_gpu:
            _profile.count("device_to_host_bytes", int(values.nbytes))
            _profile.count("host_ops")
        return self._backend.to_host(values)

    # ---- passes -----------------------------------------------------------------------------
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
            output = self._backend.asarray(self._forward(*self._to_host(inputs, weights_)))
        else:
            output = self._simulated_forward(inputs, weights_, self._backend.xp)
        return self._validate_forward_output(output, shape)

    @on_device("_backend")
    def backward(self, input_data: Any, weights: Any) -> Any:
        """Backward pass; see qiskit-machine-learning's ``NeuralNetwork.backward``. Arrays of a
        GPU backend (CuPy) in give CuPy arrays out."""
        if not self._device_call(input_data, weights):
            return super().backward(input_data, weights)
        inputs, shape, weights_ = self._checked_call(input_data, weights, self._backend.xp)
        grads: tuple[Any, Any]
        if not self._simulator_serves_backward():
            host = self._backward(*self._to_host(inputs, weights_))
            grads = (
                None if host[0] is None else self._backend.asarray(host[0]),
                None if host[1] is None else self._backend.asarray(host[1]),
            )
        else:
            grads = self._simulated_backward(inputs, weights_, self._backend.xp)
        return self._validate_backward_output(*grads, shape)

    def _warn_delegation(self) -> None:
        """Say once per network, at its first delegated pass, that qiskit-machine-learning's
        own code runs it, naming the primitive, why, and how to get the simulator."""
        if getattr(self, "_delegation_warned", False):
            return
        self._delegation_warned = True
        logger.warning(
            "%s runs qiskit-machine-learning's own (slow) code path, not gpuqnn's simulator: "
            "%s; %s",
            type(self).__name__,
            self._route().reason,
            FAST_PATH,
        )

    def _forward(self, input_data: np.ndarray | None, weights: np.ndarray | None) -> Any:
        if not self._simulator_serves_forward():
            self._warn_delegation()
            # the parent after the mixins (EstimatorQNN, SamplerQNN) implements it
            return super()._forward(input_data, weights)  # type: ignore[safe-super]
        return self._simulated_forward(input_data, weights, np)

    def _backward(
        self, input_data: np.ndarray | None, weights: np.ndarray | None
    ) -> tuple[Any, Any]:
        if not self._simulator_serves_backward():
            self._warn_delegation()
            return super()._backward(input_data, weights)  # type: ignore[safe-super]
        return self._simulated_backward(input_data, weights, np)

    def _parameter_matrix(self, input_data: Any, weights: Any, xp: Any) -> SampleRows:
        """(B, P) rows of inputs then weights, batched like the parent class does (a missing
        input batch is one sample), built chunk by chunk so that the weights are never tiled
        over the whole batch."""
        # inputs are (N, num_inputs) after validation, (N, 0) for a network without inputs
        inputs = xp.zeros((1, 0)) if input_data is None else xp.asarray(input_data, dtype=float)
        shared = xp.zeros(0) if weights is None else xp.asarray(weights, dtype=float).ravel()
        return SampleRows(inputs, shared, xp)

    def _trained_columns(self) -> range | None:
        """The parameter columns a gradient differentiates by, or None for none."""
        if not self._input_gradients and self.num_weights == 0:
            return None
        first = 0 if self._input_gradients else self.num_inputs
        return range(first, self.num_inputs + self.num_weights)

    def _simulated_forward(self, input_data: Any, weights: Any, xp: Any) -> Any:
        """The simulator's forward values, as arrays of ``xp`` (the caller's array module)."""
        with _profile.recording("forward", "", "", None, 0):
            return self._simulated_forward_values(input_data, weights, xp)

    def _simulated_forward_values(self, input_data: Any, weights: Any, xp: Any) -> Any:
        values = self._simulator().forward(self._parameter_matrix(input_data, weights, xp))
        sampler = self._output_sampler(backward=False)
        if sampler is not None:
            values = sampler.for_call()(values)
        return self._format(self._to_caller(values, xp), gradient=False)

    def _simulated_backward(self, input_data: Any, weights: Any, xp: Any) -> tuple[Any, Any]:
        """The simulator's gradients, as arrays of ``xp`` (the caller's array module)."""
        with _profile.recording("backward", "", "", None, 0):
            return self._simulated_gradients(input_data, weights, xp)

    def _simulated_gradients(self, input_data: Any, weights: Any, xp: Any) -> tuple[Any, Any]:
        params = self._parameter_matrix(input_data, weights, xp)
        columns = self._trained_columns()
        if params.size == 0 or columns is None:
            return None, None
        sampler = self._output_sampler(backward=True)
        sample = None if sampler is None else sampler.for_call()
        grad = self._to_caller(self._simulator().backward(params, columns, sample), xp)
        input_grad = None
        if self._input_gradients:
            input_grad = self._format(grad[..., : self.num_inputs], gradient=True)
        weight_grad = self._format(grad[..., grad.shape[-1] - self.num_weights :], gradient=True)
        return input_grad, weight_grad

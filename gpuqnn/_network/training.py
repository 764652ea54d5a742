"""The training API of a gpuqnn network: vector-Jacobian products and the taped forward pass.

:class:`TrainingMixin` adds :meth:`~TrainingMixin.vjp` (a gpuqnn addition; qiskit-machine-
learning has no such method) and the two private calls :class:`gpuqnn.TorchConnector` makes,
``_forward_for_training`` then ``_vjp`` with the tape it returned.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _profile
from .._sim.backend import on_device
from .._sim.sharded import ShardedTape
from .._sim.tape import Tape
from .routing import RoutingMixin

AnyTape = Tape | ShardedTape
"""A forward pass kept for the reverse sweep: one device's, or one per shard."""


class TrainingMixin(RoutingMixin):
    """Vector-Jacobian products, from a kept forward pass where one serves."""

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
    def _vjp(
        self, input_data: Any, weights: Any, cotangent: Any, tape: AnyTape | None
    ) -> tuple[Any, Any]:
        """:meth:`vjp`, from the ``tape`` of :meth:`_forward_for_training` when it serves."""
        xp = self._backend.xp if self._device_call(input_data, weights, cotangent) else np
        inputs, shape, weights_ = self._checked_call(input_data, weights, xp)
        batch = 1 if inputs is None else inputs.shape[0]
        g = self._checked_cotangent(cotangent, batch, shape, xp)
        if self._simulator_serves_backward():
            input_grad, weight_grad = self._simulated_vjp(inputs, weights_, g, xp, tape)
        else:
            input_grad, weight_grad = self._contracted_vjp(inputs, weights_, g, xp)
        if self.num_inputs == 0:
            input_grad = None  # as backward gives, not a (1, 0) array
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
        return array.reshape(batch, math.prod(self.output_shape))

    @on_device("_backend")
    def _forward_for_training(self, input_data: Any, weights: Any) -> tuple[Any, AnyTape | None]:
        """``forward``, also returning the tape of the forward sweep for the :meth:`_vjp` that
        follows (None where the simulator does not keep one: see
        :meth:`~gpuqnn._sim.simulator.Simulator.forward_taped`)."""
        xp = self._backend.xp if self._device_call(input_data, weights) else np
        columns = self._trained_columns()
        noisy = any(self._output_sampler(backward) is not None for backward in (False, True))
        if not self._simulator_serves_backward() or noisy or not columns:
            return self.forward(input_data, weights), None
        inputs, shape, weights_ = self._checked_call(input_data, weights, xp)
        params = self._parameter_matrix(inputs, weights_, xp)
        values, tape = self._simulator().forward_taped(params, columns)
        output = self._format(self._to_caller(values, xp), gradient=False)
        return self._validate_forward_output(output, shape), tape

    def _simulated_vjp(
        self, inputs: Any, weights: Any, g: Any, xp: Any, tape: AnyTape | None = None
    ) -> tuple[Any, Any]:
        with _profile.recording("vjp", "", "", None, 0):
            return self._simulated_products(inputs, weights, g, xp, tape)

    def _simulated_products(
        self, inputs: Any, weights: Any, g: Any, xp: Any, tape: AnyTape | None
    ) -> tuple[Any, Any]:
        params = self._parameter_matrix(inputs, weights, xp)
        columns = self._trained_columns()
        if columns is None:
            return None, None
        sampler = self._output_sampler(backward=True)
        sample = None if sampler is None else sampler.for_call()
        per_sample, total = self._simulator().vjp(
            params,
            columns,
            g,
            tape,  # type: ignore[arg-type]
            sample,
            summed=self.num_weights,
        )
        input_grad = self._to_caller(per_sample, xp) if self._input_gradients else None
        weight_grad = self._to_caller(total, xp) if self.num_weights else None
        return input_grad, weight_grad

    def _contracted_vjp(self, inputs: Any, weights: Any, g: Any, xp: Any) -> tuple[Any, Any]:
        """The parent's Jacobians (delegated primitives) contracted with ``g``."""
        input_jac, weight_jac = self._backward(*self._to_host(inputs, weights))
        g_host = self._backend.to_host(g)
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

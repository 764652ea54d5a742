"""gpuqnn's TorchConnector: qiskit-machine-learning's TorchConnector, with a DLPack data path.

:class:`TorchConnector` subclasses :class:`qiskit_machine_learning.connectors.TorchConnector`
(so ``isinstance`` checks and ``state_dict`` keys stay the same) and replaces its autograd function:

- **Data path.** Tensors are handed to the network as arrays of the network's array module
  (``numpy`` for the CPU engine, ``cupy`` for a CUDA engine) through DLPack, and the results come
  back the same way: a float64 CPU tensor reaches a CPU network without a copy, a CUDA tensor
  reaches a network on the same CUDA device without leaving it.
- **Device rule.** A tensor on another device than the network's engine is moved there once
  (a CUDA tensor with a CPU network goes to the host; a CPU tensor with a CUDA network goes to
  that device); outputs are returned on the input's device and each gradient on the device of
  the tensor it belongs to. Networks that are not gpuqnn networks (e.g. qiskit-machine-learning's
  own) are CPU networks.
- **dtype.** ``dtype=None`` keeps qiskit-machine-learning's float32 weight and outputs;
  ``dtype="input"`` makes the outputs follow the input tensor's dtype (so float64 training
  works end to end); an explicit torch dtype fixes both the weight and the outputs.
- **Shapes.** Inputs with several batch axes and networks with a multi-dimensional
  ``output_shape`` get correct gradients (qiskit-machine-learning 0.9.1 returns gradients of the
  wrong shape there).
- **Gradients.** For gpuqnn networks, ``backward`` asks the network for ONE vector-Jacobian
  product (:meth:`~gpuqnn.EstimatorQNN.vjp`) instead of every per-sample Jacobian, and a forward
  pass under autograd keeps its sweep (checkpoints within ``max_memory``) for it, so a training
  step costs one forward and one reverse sweep whatever the number of outputs. Under
  ``torch.no_grad()`` nothing is kept. Other networks' Jacobians are contracted as
  qiskit-machine-learning does.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np
import torch
from qiskit_machine_learning.connectors import TorchConnector as _QmlTorchConnector
from qiskit_machine_learning.exceptions import QiskitMachineLearningError
from qiskit_machine_learning.neural_networks import NeuralNetwork

from ._network import SimulatorNetwork

_DTYPE_NAMES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


def _check_dtype(dtype: Any) -> torch.dtype | Literal["input"] | None:
    """None, ``"input"``, or a torch floating dtype (given as a dtype or its name)."""
    if dtype is None:
        return None
    if dtype == "input":
        return "input"
    if isinstance(dtype, str) and dtype in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype]
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    raise ValueError(
        "dtype must be None (float32, as qiskit-machine-learning), 'input' (follow the input "
        f"tensor) or a torch floating dtype such as torch.float64, got {dtype!r}"
    )


@dataclass(frozen=True)
class _Plan:
    """What one forward call needs besides the tensors.

    Attributes:
        network: The neural network.
        sparse: Whether the connector returns sparse tensors.
        out_dtype: dtype of the output tensor, or None to keep the network's (float64) for
            sparse output.
        xp: The network's array module (``numpy`` or ``cupy``).
        device: The torch device the network's engine runs on.
        keep_forward: Whether a backward pass will follow (autograd records the call), so
            that a gpuqnn network should keep its forward sweep for it.
    """

    network: NeuralNetwork
    sparse: bool
    out_dtype: torch.dtype | None
    xp: ModuleType
    device: torch.device
    keep_forward: bool = False


def engine_location(network: NeuralNetwork) -> tuple[ModuleType, torch.device]:
    """The array module and torch device of a network's engine (NumPy on the CPU for networks
    that are not gpuqnn networks)."""
    backend = getattr(network, "_backend", None)
    if backend is None or not getattr(backend, "is_gpu", False):
        return np, torch.device("cpu")
    return backend.xp, torch.device(backend.name)


def to_engine(tensor: torch.Tensor, plan: _Plan) -> Any:
    """A float64 array of the network's array module viewing ``tensor`` (a copy only where the
    device or dtype differs)."""
    data = tensor.detach()
    if data.device != plan.device:
        data = data.to(plan.device)
    if data.dtype != torch.float64:
        data = data.to(torch.float64)
    return plan.xp.from_dlpack(data)


def from_engine(array: Any) -> torch.Tensor:
    """A torch tensor viewing a dense NumPy/CuPy result (a copy only where DLPack cannot share:
    a read-only array, or an array type without DLPack).

    A CuPy array that DLPack cannot share is copied on its device (a new C-contiguous array)
    and shared then, and where torch cannot take that either (no CUDA build), copied to the
    host with ``cupy.asnumpy``: ``np.array`` raises on a CuPy array (CuPy refuses implicit
    host copies)."""
    if hasattr(array, "__dlpack__"):
        try:
            # torch.from_dlpack itself, which torch does not re-export for type checkers
            return torch.utils.dlpack.from_dlpack(array)
        except (BufferError, RuntimeError, TypeError):
            pass
        xp = _cupy_of(array)
        if xp is not None:
            try:
                return torch.utils.dlpack.from_dlpack(xp.array(array, dtype=np.float64))
            except (BufferError, RuntimeError, TypeError):
                return torch.as_tensor(xp.asnumpy(array).astype(np.float64, copy=False))
    return torch.as_tensor(np.array(array, dtype=np.float64))


def _cupy_of(array: Any) -> ModuleType | None:
    """CuPy, where ``array`` is a CuPy array (without importing CuPy otherwise)."""
    root = type(array).__module__.partition(".")[0]
    module = sys.modules.get(root) if root == "cupy" else None
    return module if module is not None and isinstance(array, module.ndarray) else None


def _is_sparse_array(array: Any) -> bool:
    return hasattr(array, "asformat") and hasattr(array, "todense")


def _dense(array: Any) -> torch.Tensor:
    """A dense torch tensor of a network result (dense array or ``sparse`` array)."""
    if _is_sparse_array(array):
        array = array.todense()
    return from_engine(array)


def _sparse_tensor(array: Any) -> torch.Tensor:
    """A torch sparse COO tensor of a ``sparse`` array (its full shape kept)."""
    coo = array.asformat("coo")
    return torch.sparse_coo_tensor(
        torch.as_tensor(np.asarray(coo.coords)),
        torch.as_tensor(np.asarray(coo.data)),
        size=tuple(coo.shape),
        check_invariants=True,
    )


def _flat_counts(jacobian_shape: Sequence[int], num_outputs: int, num_params: int) -> int:
    """Number of samples in a (samples..., outputs..., params) Jacobian."""
    size = int(np.prod(jacobian_shape))
    return size // (num_outputs * num_params) if num_outputs * num_params else 0


_Gradients = tuple[torch.Tensor | None, torch.Tensor | None, None]
"""What backward returns: the gradients of the input, the weights and the plan (none)."""


class _ConnectorFunction(torch.autograd.Function):
    """Autograd function running a neural network's forward and backward passes."""

    @staticmethod
    def forward(
        ctx: Any, input_data: torch.Tensor, weights: torch.Tensor, plan: _Plan
    ) -> torch.Tensor:
        network = plan.network
        if input_data.ndim == 0 or input_data.shape[-1] != network.num_inputs:
            raise QiskitMachineLearningError(
                f"Invalid input dimension! Received {tuple(input_data.shape)} and expected "
                f"input compatible to {network.num_inputs}"
            )
        ctx.plan = plan
        ctx.save_for_backward(input_data, weights)
        ctx.tape = None
        arrays = to_engine(input_data, plan), to_engine(weights, plan)
        if isinstance(network, SimulatorNetwork) and plan.keep_forward:
            # keep the forward sweep for backward's one reverse sweep
            result, ctx.tape = network._forward_for_training(*arrays)
        else:
            result = network.forward(*arrays)
        if plan.sparse:
            if not network.sparse:
                raise RuntimeError(
                    "TorchConnector configured as sparse, the network must be sparse as well"
                )
            output = _sparse_tensor(result)
        else:
            output = _dense(result)
        if plan.out_dtype is not None:
            output = output.to(plan.out_dtype)
        if input_data.ndim == 1:
            output = output[0]
        return output.to(input_data.device)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> _Gradients:
        input_data, weights = ctx.saved_tensors
        plan: _Plan = ctx.plan
        need_input, need_weights = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_input or need_weights):
            return None, None, None
        network = plan.network
        if input_data.ndim > 1 and input_data.shape[:-1].numel() == 0:
            # an empty batch: nothing depends on the weights (or inputs), zero gradients
            # rather than None, so that optimizers and gradient checks see the weights' shape
            zero_input = torch.zeros_like(input_data) if network.input_gradients else None
            return (
                zero_input if need_input else None,
                torch.zeros_like(weights) if need_weights else None,
                None,
            )
        if isinstance(network, SimulatorNetwork):
            return _vjp_gradients(ctx, network, grad_output, input_data, weights, plan)
        input_grad, weight_grad = network.backward(
            to_engine(input_data, plan), to_engine(weights, plan)
        )
        num_outputs = int(np.prod(network.output_shape))
        result_input = result_weights = None
        if need_input and input_grad is not None:
            result_input = _chain(
                grad_output,
                input_grad,
                num_outputs,
                network.num_inputs,
                plan.sparse,
                per_sample=True,
            )
            result_input = _place(result_input, input_data)
        if need_weights and weight_grad is not None:
            result_weights = _chain(
                grad_output,
                weight_grad,
                num_outputs,
                network.num_weights,
                plan.sparse,
                per_sample=False,
            )
            result_weights = _place(result_weights, weights)
        return result_input, result_weights, None


def _vjp_gradients(
    ctx: Any,
    network: SimulatorNetwork,
    grad_output: torch.Tensor,
    input_data: torch.Tensor,
    weights: torch.Tensor,
    plan: _Plan,
) -> _Gradients:
    """The gradients of a gpuqnn network (``plan.network``) from ONE vector-Jacobian product (no
    per-sample Jacobians): what ``backward`` returns for gpuqnn networks, dense or sparse."""
    cotangent = grad_output.to_dense() if grad_output.layout != torch.strided else grad_output
    cotangent = (
        cotangent.detach().to(torch.float64).reshape(-1, *network.output_shape)
        if input_data.ndim == 1
        else cotangent.detach().to(torch.float64)
    )
    tape, ctx.tape = ctx.tape, None  # a tape serves one reverse sweep
    input_grad, weight_grad = network._vjp(
        to_engine(input_data, plan), to_engine(weights, plan), to_engine(cotangent, plan), tape
    )
    results: list[torch.Tensor | None] = []
    for needed, grad, like in (
        (ctx.needs_input_grad[0], input_grad, input_data),
        (ctx.needs_input_grad[1], weight_grad, weights),
    ):
        if not needed or grad is None:
            results.append(None)
            continue
        tensor = from_engine(grad)
        results.append(_place(tensor.to_sparse() if plan.sparse else tensor, like))
    return results[0], results[1], None


def _chain(
    grad_output: torch.Tensor,
    jacobian: Any,
    num_outputs: int,
    num_params: int,
    sparse: bool,
    per_sample: bool,
) -> torch.Tensor:
    """Vector-Jacobian product of the output gradient with a network Jacobian.

    Args:
        grad_output: gradient by the output, shape (samples..., outputs...) or (outputs...)
            for a 1-D input.
        jacobian: network Jacobian (samples..., outputs..., params) float64, dense or sparse.
        num_outputs: O, the number of outputs per sample.
        num_params: N, the number of inputs or weights.
        sparse: whether to return a sparse tensor (sparse connector).
        per_sample: True for the input gradient (samples, N); False for the weight gradient (N,).

    Returns:
        The gradient, shape (samples, N) or (N,), float64.
    """
    samples = _flat_counts(jacobian.shape, num_outputs, num_params)
    if sparse:
        import sparse as sparse_lib  # noqa: PLC0415 - optional, required by sparse networks

        if grad_output.layout == torch.sparse_coo:
            grad_output = grad_output.detach().coalesce().cpu()
            grad = sparse_lib.COO(
                grad_output.indices().numpy(),
                grad_output.values().to(torch.float64).numpy(),
                shape=tuple(grad_output.shape),
            )
        else:
            grad = sparse_lib.COO.from_numpy(grad_output.detach().to(torch.float64).cpu().numpy())
        jac = sparse_lib.COO(jacobian.asformat("coo")).reshape((samples, num_outputs, num_params))
        grad = grad.reshape((samples, num_outputs))
        out = sparse_lib.einsum("bo,bon->bn" if per_sample else "bo,bon->n", grad, jac)
        return _sparse_tensor(sparse_lib.COO(out))
    jac = _dense(jacobian).reshape(samples, num_outputs, num_params)
    if grad_output.layout != torch.strided:
        grad_output = grad_output.to_dense()
    grad = grad_output.detach().to(device=jac.device, dtype=torch.float64)
    grad = grad.reshape(samples, num_outputs)
    return torch.einsum("bo,bon->bn" if per_sample else "bo,bon->n", grad, jac)


def _place(gradient: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The gradient in the shape, dtype and device of the tensor it belongs to (a sparse
    gradient stays sparse where its shape already matches, as for 2-D inputs)."""
    if gradient.layout != torch.strided and gradient.shape != like.shape:
        gradient = gradient.to_dense()
    if gradient.layout == torch.strided:
        gradient = gradient.reshape(like.shape)
    dtype = like.dtype if like.is_floating_point() else gradient.dtype
    return gradient.to(device=like.device, dtype=dtype)


class TorchConnector(_QmlTorchConnector):
    """Drop-in replacement for qiskit-machine-learning's ``TorchConnector``.

    Same arguments, defaults and behaviour as
    :class:`qiskit_machine_learning.connectors.TorchConnector` (a ``weight`` parameter drawn
    uniformly from [-1, 1] unless ``initial_weights`` is given, the batch axis dropped for a 1-D
    input, sparse output for sparse networks, the same error types), for any qiskit-machine-learning
    network, gpuqnn's or not. Additions:

    - Tensors reach the network through DLPack: a float64 CPU tensor without a copy, a CUDA
      tensor without leaving the device when the network's engine runs on that device. A tensor
      on another device than the engine's is moved to the engine's device (a CUDA tensor with
      a CPU network goes to the host); results come back on the input's device.
    - ``dtype`` (keyword-only): ``None`` (default) keeps qiskit-machine-learning's float32 weight
      and outputs (sparse outputs stay float64, as there); ``"input"`` returns outputs in the
      input tensor's floating dtype (the weight's dtype for no or integer input), with the weight
      created in ``torch.get_default_dtype()`` like ``torch.nn`` layers; a torch floating dtype
      (or its name, e.g. ``"float64"``) sets the weight's and the outputs' dtype. Gradients always
      come in the dtype of the tensor they belong to. The network itself computes in float64.
    - A ``UserWarning`` (once per connector) when the input requires grad but the network has
      ``input_gradients=False``: no gradient would reach the layers before the network.
    - Inputs with several batch axes and multi-dimensional ``output_shape`` get correctly shaped
      gradients.

    Args:
        neural_network: the network. Set ``input_gradients=True`` on it for gradients to flow to
            the layers before it.
        initial_weights: (num_weights,) initial weights; None draws them uniformly from [-1, 1]
            (float32 draws, as qiskit-machine-learning, so a seed gives the same start).
        sparse: whether to return sparse tensors; None follows the network.
        dtype: None, ``"input"`` or a torch floating dtype (see above).

    Raises:
        QiskitMachineLearningError: ``sparse=True`` with a network that is not sparse.
        ValueError: ``initial_weights`` of the wrong size, or an invalid ``dtype``.
    """

    def __init__(
        self,
        neural_network: NeuralNetwork,
        initial_weights: np.ndarray | torch.Tensor | None = None,
        sparse: bool | None = None,
        *,
        dtype: torch.dtype | str | None = None,
    ) -> None:
        checked_dtype = _check_dtype(dtype)
        initial = None
        if initial_weights is not None:
            initial = torch.as_tensor(
                initial_weights.detach()
                if isinstance(initial_weights, torch.Tensor)
                else np.asarray(initial_weights, dtype=float)
            )
            if initial.numel() != neural_network.num_weights:
                raise ValueError(
                    f"initial_weights must hold num_weights={neural_network.num_weights} "
                    f"values, got shape {tuple(initial.shape)}"
                )
        # the parent draws its uniform(-1, 1) float32 weights only when none are given
        super().__init__(
            neural_network,
            initial_weights=None if initial is None else np.zeros(neural_network.num_weights),
            sparse=sparse,
        )
        self._dtype = checked_dtype
        weight_dtype = (
            torch.float32
            if checked_dtype is None
            else torch.get_default_dtype()
            if checked_dtype == "input"
            else checked_dtype
        )
        source = self._weights.data if initial is None else initial.reshape(-1)
        self._weights.data = source.to(weight_dtype).clone()
        self._warned_input_gradients = False

    @property
    def dtype(self) -> torch.dtype | str | None:
        """The dtype option: None (float32), ``"input"`` or a torch dtype."""
        return self._dtype

    def _output_dtype(self, input_data: torch.Tensor) -> torch.dtype | None:
        if self._dtype is None:
            return None if self._sparse else torch.float32
        if self._dtype == "input":
            return input_data.dtype if input_data.is_floating_point() else self._weights.dtype
        return self._dtype

    def forward(self, input_data: torch.Tensor | None = None) -> torch.Tensor:
        """Forward pass.

        Args:
            input_data: (..., num_inputs) input tensor; a 1-D tensor is one sample (the output
                then has no batch axis). None for a network without inputs.

        Returns:
            (..., *output_shape) output tensor on the input's device, in the dtype chosen by
            the ``dtype`` option.

        Raises:
            QiskitMachineLearningError: the input's last dimension is not ``num_inputs``.
        """
        from .distributed import check_shared_weights  # noqa: PLC0415 - warns on a shared weight

        check_shared_weights(self)
        network = self._neural_network
        if input_data is None:
            input_data = torch.zeros(0, dtype=self._weights.dtype, device=self._weights.device)
        if (
            input_data.requires_grad
            and torch.is_grad_enabled()
            and not network.input_gradients
            and network.num_inputs > 0
            and not self._warned_input_gradients
        ):
            self._warned_input_gradients = True
            warnings.warn(
                "TorchConnector: the input requires grad, but the network was built with "
                "input_gradients=False, so no gradient reaches the input and the layers before "
                "the network will not train. Build the network with input_gradients=True "
                "(or set network.input_gradients = True).",
                UserWarning,
                stacklevel=2,
            )
        xp, device = engine_location(network)
        keep = torch.is_grad_enabled() and (input_data.requires_grad or self._weights.requires_grad)
        plan = _Plan(network, bool(self._sparse), self._output_dtype(input_data), xp, device, keep)
        output: torch.Tensor = _ConnectorFunction.apply(input_data, self._weights, plan)
        return output

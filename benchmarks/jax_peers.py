"""The JAX peers: TensorCircuit-ng on JAX and PennyLane ``default.qubit`` on JAX, behind the
:class:`~benchmarks.runners.Runner` protocol.

- ``tensorcircuit-jax`` (complex128) and ``tensorcircuit-jax-c64`` (complex64):
  TensorCircuit-ng with ``tc.set_backend("jax")``, the workload translated gate by gate
  (:mod:`benchmarks.tensorcircuit_circuit`) into a function of one sample, ``jax.vmap``-ed over
  the batch and ``jax.jit``-ed. Their ``backward`` returns per-sample Jacobians from
  ``jax.vmap(jax.jacrev(f))`` (:data:`~benchmarks.runners.JACOBIAN`); built with
  ``gradients=VJP`` (the training-step benchmark), one ``jax.vjp`` of the batched outputs with
  the fixed cotangent instead.
- ``pennylane-jax``: PennyLane ``default.qubit``, ``interface="jax"``, ``diff_method="backprop"``,
  the inputs broadcast over the batch (as ``pennylane-backprop``), ``jax.jit``-ed; its backward
  is one ``jax.vjp`` (:data:`~benchmarks.runners.VJP`), complex128.

Every function is compiled ahead of time (``jax.jit(f).lower(*args).compile()``) on the first
call with a given shape; that time is kept apart in :attr:`JaxRunner.compile_seconds` (tracing
plus XLA's compile) and the steady-state calls run the compiled executable. Results are
brought back as NumPy arrays, which waits for them. ``jax_enable_x64`` is switched on (JAX
computes in 32 bits otherwise): the complex64 peer passes float32 arrays and traces under
TensorCircuit-ng's dtype set to complex64 (:func:`tensorcircuit_dtype`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import numpy as np

from benchmarks.measure import vjp_cotangent
from benchmarks.runners import JACOBIAN, VJP, Gradients, Options, Runner, Unsupported
from benchmarks.workloads import QNNSpec


def jax_x64() -> Any:
    """The ``jax`` module with 64-bit types enabled (idempotent)."""
    import jax  # noqa: PLC0415 - optional peer

    jax.config.update("jax_enable_x64", True)
    return jax


class JaxRunner:
    """A network as JAX functions, compiled ahead of time per pass and shape.

    Args:
        batched: ``(x (B, I), w (W,)) -> (B, O)`` outputs, a JAX function.
        single: ``(x (I,), w (W,)) -> (O,)`` outputs of one sample, for per-sample Jacobians
            (None: VJP only).
        num_outputs: O, outputs per sample.
        gradients: :data:`JACOBIAN` (needs ``single``) or :data:`VJP`.
        real_dtype: dtype of the inputs, weights and cotangent passed in (float64, float32).
        label: what :meth:`describe` says.
    """

    def __init__(
        self,
        batched: Callable[[Any, Any], Any],
        single: Callable[[Any, Any], Any] | None,
        num_outputs: int,
        gradients: str,
        real_dtype: type,
        label: str,
    ) -> None:
        if gradients == JACOBIAN and single is None:
            raise ValueError("per-sample Jacobians need the function of one sample")
        self.jax = jax_x64()
        self.batched = batched
        self.single = single
        self.num_outputs = num_outputs
        self.gradients = gradients
        self.real_dtype = real_dtype
        self.label = label
        self.compile_seconds: dict[str, float] = {}
        """Pass name -> seconds of its latest ahead-of-time compile (trace + XLA)."""
        self._compiled: dict[tuple, Any] = {}

    def _call(self, name: str, fn: Callable[..., Any], *args: np.ndarray) -> Any:
        """Run ``fn`` compiled for these argument shapes (compiling it first, timed)."""
        args = tuple(np.asarray(a, dtype=self.real_dtype) for a in args)
        key = (name, *((a.shape, a.dtype.str) for a in args))
        compiled = self._compiled.get(key)
        if compiled is None:
            start = time.perf_counter()
            compiled = self.jax.jit(fn).lower(*args).compile()
            self.compile_seconds[name] = time.perf_counter() - start
            self._compiled[key] = compiled
        return compiled(*args)

    def forward(self, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """(B, O) outputs."""
        return np.asarray(self._call("forward", self.batched, inputs, weights))

    def backward(self, inputs: np.ndarray, weights: np.ndarray, input_gradients: bool) -> Gradients:
        """Per-sample Jacobians ``((B, O, I) or None, (B, O, W))`` (``jacrev``), or one VJP
        ``((B, I) or None, (W,))`` with :func:`~benchmarks.measure.vjp_cotangent`."""
        name = "backward+input_grads" if input_gradients else "backward"
        if self.gradients == JACOBIAN:
            result = self._call(name, self._jacobian(input_gradients), inputs, weights)
        else:
            cotangent = vjp_cotangent((inputs.shape[0], self.num_outputs))
            result = self._call(name, self._vjp(input_gradients), inputs, weights, cotangent)
        input_grads, weight_grads = result
        return (np.asarray(input_grads) if input_gradients else None), np.asarray(weight_grads)

    def _jacobian(self, input_gradients: bool) -> Callable[..., Any]:
        jax = self.jax
        if input_gradients:
            return jax.vmap(jax.jacrev(self.single, argnums=(0, 1)), in_axes=(0, None))

        def weights_only(x: Any, w: Any) -> Any:
            jw = jax.vmap(jax.jacrev(self.single, argnums=1), in_axes=(0, None))(x, w)
            return None, jw

        return weights_only

    def _vjp(self, input_gradients: bool) -> Callable[..., Any]:
        jax = self.jax
        batched = self.batched

        def both(x: Any, w: Any, cotangent: Any) -> Any:
            _out, pullback = jax.vjp(batched, x, w)
            return pullback(cotangent)

        def weights_only(x: Any, w: Any, cotangent: Any) -> Any:
            _out, pullback = jax.vjp(lambda w: batched(x, w), w)
            return None, pullback(cotangent)[0]

        return both if input_gradients else weights_only

    def sync(self) -> None:
        """Nothing to wait for: results come back as NumPy arrays, which waits for them."""

    def describe(self) -> str:
        """What it runs."""
        return self.label


@contextmanager
def tensorcircuit_dtype(dtype: str) -> Iterator[None]:
    """TensorCircuit-ng's dtype (its gates' and circuits') set to ``dtype`` in the block, with
    JAX's 64-bit mode kept on: ``tc.set_dtype`` and ``tc.runtime_dtype`` switch
    ``jax_enable_x64`` off for complex64 (and leave it so on exit), which would turn every
    other peer's float64 arrays into float32."""
    import tensorcircuit as tc  # noqa: PLC0415 - optional peer

    jax = jax_x64()
    old = tc.dtypestr
    tc.set_dtype(dtype)
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        tc.set_dtype(old)
        jax.config.update("jax_enable_x64", True)


def _versions(*names: str) -> str:
    return ", ".join(f"{name} {metadata.version(name)}" for name in names)


def tensorcircuit_runner(
    spec: QNNSpec, dtype: str = "complex128", gradients: str = JACOBIAN
) -> JaxRunner:
    """TensorCircuit-ng on JAX: ``vmap`` of the one-sample function, ``jit``-ed.

    Raises:
        Unsupported: the network cannot be translated (no inputs, an unknown gate).
    """
    jax = jax_x64()
    import tensorcircuit as tc  # noqa: PLC0415 - optional peer

    from benchmarks.tensorcircuit_circuit import sample_function  # noqa: PLC0415

    tc.set_backend("jax")
    try:
        outputs = sample_function(spec)
    except ValueError as exc:
        raise Unsupported(str(exc)) from exc

    def single(x: Any, w: Any) -> Any:
        with tensorcircuit_dtype(dtype):  # read when traced: the dtype of this peer's circuits
            return outputs(x, w)

    style = "jacrev per sample" if gradients == JACOBIAN else "vjp"
    return JaxRunner(
        jax.vmap(single, in_axes=(0, None)),
        single,
        spec.num_outputs,
        gradients,
        np.float32 if dtype == "complex64" else np.float64,
        f"{_versions('tensorcircuit-ng', 'jax')}: jit(vmap), {style}, {dtype}",
    )


def pennylane_jax_runner(spec: QNNSpec, options: Options) -> Runner:
    """PennyLane default.qubit, JAX interface, backprop, broadcast inputs, ``jit``-ed; its
    backward is one VJP.

    Raises:
        Unsupported: the network cannot be translated (no inputs, an unknown gate).
    """
    del options  # on the CPU
    jax = jax_x64()
    import jax.numpy as jnp  # noqa: PLC0415 - optional peer
    import pennylane as qml  # noqa: PLC0415 - optional peer

    from benchmarks.pennylane_circuit import (  # noqa: PLC0415 - needs PennyLane
        interpret_matrix,
        quantum_function,
        stack_outputs,
    )

    try:
        function = quantum_function(spec, jnp)
    except ValueError as exc:
        raise Unsupported(str(exc)) from exc
    qnode = qml.QNode(
        function,
        qml.device("default.qubit", wires=spec.num_qubits),
        interface="jax",
        diff_method="backprop",
    )
    matrix = interpret_matrix(spec)
    num_outputs = spec.num_outputs

    def batched(x: Any, w: Any) -> Any:
        interpret = None if matrix is None else jnp.asarray(matrix)
        return stack_outputs(qnode(x, w), jnp, num_outputs, interpret)

    del jax
    return JaxRunner(
        batched,
        None,
        num_outputs,
        VJP,
        np.float64,
        f"{_versions('pennylane', 'jax')}: default.qubit backprop, broadcast, jit, vjp, complex128",
    )


def tensorcircuit_jax_runner(spec: QNNSpec, options: Options) -> Runner:
    """TensorCircuit-ng + JAX, complex128, per-sample Jacobians by ``jacrev``."""
    del options  # on the CPU
    return tensorcircuit_runner(spec, "complex128", JACOBIAN)


def tensorcircuit_jax_c64_runner(spec: QNNSpec, options: Options) -> Runner:
    """TensorCircuit-ng + JAX, complex64, per-sample Jacobians by ``jacrev``."""
    del options  # on the CPU
    return tensorcircuit_runner(spec, "complex64", JACOBIAN)

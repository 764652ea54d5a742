"""What the JAX peers share: JAX in 64-bit mode and :class:`JaxImplementation`, a network as JAX
functions compiled ahead of time per pass and shape, the compile seconds kept apart."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np

from benchmarks.implementations import JACOBIAN, Gradients
from benchmarks.measure import vjp_cotangent


def jax_x64() -> Any:
    """The ``jax`` module with 64-bit types enabled (idempotent)."""
    import jax  # noqa: PLC0415 - optional peer

    jax.config.update("jax_enable_x64", True)
    return jax


class JaxImplementation:
    """A network as JAX functions (``batched``: ``(B, I), (W,) -> (B, O)``; ``single``: one
    sample's, needed for per-sample Jacobians), compiled ahead of time per pass and shape;
    ``real_dtype`` is the dtype of the arrays passed in."""

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
        self.compile_seconds: dict[str, float] = {}  # pass -> its latest compile's seconds
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
        """Per-sample Jacobians (``jacrev``), or one VJP with ``vjp_cotangent``."""
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
        """Nothing to wait for: results come back as NumPy arrays."""

    def describe(self) -> str:
        """What it runs."""
        return self.label


def versions(*names: str) -> str:
    return ", ".join(f"{name} {metadata.version(name)}" for name in names)

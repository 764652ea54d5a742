"""Shots: exact probabilities turned into the frequencies of a finite number of samples.

A network with ``shots`` samples its forward outputs and every row of its parameter-shift
backward pass from the exact probabilities. With a seed, each call draws from a fresh generator
seeded alike, so the same call repeats its result, like qiskit's ``StatevectorSampler(seed=...)``
and gpuqnn's own ``Sampler``; without one, every call draws fresh entropy.

Shapes: R rows, O outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .backend import Backend


class OutputSampler(Protocol):
    """Maps exact outputs to sampled or noisy ones, one fresh map per network call."""

    def for_call(self) -> Callable[[Any], Any]:
        """A map of (R, O) exact outputs on the backend to sampled ones, for one call."""
        ...


class ShotSampler:
    """Samples ``shots`` outcomes per row.

    Args:
        shots: outcomes per row (checked at the boundary).
        seed: None, a non-negative int or a NumPy ``Generator``. A Generator is used as it
            is, so calls then continue its stream instead of repeating.
        backend: where the probabilities live (sampling itself runs on the host).
    """

    def __init__(self, shots: int, seed: Any, backend: Backend) -> None:
        self.shots = shots
        self.seed = seed
        self.backend = backend

    def for_call(self) -> Callable[[Any], Any]:
        """A sampler for one network call: every use within the call continues one stream
        (forward rows, then each chunk of shifted rows in turn), starting afresh per call."""
        rng = np.random.default_rng(self.seed)

        def sample(probabilities: Any) -> Any:
            return self.backend.asarray(self._frequencies(self.backend.to_host(probabilities), rng))

        return sample

    def _frequencies(self, probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(R, O) exact probabilities -> (R, O) frequencies of ``shots`` samples per row; the
        probability of no output (an ``interpret`` that drops outcomes) is sampled too."""
        probs = np.clip(probabilities, 0.0, 1.0)
        rest = np.clip(1.0 - probs.sum(axis=1, keepdims=True), 0.0, 1.0)
        pvals = np.concatenate([probs, rest], axis=1)
        pvals /= pvals.sum(axis=1, keepdims=True)
        counts = rng.multinomial(self.shots, pvals)
        return counts[:, :-1] / self.shots


def _restarts(seed: Any) -> bool:
    """Whether qiskit's reference primitives restart ``seed``'s stream for every pub or circuit:
    an int seed does (``numpy.random.default_rng(seed)`` each time); a Generator continues its
    stream, and None draws fresh entropy."""
    return seed is not None and not isinstance(seed, np.random.Generator)


class ReferenceShots(ShotSampler):
    """Samples ``shots`` outcomes per row the way qiskit's ``StatevectorSampler(seed=...)`` does.

    qiskit seeds every bound circuit alike (``Statevector.seed(seed)``) and draws its outcomes
    with ``Generator.choice``: ``shots`` uniforms against the outcomes' cumulative
    probabilities. So with an int seed every row (forward rows and each shifted row of a
    gradient) uses the same uniforms, drawn from a fresh ``default_rng(seed)``; a Generator
    continues its stream row after row, and None draws fresh entropy on every call.

    Args:
        shots: outcomes per row.
        seed: None, a non-negative int or a NumPy ``Generator``.
        backend: where the probabilities live (sampling itself runs on the host).
    """

    def for_call(self) -> Callable[[Any], Any]:
        """A sampler for one network call: (R, O) exact probabilities on the backend to the
        (R, O) frequencies of ``shots`` outcomes per row."""
        rng = None if _restarts(self.seed) else np.random.default_rng(self.seed)

        def sample(probabilities: Any) -> Any:
            probs = self.backend.to_host(probabilities)
            generator = np.random.default_rng(self.seed) if rng is None else rng
            return self.backend.asarray(self._drawn(probs, generator, rng is None))

        return sample

    def _drawn(
        self, probabilities: np.ndarray, rng: np.random.Generator, shared: bool
    ) -> np.ndarray:
        """(R, O) probabilities -> (R, O) frequencies; ``shared``: one set of uniforms for
        every row (an int seed), else one per row in turn."""
        rows = probabilities.shape[0]
        probs = np.clip(probabilities, 0.0, 1.0)
        rest = np.clip(1.0 - probs.sum(axis=1, keepdims=True), 0.0, 1.0)
        cdf = np.cumsum(np.concatenate([probs, rest], axis=1), axis=1)
        cdf /= cdf[:, -1:]  # as Generator.choice normalises
        if shared:
            uniforms = np.sort(rng.random(self.shots))
            below = np.searchsorted(uniforms, cdf.ravel(), side="left").reshape(cdf.shape)
        else:
            # each row's uniforms, offset by 2 per row so that one sorted search serves all
            offset = 2.0 * np.arange(rows)[:, None]
            uniforms = np.sort(rng.random((rows, self.shots)), axis=1) + offset
            below = np.searchsorted(uniforms.ravel(), (cdf + offset).ravel(), side="left")
            below = below.reshape(cdf.shape) - self.shots * np.arange(rows)[:, None]
        counts = np.diff(below, axis=1, prepend=0)
        return counts[:, :-1] / self.shots


class GaussianNoise:
    """Adds N(0, precision**2) to every expectation value, as qiskit's
    ``StatevectorEstimator(seed=...)`` does at a non-zero precision.

    qiskit draws one normal per value, pub after pub, from ``default_rng(seed)`` made afresh for
    every pub. A network's forward pass is one pub per observable over the rows, so with an int
    seed every observable's column gets the same draws (``per_output_pubs``); a Generator
    continues its stream (observable after observable), and None draws fresh entropy. A
    gradient's pubs are single shifted evaluations: there, with an int seed, every evaluation
    gets the same draw and the noise cancels, which the networks serve as exact gradients.

    Args:
        precision: the standard deviation p > 0.
        seed: None, a non-negative int or a NumPy ``Generator``.
        backend: where the values live (the draws run on the host).
        per_output_pubs: the rows of each output are one pub (a forward pass).
    """

    def __init__(
        self, precision: float, seed: Any, backend: Backend, per_output_pubs: bool = True
    ) -> None:
        self.precision = precision
        self.seed = seed
        self.backend = backend
        self.per_output_pubs = per_output_pubs

    def for_call(self) -> Callable[[Any], Any]:
        """A map of (R, O) exact values on the backend to noisy ones, for one network call."""
        rng = None if _restarts(self.seed) else np.random.default_rng(self.seed)

        def noisy(values: Any) -> Any:
            exact = self.backend.to_host(values)
            rows, outputs = exact.shape
            draws: np.ndarray
            if rng is None:  # every pub restarts the stream: each column gets the same draws
                draws = np.random.default_rng(self.seed).standard_normal((rows, 1))
            elif self.per_output_pubs:
                draws = rng.standard_normal((outputs, rows)).T
            else:
                draws = rng.standard_normal((rows, outputs))
            return self.backend.asarray(exact + self.precision * draws)

        return noisy

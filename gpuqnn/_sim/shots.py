"""Shots: exact probabilities turned into the frequencies of a finite number of samples.

A network with ``shots`` samples its forward outputs and every row of its parameter-shift
backward pass from the exact probabilities. With a seed, each call draws from a fresh generator
seeded alike, so the same call repeats its result, like qiskit's ``StatevectorSampler(seed=...)``
and gpuqnn's own ``Sampler``; without one, every call draws fresh entropy.

Shapes: R rows, O outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .backend import Backend


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

"""Which user-supplied primitives and gradients the simulator can stand in for.

The simulator computes exact statevector results. It serves a network when the primitives the
user passed (or the defaults) would compute those same exact values, and when they are qiskit's
reference primitives in their noisy modes, whose statistics it reproduces from the exact values
(:func:`estimator_route`, :func:`sampler_route`): ``StatevectorEstimator`` at a precision p
(exact values plus N(0, p**2)), ``StatevectorSampler`` with its shots. Anything else (hardware,
Aer or other noisy simulators, subclasses, stochastic gradients) runs through
qiskit-machine-learning's code, and the :class:`Route` says why. gpuqnn's own primitives count
as exact in their exact modes (``Estimator`` with ``default_precision=0``, ``Sampler`` with
``shots=None``), as do its gradients over them; in their noisy or shot modes the network calls
them like any other primitive.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
from qiskit.primitives import StatevectorEstimator, StatevectorSampler
from qiskit_machine_learning.gradients import (
    LinCombEstimatorGradient,
    LinCombSamplerGradient,
    ParamShiftEstimatorGradient,
    ParamShiftSamplerGradient,
)

from ._aer_noise import AerEstimator, aer_estimator
from .primitives._exactness import exact_estimator, exact_sampler
from .primitives.gradients import EstimatorGradient, SamplerGradient

__all__ = [
    "Noise",
    "Route",
    "estimator_route",
    "sampler_route",
    "exact_estimator",
    "exact_estimator_gradient",
    "exact_sampler",
    "exact_sampler_gradient",
]


def exact_estimator_gradient(gradient: Any) -> bool:
    """Whether ``gradient`` is an exact analytic gradient over an exact estimator."""
    if type(gradient) in (ParamShiftEstimatorGradient, EstimatorGradient):
        return exact_estimator(gradient._estimator, 0.0)
    if type(gradient) is LinCombEstimatorGradient:
        return (
            exact_estimator(gradient._estimator, 0.0)
            and getattr(gradient._derivative_type, "name", "") == "REAL"
        )
    return False


def exact_sampler_gradient(gradient: Any) -> bool:
    """Whether ``gradient`` is an exact analytic gradient over an exact sampler."""
    if type(gradient) in (ParamShiftSamplerGradient, LinCombSamplerGradient, SamplerGradient):
        return exact_sampler(gradient._sampler)
    return False


FAST_PATH = (
    "for gpuqnn's fast path, pass qiskit's StatevectorEstimator/StatevectorSampler (or "
    "gpuqnn.primitives.Estimator/Sampler), or leave the primitive and the gradient unset"
)
"""How to get the simulator to serve a network, for the messages of a delegating one."""


@dataclass(frozen=True)
class Noise:
    """What a reference primitive adds to exact outputs.

    Attributes:
        kind: ``"gaussian"`` (``StatevectorEstimator``: N(0, value**2) per expectation value)
            or ``"shots"`` (``StatevectorSampler``: frequencies of ``value`` outcomes).
        value: the precision, or the number of shots.
        seed: the primitive's seed (None, an int or a NumPy Generator).
    """

    kind: str
    value: float
    seed: Any


@dataclass(frozen=True)
class Route:
    """Which passes of a network the simulator serves, and the noise each adds.

    Attributes:
        forward: whether the simulator serves forward passes.
        backward: whether it serves backward passes (never without ``forward``).
        forward_noise: what the forward outputs get; None for exact values.
        backward_noise: what each shifted evaluation of a gradient gets (parameter shift on
            noisy rows); None for exact gradients.
        reason: why a pass is delegated to qiskit-machine-learning's code ("" if none is).
        noise_model: the qiskit-aer noise model of an exact qiskit-aer estimator the simulator
            stands in for (it then simulates that model), or None.
    """

    forward: bool
    backward: bool
    forward_noise: Noise | None = None
    backward_noise: Noise | None = None
    reason: str = ""
    noise_model: Any = None


def _reference(primitive: Any, kind: type, name: str) -> str:
    """Why ``primitive`` is not a reference primitive of exactly ``kind`` whose seed gpuqnn can
    reproduce ("" if it is)."""
    if type(primitive) is not kind:
        what = (
            f"a subclass of {kind.__name__}"
            if isinstance(primitive, kind)
            else f"neither exact nor qiskit's {kind.__name__}"
        )
        return (
            f"the {name} {type(primitive).__name__} is {what}: gpuqnn reproduces only exact "
            f"primitives and qiskit's {kind.__name__} itself"
        )
    seed = getattr(primitive, "seed", None)
    if not _reproducible_seed(seed):
        return (
            f"the {name} {kind.__name__}'s seed {seed!r} is not None, a non-negative int or a "
            "NumPy Generator, which gpuqnn cannot reproduce"
        )
    return ""


def _reproducible_seed(seed: Any) -> bool:
    if seed is None or isinstance(seed, np.random.Generator):
        return True
    return isinstance(seed, Integral) and not isinstance(seed, bool) and int(seed) >= 0


def _valid_number(value: Any, positive_int: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, Real):
        return False
    if positive_int:
        return isinstance(value, Integral) and int(value) > 0
    return bool(np.isfinite(float(value))) and float(value) >= 0


def _gradient_reason(gradient: Any, base: type, attribute: str, primitive: Any, name: str) -> str:
    """Why ``gradient`` is not qiskit-machine-learning's parameter shift over ``primitive``."""
    if type(gradient) is base and getattr(gradient, attribute, None) is primitive:
        return ""
    return (
        f"the gradient {type(gradient).__name__} over the noisy {name} is not "
        f"{base.__name__} over that same {name}, whose statistics gpuqnn reproduces"
    )


def estimator_route(estimator: Any, precision: Any, gradient: Any) -> Route:
    """The route of an EstimatorQNN with ``estimator``, its ``default_precision`` and
    ``gradient``.

    qiskit-machine-learning runs the forward pass with ``precision`` (the estimator's own
    ``default_precision`` where it is None) and its parameter-shift gradient with the
    estimator's ``default_precision``, one pub per shifted evaluation.
    """
    if exact_estimator(estimator, precision):
        if exact_estimator_gradient(gradient):
            return Route(True, True)
        reason = f"the gradient {type(gradient).__name__} is not an exact gradient"
        return Route(True, False, reason=reason)
    aer = aer_estimator(estimator)
    if aer is not None:
        return _aer_route(aer, estimator, precision, gradient)
    reason = _reference(estimator, StatevectorEstimator, "estimator")
    resolved = estimator.default_precision if precision is None and not reason else precision
    if not reason and not _valid_number(resolved):
        reason = f"the precision {resolved!r} is not a finite number >= 0"
    if reason:
        return Route(False, False, reason=reason)
    seed = estimator.seed
    forward = Noise("gaussian", float(resolved), seed) if float(resolved) else None
    if exact_estimator_gradient(gradient):
        return Route(True, True, forward)
    reason = _gradient_reason(
        gradient, ParamShiftEstimatorGradient, "_estimator", estimator, "estimator"
    )
    if reason:
        return Route(True, False, forward, reason=reason)
    backward_precision = estimator.default_precision
    if not _valid_number(backward_precision):
        reason = f"the estimator's default_precision {backward_precision!r} is not valid"
        return Route(True, False, forward, reason=reason)
    # an int seed restarts the stream for every shifted evaluation: equal draws, which cancel
    exact_gradient = not float(backward_precision) or isinstance(seed, Integral)
    backward = None if exact_gradient else Noise("gaussian", float(backward_precision), seed)
    return Route(True, True, forward, backward)


def _aer_route(aer: AerEstimator, estimator: Any, precision: Any, gradient: Any) -> Route:
    """The route of an EstimatorQNN over a qiskit-aer ``EstimatorV2``: served, with the
    estimator's noise model, where its values are exact (its method, and precision 0)."""
    resolved = estimator.options.default_precision if precision is None else precision
    reason = aer.reason
    if not reason and resolved != 0:
        reason = f"its precision {resolved!r} adds Gaussian noise (pass default_precision=0)"
    if reason:
        reason = f"the qiskit-aer estimator is not exact: {reason}"
        return Route(False, False, reason=reason)
    exact_gradient = exact_estimator_gradient(gradient) or not _gradient_reason(
        gradient, ParamShiftEstimatorGradient, "_estimator", estimator, "estimator"
    )
    if not exact_gradient:
        reason = f"the gradient {type(gradient).__name__} is not an exact gradient"
        if aer.noise_model is not None:  # the gradient's own passes would be noisy: all of them
            return Route(False, False, reason=reason)
    return Route(True, exact_gradient, reason=reason, noise_model=aer.noise_model)


def sampler_route(sampler: Any, gradient: Any) -> Route:
    """The route of a SamplerQNN with ``sampler`` and ``gradient``: qiskit-machine-learning
    runs the forward pass and every shifted evaluation of its parameter-shift gradient with the
    sampler's ``default_shots``."""
    if exact_sampler(sampler):
        if exact_sampler_gradient(gradient):
            return Route(True, True)
        reason = f"the gradient {type(gradient).__name__} is not an exact gradient"
        return Route(True, False, reason=reason)
    reason = _reference(sampler, StatevectorSampler, "sampler")
    shots: Any = getattr(sampler, "default_shots", None)
    if not reason and not _valid_number(shots, positive_int=True):
        reason = f"the sampler's default_shots {shots!r} is not a positive int"
    if reason:
        return Route(False, False, reason=reason)
    noise = Noise("shots", int(shots), sampler.seed)
    reason = _gradient_reason(gradient, ParamShiftSamplerGradient, "_sampler", sampler, "sampler")
    if reason:
        return Route(True, False, noise, reason=reason)
    return Route(True, True, noise, noise)

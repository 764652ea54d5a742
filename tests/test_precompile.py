"""Issue 18, item 8: ``network.precompile()`` compiles ahead the CUDA kernels that the next
forward, backward and training (vector-Jacobian product) passes launch, so that the first timed
step compiles nothing; a no-op on NumPy. Run on the emulated GPU with the host-built kernels."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from gpuqnn import EstimatorQNN
from gpuqnn._internals import simulator_of
from gpuqnn.examples import zz_real_amplitudes

from engines import Emulation, HostKernels

pytestmark = pytest.mark.gpu_logic


def _network(**options) -> EstimatorQNN:
    qc, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    return EstimatorQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
        **options,
    )


def _compiles(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("compiled ")]


def test_precompile_builds_what_the_next_passes_launch(
    kernels: HostKernels, caplog: pytest.LogCaptureFixture
) -> None:
    network = _network(gradient_method="adjoint")
    Emulation(kernels).move(network)
    launcher = simulator_of(network).runner.launcher
    with caplog.at_level(logging.INFO, logger="gpuqnn._cuda.launchers"):
        # the forward kernel, the adjoint kernel of backward, that of training's product
        assert network.precompile() == 3
        assert len(_compiles(caplog)) == 3
        assert network.precompile() == 0  # built: nothing more
        caplog.clear()
        rng = np.random.default_rng(3)
        inputs, weights = rng.uniform(0, np.pi, (4, 2)), rng.uniform(0, np.pi, 4)
        outputs = network.forward(inputs, weights)
        input_grad, weight_grad = network.backward(inputs, weights)
        network.vjp(inputs, weights, np.ones_like(outputs))
        assert _compiles(caplog) == []  # the timed passes compiled nothing
    assert input_grad.shape == (4, 1, 2) and weight_grad.shape == (4, 1, 4)
    assert len(launcher._built) == 3


def test_precompile_under_parameter_shift_builds_the_forward_kernels_only(
    kernels: HostKernels,
) -> None:
    """The forward kernel that reads parameter rows (forward passes) and the one that takes
    (B, K) angles with shifts (the parameter-shift backward); no adjoint kernel."""
    network = _network(gradient_method="parameter_shift")
    Emulation(kernels).move(network)
    assert network.precompile() == 2
    assert network.precompile() == 0


def test_precompile_on_numpy_is_a_no_op_and_checks_its_arguments() -> None:
    network = _network(device="cpu")
    assert network.precompile() == 0
    assert network.precompile(input_gradients=False, training=False) == 0
    with pytest.raises(TypeError, match="input_gradients must be a bool or None, got str"):
        network.precompile(input_gradients="yes")
    with pytest.raises(TypeError, match="training must be a bool, got int"):
        network.precompile(training=1)

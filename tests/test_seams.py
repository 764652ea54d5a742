"""An engine plugs in through the seams alone: a runner built by a factory, with the capabilities
it declares, and nothing in the simulator changed. What it cannot do, the block engine does; a
runner that declares a capability without its methods is refused at construction."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gpuqnn import EstimatorQNN
from gpuqnn._internals import simulator_of, use_backend
from gpuqnn._sim.backend import select_backend
from gpuqnn._sim.protocols import Capability
from gpuqnn._sim.runners import BlockRunner
from gpuqnn.examples import zz_real_amplitudes


class ForwardOnly:
    """A minimal engine: forward passes only (it delegates to the block engine and counts)."""

    description = "forward-only test engine"
    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, circuit: Any, readout: Any) -> None:
        self.inner = BlockRunner(circuit, readout)
        self.forward_rows = 0

    def row_bytes(self) -> int:
        return self.inner.row_bytes()

    def sample_bytes(self) -> int:
        return self.inner.sample_bytes()

    def cost(self, rows_per_block: np.ndarray, rows: int = 1) -> float:
        return self.inner.cost(rows_per_block, rows)

    def forward(self, angles: Any, buffers: Any) -> Any:
        self.forward_rows += angles.shape[0]
        return self.inner.forward(angles, buffers)

    def shifted(self, angles: Any, plan: Any, buffers: Any) -> Any:
        raise AssertionError("a runner without SHIFTED is never asked for shifted rows")


class ClaimsAdjoint(ForwardOnly):
    """Declares ADJOINT but has none of the AdjointRunner methods."""

    capabilities = frozenset({Capability.ADJOINT})


def _network(method: str = "auto") -> EstimatorQNN:
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    return EstimatorQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
        gradient_method=method,
        engine="numpy",  # the block engine's seams
    )


def _data(network: EstimatorQNN) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.uniform(0, np.pi, (6, network.num_inputs)), rng.uniform(0, 1, network.num_weights)


@pytest.mark.parametrize("method", ["adjoint", "parameter_shift"])
def test_a_forward_only_engine_serves_forward_and_the_block_engine_the_rest(method: str) -> None:
    built: list[ForwardOnly] = []

    def factory(circuit: Any, readout: Any, backend: Any, options: Any) -> ForwardOnly:
        built.append(ForwardOnly(circuit, readout))
        return built[-1]

    network, reference = _network(method), _network(method)
    use_backend(network, select_backend("cpu"), factory)
    sim = simulator_of(network)
    assert sim.runner is built[-1]
    assert sim.parameter_shift.runner is sim.engine  # no SHIFTED: the block engine shifts
    assert sim.adjoint.runners == (sim.engine,)  # no ADJOINT: the block engine's adjoint
    x, w = _data(network)
    np.testing.assert_allclose(network.forward(x, w), reference.forward(x, w), atol=1e-12)
    assert built[-1].forward_rows == len(x)
    for got, expected in zip(network.backward(x, w), reference.backward(x, w), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-10)
    assert built[-1].forward_rows == len(x)  # backward never ran through it


def test_a_runner_that_declares_a_capability_without_its_methods_is_refused() -> None:
    def factory(circuit: Any, readout: Any, backend: Any, options: Any) -> ClaimsAdjoint:
        return ClaimsAdjoint(circuit, readout)

    with pytest.raises(TypeError, match="ClaimsAdjoint declares ADJOINT but lacks the methods"):
        use_backend(_network(), select_backend("cpu"), factory)


def test_a_factory_that_returns_no_runner_is_refused() -> None:
    def factory(circuit: Any, readout: Any, backend: Any, options: Any) -> object:
        return object()

    with pytest.raises(TypeError, match="returned object, which lacks the Runner methods"):
        use_backend(_network(), select_backend("cpu"), factory)  # type: ignore[arg-type]


def test_the_block_engine_has_every_capability_but_precompile() -> None:
    sim = simulator_of(_network())
    assert sim.runner is sim.engine
    assert sim.engine.capabilities == frozenset(Capability) - {Capability.PRECOMPILE}
    assert sim.precompile(range(1), True) == 0  # nothing compiles

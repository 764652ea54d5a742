"""Vector-Jacobian products: ``vjp`` on the networks and through ``TorchConnector``, against the
per-sample Jacobians contracted with the cotangent (gpuqnn's and qiskit-machine-learning's)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._internals import simulator_of
from gpuqnn.examples import parity, zz_real_amplitudes

from circuits import layered_network, observables

TOL = {"complex128": 1e-10, "complex64": 2e-4}


def _contracted(network, inputs, weights, cotangent):
    """(input_grad, weight_grad) from ``backward``'s Jacobians contracted with the cotangent."""
    input_jac, weight_jac = network.backward(inputs, weights)
    batch = cotangent.reshape(-1, int(np.prod(network.output_shape))).shape[0]
    g = cotangent.reshape(batch, -1)

    def dense(jac):
        jac = jac.todense() if hasattr(jac, "todense") else jac
        return np.asarray(jac).reshape(batch, g.shape[1], -1)

    input_grad = None if input_jac is None else np.einsum("bo,boi->bi", g, dense(input_jac))
    weight_grad = None if weight_jac is None else np.einsum("bo,bow->w", g, dense(weight_jac))
    return input_grad, weight_grad


def _assert_vjp_matches(network, inputs, weights, atol, rng):
    out = network.forward(inputs, weights)
    out = out.todense() if hasattr(out, "todense") else out
    cotangent = rng.normal(size=out.shape)
    input_grad, weight_grad = network.vjp(inputs, weights, cotangent)
    expected_input, expected_weight = _contracted(network, inputs, weights, cotangent)
    if expected_input is None:
        assert input_grad is None
    else:
        assert input_grad.dtype == np.float64
        np.testing.assert_allclose(
            input_grad.reshape(expected_input.shape), expected_input, rtol=0, atol=atol
        )
    np.testing.assert_allclose(weight_grad, expected_weight, rtol=0, atol=atol)
    return input_grad, weight_grad


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    num_qubits=st.integers(1, 4),
    dtype=st.sampled_from(["complex128", "complex64"]),
    method=st.sampled_from(["adjoint", "parameter_shift", "auto"]),
    input_gradients=st.booleans(),
)
def test_estimator_vjp_equals_the_contracted_jacobian(
    seed: int, num_qubits: int, dtype: str, method: str, input_gradients: bool
) -> None:
    rng = np.random.default_rng(seed)
    qc, x, w = layered_network(seed, num_qubits)
    network = EstimatorQNN(
        circuit=qc,
        observables=observables(num_qubits, rng),
        input_params=x,
        weight_params=w,
        input_gradients=input_gradients,
        dtype=dtype,
        gradient_method=method,
    )
    inputs, weights = rng.uniform(-2, 2, (4, 2)), rng.uniform(-2, 2, 5)
    _assert_vjp_matches(network, inputs, weights, TOL[dtype], rng)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    num_qubits=st.integers(2, 4),
    dtype=st.sampled_from(["complex128", "complex64"]),
    method=st.sampled_from(["adjoint", "parameter_shift", "auto"]),
    interpreted=st.booleans(),
    sparse=st.booleans(),
)
def test_sampler_vjp_equals_the_contracted_jacobian(
    seed: int, num_qubits: int, dtype: str, method: str, interpreted: bool, sparse: bool
) -> None:
    pytest.importorskip("sparse")
    rng = np.random.default_rng(seed)
    qc, x, w = layered_network(seed, num_qubits)
    shape = {"interpret": lambda k: (k % 2, (k >> 1) % 3), "output_shape": (2, 3)}
    network = SamplerQNN(
        circuit=qc,
        input_params=x,
        weight_params=w,
        input_gradients=True,
        dtype=dtype,
        gradient_method=method,
        sparse=sparse,
        **(shape if interpreted else {}),
    )
    inputs, weights = rng.uniform(-2, 2, (3, 2)), rng.uniform(-2, 2, 5)
    _assert_vjp_matches(network, inputs, weights, TOL[dtype], rng)


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_vjp_matches_qiskit_machine_learnings_jacobians(kind: str) -> None:
    """An independent reference: qiskit-machine-learning's own Jacobians, contracted."""
    qc, x, w = layered_network(3, 3)
    rng = np.random.default_rng(3)
    kwargs = {"circuit": qc, "input_params": x, "weight_params": w, "input_gradients": True}
    if kind == "estimator":
        ours, reference = EstimatorQNN(**kwargs), QmlEstimatorQNN(**kwargs)
    else:
        kwargs.update(interpret=parity, output_shape=2)
        ours, reference = SamplerQNN(**kwargs), QmlSamplerQNN(**kwargs)
    inputs, weights = rng.uniform(-2, 2, (3, 2)), rng.uniform(-2, 2, 5)
    cotangent = rng.normal(size=reference.forward(inputs, weights).shape)
    input_grad, weight_grad = ours.vjp(inputs, weights, cotangent)
    expected_input, expected_weight = _contracted(reference, inputs, weights, cotangent)
    np.testing.assert_allclose(input_grad, expected_input, rtol=0, atol=1e-9)
    np.testing.assert_allclose(weight_grad, expected_weight, rtol=0, atol=1e-9)


@pytest.mark.parametrize("shape", [(2,), (3, 2), (2, 3, 2)], ids=str)
def test_vjp_keeps_the_input_shape(shape: tuple[int, ...]) -> None:
    qc, x, w = layered_network(5, 3)
    network = EstimatorQNN(
        circuit=qc,
        observables=observables(3, np.random.default_rng(5)),
        input_params=x,
        weight_params=w,
        input_gradients=True,
    )
    rng = np.random.default_rng(5)
    inputs, weights = rng.uniform(-1, 1, shape), rng.uniform(-1, 1, 5)
    input_grad, _ = _assert_vjp_matches(network, inputs, weights, 1e-10, rng)
    assert input_grad.shape == ((1, 2) if len(shape) == 1 else shape)


def test_vjp_of_a_delegating_network_contracts_the_parents_jacobians() -> None:
    """With a primitive the simulator cannot stand in for, the parent's Jacobians are
    contracted (same seed, same shots: same values as backward)."""
    from qiskit.primitives import StatevectorEstimator  # noqa: PLC0415

    class Delegated(StatevectorEstimator):
        """A subclass: gpuqnn runs qiskit-machine-learning's code with it."""

    qc, x, w = layered_network(6, 2)
    network = EstimatorQNN(
        circuit=qc,
        estimator=Delegated(default_precision=0.0, seed=1),
        input_params=x,
        weight_params=w,
        input_gradients=True,
    )
    assert network.resolved_gradient_method() is None
    rng = np.random.default_rng(6)
    _assert_vjp_matches(network, rng.uniform(-1, 1, (2, 2)), rng.uniform(-1, 1, 5), 1e-9, rng)


def test_bad_cotangents_are_refused_before_any_work() -> None:
    qc, x, w = layered_network(7, 2)
    network = EstimatorQNN(circuit=qc, input_params=x, weight_params=w)
    inputs, weights = np.zeros((3, 2)), np.zeros(5)
    with pytest.raises(ValueError, match=r"cotangent must have the shape of forward's output, "):
        network.vjp(inputs, weights, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="cotangent must be finite"):
        network.vjp(inputs, weights, np.full((3, 1), np.nan))
    with pytest.raises(TypeError, match="cotangent must be an array of real numbers"):
        network.vjp(inputs, weights, "abc")


def test_auto_takes_the_adjoint_for_a_vjp_with_many_outputs() -> None:
    """All 256 probabilities of 8 qubits: per-sample Jacobians are cheaper by parameter shift,
    a vector-Jacobian product by the adjoint (one adjoint state per sample)."""
    qc, feature_map, ansatz = zz_real_amplitudes(8, reps=3)
    network = SamplerQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
    )
    simulator = simulator_of(network)
    columns = range(8 + ansatz.num_parameters)
    assert simulator.method(columns) == "parameter_shift"
    assert simulator.method(columns, vjp=True) == "adjoint"


# ---- TorchConnector (its gradcheck tests in test_torch_connector.py run through the VJP) -------
torch = pytest.importorskip("torch")


def _connector_network(kind: str, input_gradients: bool = True):
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    kwargs = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "input_gradients": input_gradients,
    }
    if kind == "estimator":
        return EstimatorQNN(**kwargs)
    return SamplerQNN(**kwargs, interpret=parity, output_shape=2)


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_the_connector_uses_one_vjp_not_the_jacobians(kind: str, monkeypatch) -> None:
    from gpuqnn import TorchConnector  # noqa: PLC0415

    network = _connector_network(kind)
    model = TorchConnector(network, dtype=torch.float64)
    inputs = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    expected_input, expected_weight = _contracted(
        network,
        inputs.detach().numpy(),
        model.weight.detach().numpy(),
        np.ones((5, *network.output_shape)),
    )

    def no_jacobians(*_args, **_kwargs):
        raise AssertionError("the connector asked for per-sample Jacobians")

    monkeypatch.setattr(network, "backward", no_jacobians)
    model(inputs).sum().backward()
    np.testing.assert_allclose(inputs.grad.numpy(), expected_input, rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.weight.grad.numpy(), expected_weight, rtol=0, atol=1e-10)


# ---- the forward pass kept for the reverse sweep ------------------------------------------------
def _taped_model(kind: str, **options):
    from gpuqnn import TorchConnector  # noqa: PLC0415

    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    kwargs = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "input_gradients": True,
        **options,
    }
    network = EstimatorQNN(**kwargs) if kind == "estimator" else SamplerQNN(**kwargs)
    return network, TorchConnector(network, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_a_training_step_reverses_the_kept_forward_pass(kind: str, monkeypatch) -> None:
    network, model = _taped_model(kind)
    simulator = simulator_of(network)
    inputs = torch.rand(6, 3, dtype=torch.float64, requires_grad=True)
    cotangent = torch.randn(6, *network.output_shape, dtype=torch.float64)
    expected_input, expected_weight = _contracted(
        network, inputs.detach().numpy(), model.weight.detach().numpy(), cotangent.numpy()
    )
    forward_sweeps = []
    monkeypatch.setattr(
        simulator.adjoint, "run", lambda *a, **k: forward_sweeps.append(1) or pytest.fail()
    )
    for _ in range(2):  # the second step reuses the first one's buffers
        inputs.grad = None
        model.zero_grad()
        (model(inputs) * cotangent).sum().backward()
        np.testing.assert_allclose(inputs.grad.numpy(), expected_input, rtol=0, atol=1e-10)
        np.testing.assert_allclose(model.weight.grad.numpy(), expected_weight, rtol=0, atol=1e-10)
    assert not forward_sweeps  # every product was one reverse sweep of a kept forward pass


def test_no_grad_keeps_nothing_and_a_tape_serves_once() -> None:
    network, model = _taped_model("estimator")
    simulator = simulator_of(network)
    calls = []
    original = simulator.forward_taped
    simulator.forward_taped = lambda *a: calls.append(1) or original(*a)
    inputs = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        model(inputs)
    assert not calls
    out = model(inputs)
    assert calls
    loss = out.sum()
    loss.backward(retain_graph=True)
    first = inputs.grad.clone()
    loss.backward()  # the tape is used up: the product sweeps forward again, same values
    np.testing.assert_allclose(inputs.grad.numpy(), 2 * first.numpy(), rtol=0, atol=1e-12)


def test_a_forward_pass_too_large_to_keep_is_recomputed_and_logged(caplog) -> None:
    # the block engine's checkpoints (the native engine keeps only each row's final state)
    network, _ = _taped_model("estimator", max_memory=200_000, engine="numpy")
    simulator = simulator_of(network)
    params = np.random.default_rng(1).uniform(-1, 1, (64, 3 + network.num_weights))
    columns = range(params.shape[1])
    with caplog.at_level("INFO", logger="gpuqnn._sim.simulator"):
        out, tape = simulator.forward_taped(params, columns)
    assert tape is None and "will sweep forward again" in caplog.text
    np.testing.assert_allclose(out, simulator.forward(params), rtol=0, atol=1e-12)


def test_vjp_with_shots_contracts_the_sampled_jacobians() -> None:
    """Shots: the product samples the same shifted rows as ``backward`` (the same seed, the
    same draws), not the exact gradient."""
    qc, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    kwargs = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "input_gradients": True,
    }
    sampled = SamplerQNN(**kwargs, shots=100, seed=1)
    exact = SamplerQNN(**kwargs)
    rng = np.random.default_rng(2)
    inputs, weights = rng.uniform(0, np.pi, (5, 2)), rng.uniform(0, np.pi, ansatz.num_parameters)
    cotangent = rng.normal(size=(5, 4))
    input_grad, weight_grad = sampled.vjp(inputs, weights, cotangent)
    expected_input, expected_weight = _contracted(sampled, inputs, weights, cotangent)
    np.testing.assert_allclose(input_grad, expected_input, rtol=0, atol=1e-12)
    np.testing.assert_allclose(weight_grad, expected_weight, rtol=0, atol=1e-12)
    assert not np.allclose(weight_grad, exact.vjp(inputs, weights, cotangent)[1], atol=1e-3)

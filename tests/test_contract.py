"""qiskit-machine-learning's contract: shapes, None conventions, properties, delegation,
options and errors, each compared with qiskit-machine-learning's own networks."""

from __future__ import annotations

import pickle

import dill
import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter, ParameterVector
from qiskit.primitives import StatevectorEstimator, StatevectorSampler
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_machine_learning.exceptions import QiskitMachineLearningError
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN

from gpuqnn import EstimatorQNN, SamplerQNN

X = ParameterVector("x", 2)
W = ParameterVector("w", 3)


def _circuit() -> QuantumCircuit:
    qc = QuantumCircuit(3)
    qc.ry(X[0], 0)
    qc.rx(2 * X[1], 1)
    qc.cx(0, 2)
    qc.crz(W[0] + X[0], 2, 1)
    qc.ry(W[1] * X[1], 0)
    qc.rzz(W[2], 0, 2)
    qc.h(1)
    return qc


def _parity(bits: int) -> int:
    return bin(bits).count("1") % 2


def _pair(kind: str, **kwargs):
    kwargs.setdefault("circuit", _circuit())
    kwargs.setdefault("input_params", X)
    kwargs.setdefault("weight_params", W)
    if kind == "estimator":
        return EstimatorQNN(**kwargs), QmlEstimatorQNN(**kwargs)
    return SamplerQNN(**kwargs), QmlSamplerQNN(**kwargs)


def _assert_same(ours, ref) -> None:
    if ref is None:
        assert ours is None
        return
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float64
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-9, rtol=0)


def _check(ours, ref, inputs, weights) -> None:
    _assert_same(ours.forward(inputs, weights), ref.forward(inputs, weights))
    for a, b in zip(ours.backward(inputs, weights), ref.backward(inputs, weights), strict=True):
        _assert_same(a, b)


RNG = np.random.default_rng(5)
WEIGHTS = RNG.uniform(-1, 1, 3)
SHAPES = [(2,), (1, 2), (4, 2), (2, 3, 2)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("input_gradients", [False, True])
@pytest.mark.parametrize("kind", ["estimator", "sampler", "sampler-parity", "sampler-tuple"])
def test_shapes_and_values_match_qml(kind: str, input_gradients: bool, shape: tuple) -> None:
    extra = {}
    if kind == "sampler-parity":
        extra = {"interpret": _parity, "output_shape": 2}
    elif kind == "sampler-tuple":
        extra = {"interpret": lambda b: (b % 2, (b >> 1) % 3), "output_shape": (2, 3)}
    elif kind == "estimator":
        extra = {"observables": [SparsePauliOp.from_list([("XYZ", 0.5), ("IZI", -1.0)]),
                                 SparsePauliOp("ZZZ")]}
    ours, ref = _pair(kind.split("-")[0], input_gradients=input_gradients, **extra)
    assert ours.output_shape == ref.output_shape
    _check(ours, ref, RNG.uniform(-2, 2, shape), WEIGHTS)


def test_scalar_input_and_scalar_weight() -> None:
    a = Parameter("a")
    b = Parameter("b")
    qc = QuantumCircuit(1)
    qc.ry(a, 0)
    qc.rx(b, 0)
    for kind in ("estimator", "sampler"):
        ours, ref = _pair(kind, circuit=qc, input_params=[a], weight_params=[b],
                          input_gradients=True)
        _check(ours, ref, 0.3, 0.7)


def test_properties_match_qml() -> None:
    ours, ref = _pair("estimator", observables=SparsePauliOp("ZIX"))
    assert ours.circuit == ref.circuit
    assert list(ours.observables) == list(ref.observables)
    assert list(ours.input_params) == list(ref.input_params)
    assert list(ours.weight_params) == list(ref.weight_params)
    assert (ours.num_inputs, ours.num_weights) == (ref.num_inputs, ref.num_weights)
    assert ours.default_precision == ref.default_precision
    assert ours.input_gradients is False
    ours.input_gradients = True
    assert ours.input_gradients is True
    s_ours, s_ref = _pair("sampler", interpret=_parity, output_shape=2)
    assert s_ours.interpret is s_ref.interpret
    assert s_ours.output_shape == s_ref.output_shape == (2,)
    assert isinstance(ours, QmlEstimatorQNN) and isinstance(s_ours, QmlSamplerQNN)


def test_set_interpret_changes_outputs() -> None:
    ours, ref = _pair("sampler")
    ours.set_interpret(_parity, 2)
    ref.set_interpret(_parity, 2)
    _check(ours, ref, RNG.uniform(-2, 2, (3, 2)), WEIGHTS)


def test_no_inputs_no_weights_conventions() -> None:
    qc = QuantumCircuit(2)
    qc.ry(W[0], 0)
    qc.cx(0, 1)
    for kind in ("estimator", "sampler"):
        ours, ref = _pair(kind, circuit=qc, input_params=None, weight_params=[W[0]],
                          input_gradients=True)
        _check(ours, ref, None, [0.4])
    qc = QuantumCircuit(2)
    qc.ry(X[0], 0)
    qc.ry(X[1], 1)
    for kind in ("estimator", "sampler"):
        ours, ref = _pair(kind, circuit=qc, input_params=X, weight_params=None)
        _check(ours, ref, RNG.uniform(size=(3, 2)), None)  # no weights: gradients None
        ours.input_gradients = ref.input_gradients = True
        _check(ours, ref, RNG.uniform(size=(3, 2)), None)
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    ours, ref = _pair("estimator", circuit=qc, input_params=None, weight_params=None)
    _check(ours, ref, None, None)
    assert ours.backward(None, None) == (None, None)
    # qiskit-machine-learning 0.9.1's SamplerQNN returns zeros for a circuit without
    # parameters; the right answer is the Bell state's distribution
    ours = SamplerQNN(circuit=qc)
    np.testing.assert_allclose(ours.forward(None, None), [[0.5, 0.0, 0.0, 0.5]], atol=1e-12)
    assert ours.backward(None, None) == (None, None)


def test_sparse_output() -> None:
    pytest.importorskip("sparse")
    ours, ref = _pair("sampler", sparse=True, interpret=_parity, output_shape=2,
                      input_gradients=True)
    inputs = RNG.uniform(-2, 2, (3, 2))
    forward = ours.forward(inputs, WEIGHTS)
    assert type(forward).__name__ == "COO"
    np.testing.assert_allclose(forward.todense(), ref.forward(inputs, WEIGHTS).todense(),
                               atol=1e-9)
    for a, b in zip(ours.backward(inputs, WEIGHTS), ref.backward(inputs, WEIGHTS), strict=True):
        np.testing.assert_allclose(a.todense(), b.todense(), atol=1e-9)


def test_own_classical_register_gives_per_sample_probabilities() -> None:
    """qiskit-machine-learning 0.9.1 returns the batch mean in every row here; we do not."""
    qc = QuantumCircuit(QuantumRegister(3), ClassicalRegister(2, "c"))
    qc.compose(_circuit(), inplace=True)
    qc.measure(0, 1)
    qc.measure(2, 0)
    qnn = SamplerQNN(circuit=qc, input_params=X, weight_params=W)
    inputs = RNG.uniform(-2, 2, (3, 2))
    out = qnn.forward(inputs, WEIGHTS)
    assert out.shape == (3, 8)
    for row, x in zip(out, inputs, strict=True):
        values = dict(zip([*X, *W], [*x, *WEIGHTS], strict=True))
        probs = Statevector(_circuit().assign_parameters(values)).probabilities([2, 0])
        np.testing.assert_allclose(row[:4], probs, atol=1e-12)
        np.testing.assert_allclose(row[4:], 0.0, atol=1e-15)


def test_transpiled_circuit_with_layout_matches_qml() -> None:
    from qiskit.providers.fake_provider import GenericBackendV2
    from qiskit.transpiler import generate_preset_pass_manager

    pm = generate_preset_pass_manager(optimization_level=1,
                                      backend=GenericBackendV2(num_qubits=5, seed=3),
                                      seed_transpiler=4)
    ours, ref = _pair("sampler", pass_manager=pm, input_gradients=True)
    _check(ours, ref, RNG.uniform(-2, 2, (2, 2)), WEIGHTS)
    transpiled = pm.run(_circuit())
    observable = SparsePauliOp("ZXY").apply_layout(transpiled.layout)
    ours, ref = _pair("estimator", circuit=transpiled, observables=observable,
                      input_gradients=True)
    _check(ours, ref, RNG.uniform(-2, 2, (2, 2)), WEIGHTS)


def test_non_exact_primitives_delegate_to_qml() -> None:
    ours = SamplerQNN(circuit=_circuit(), input_params=X, weight_params=W,
                      sampler=StatevectorSampler(default_shots=500, seed=7))
    ref = QmlSamplerQNN(circuit=_circuit(), input_params=X, weight_params=W,
                        sampler=StatevectorSampler(default_shots=500, seed=7))
    inputs = RNG.uniform(-2, 2, (3, 2))
    np.testing.assert_array_equal(ours.forward(inputs, WEIGHTS), ref.forward(inputs, WEIGHTS))
    assert "delegating" in repr(ours)
    ours = EstimatorQNN(circuit=_circuit(), input_params=X, weight_params=W,
                        estimator=StatevectorEstimator(seed=7))
    ref = QmlEstimatorQNN(circuit=_circuit(), input_params=X, weight_params=W,
                          estimator=StatevectorEstimator(seed=7))
    np.testing.assert_array_equal(ours.forward(inputs, WEIGHTS), ref.forward(inputs, WEIGHTS))
    exact = EstimatorQNN(circuit=_circuit(), input_params=X, weight_params=W)
    assert np.abs(ours.forward(inputs, WEIGHTS) - exact.forward(inputs, WEIGHTS)).max() > 1e-6


def test_options() -> None:
    inputs = RNG.uniform(-2, 2, (50, 2))
    base = EstimatorQNN(circuit=_circuit(), input_params=X, weight_params=W,
                        input_gradients=True, device="cpu")
    auto = EstimatorQNN(circuit=_circuit(), input_params=X, weight_params=W,
                        input_gradients=True, device="auto")
    assert auto.device == "cpu"  # no GPU on CI
    chunked = EstimatorQNN(circuit=_circuit(), input_params=X, weight_params=W,
                           input_gradients=True, max_memory=4096)
    single = EstimatorQNN(circuit=_circuit(), input_params=X, weight_params=W,
                          input_gradients=True, dtype="complex64")
    expected = base.backward(inputs, WEIGHTS)
    for other, tol in ((auto, 0.0), (chunked, 1e-12), (single, 1e-4)):
        for a, b in zip(other.backward(inputs, WEIGHTS), expected, strict=True):
            np.testing.assert_allclose(a, b, atol=tol, rtol=0)
    assert "complex64" in repr(single) and single.dtype == "complex64"


def test_shots_are_seeded_and_unbiased() -> None:
    def make() -> SamplerQNN:
        return SamplerQNN(circuit=_circuit(), input_params=X, weight_params=W, shots=1000,
                          seed=3)

    inputs = np.tile(RNG.uniform(-2, 2, 2), (200, 1))
    first, second = make().forward(inputs, WEIGHTS), make().forward(inputs, WEIGHTS)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first.sum(axis=1), 1.0)
    np.testing.assert_allclose(first * 1000, np.round(first * 1000), atol=1e-9)
    exact = SamplerQNN(circuit=_circuit(), input_params=X, weight_params=W)
    np.testing.assert_allclose(first.mean(axis=0), exact.forward(inputs[0], WEIGHTS)[0],
                               atol=0.01)
    _, grad = make().backward(inputs[:20], WEIGHTS)
    _, exact_grad = exact.backward(inputs[:1], WEIGHTS)
    np.testing.assert_allclose(grad.mean(axis=0), exact_grad[0], atol=0.05)


@pytest.mark.parametrize("dumps,loads", [(pickle.dumps, pickle.loads), (dill.dumps, dill.loads)])
def test_pickle_round_trip(dumps, loads) -> None:
    inputs = RNG.uniform(-2, 2, (3, 2))
    networks = [
        EstimatorQNN(circuit=_circuit(), input_params=X, weight_params=W, input_gradients=True),
        SamplerQNN(circuit=_circuit(), input_params=X, weight_params=W, interpret=_parity,
                   output_shape=2, input_gradients=True),
    ]
    if dumps is dill.dumps:
        networks.append(SamplerQNN(circuit=_circuit(), input_params=X, weight_params=W,
                                   interpret=lambda b: b % 3, output_shape=3))
    for qnn in networks:
        copy = loads(dumps(qnn))
        np.testing.assert_array_equal(copy.forward(inputs, WEIGHTS), qnn.forward(inputs, WEIGHTS))
        for a, b in zip(copy.backward(inputs, WEIGHTS), qnn.backward(inputs, WEIGHTS),
                        strict=True):
            np.testing.assert_array_equal(a, b)


# ---- bad input --------------------------------------------------------------------------------


def _estimator(**kwargs) -> EstimatorQNN:
    kwargs.setdefault("circuit", _circuit())
    kwargs.setdefault("input_params", X)
    kwargs.setdefault("weight_params", W)
    return EstimatorQNN(**kwargs)


@pytest.mark.parametrize(
    ("inputs", "weights", "error", "match"),
    [
        (np.zeros((2, 3)), WEIGHTS, QiskitMachineLearningError, "input_data"),
        (np.zeros(2), np.zeros(4), ValueError, "weights"),
        (np.array([0.1, np.nan]), WEIGHTS, ValueError, "input_data.*finite"),
        (np.zeros(2), np.array([0.1, np.inf, 0]), ValueError, "weights.*finite"),
        (None, WEIGHTS, ValueError, "input_data"),
        (np.zeros(2), None, ValueError, "weights"),
        ([["a", "b"]], WEIGHTS, TypeError, "input_data"),
    ],
)
def test_bad_forward_arguments(inputs, weights, error, match) -> None:
    qnn = _estimator()
    with pytest.raises(error, match=match):
        qnn.forward(inputs, weights)
    with pytest.raises(error, match=match):
        qnn.backward(inputs, weights)


def test_bad_parameters() -> None:
    stranger = Parameter("stranger")
    with pytest.raises(ValueError, match="stranger"):
        _estimator(input_params=[X[0], X[1], stranger])
    with pytest.raises(ValueError, match=r"w\[0\].*both"):
        _estimator(input_params=[X[0], X[1], W[0]])
    with pytest.raises(ValueError, match=r"w\[2\]"):
        _estimator(weight_params=[W[0], W[1]])
    with pytest.raises(TypeError, match="circuit"):
        EstimatorQNN(circuit="not a circuit")


def test_bad_observables_and_interpret() -> None:
    with pytest.raises(ValueError, match=r"observables\[1\].*2 qubits"):
        _estimator(observables=[SparsePauliOp("ZZZ"), SparsePauliOp("ZZ")])
    with pytest.raises(ValueError, match="interpret"):
        SamplerQNN(circuit=_circuit(), input_params=X, weight_params=W,
                   interpret=lambda b: b, output_shape=4)
    with pytest.raises(QiskitMachineLearningError, match="output shape"):
        SamplerQNN(circuit=_circuit(), input_params=X, weight_params=W, interpret=_parity)


@pytest.mark.parametrize("instruction", ["measure", "reset", "if_else"])
def test_unsupported_instructions_are_named(instruction: str) -> None:
    qc = QuantumCircuit(2, 1)
    qc.ry(X[0], 0)
    if instruction == "measure":
        qc.measure(0, 0)
        qc.rx(X[1], 0)
    elif instruction == "reset":
        qc.reset(1)
        qc.rx(X[1], 1)
    else:
        qc.measure(1, 0)
        with qc.if_test((qc.clbits[0], 1)):
            qc.rx(X[1], 0)
    with pytest.raises(QiskitMachineLearningError, match=instruction):
        EstimatorQNN(circuit=qc, input_params=X)


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [("device", "tpu", ValueError), ("device", "gpu", RuntimeError),
     ("dtype", "float32", ValueError), ("gradient_method", "nope", ValueError),
     ("max_memory", -5, ValueError), ("max_memory", 10, ValueError)],
)
def test_bad_options(option: str, value, error) -> None:
    with pytest.raises(error, match=option.split("_")[0] if option != "device" else "device"):
        _estimator(**{option: value})


def test_bad_shots() -> None:
    with pytest.raises(ValueError, match="shots"):
        SamplerQNN(circuit=_circuit(), input_params=X, weight_params=W, shots=0)

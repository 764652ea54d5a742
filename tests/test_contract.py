"""qiskit-machine-learning's network contract, case by case against its own networks built with
the same arguments (exact default primitives), qiskit's Statevector and finite differences:
shapes, ``None`` conventions, properties, observables, interpret/sparse output, parameter
expressions, delegation to non-exact primitives, gpuqnn's options and the errors for bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter, ParameterVector
from qiskit.circuit.library import real_amplitudes, zz_feature_map
from qiskit.primitives import StatevectorEstimator, StatevectorSampler
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_machine_learning.exceptions import QiskitMachineLearningError
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN

from gpuqnn import EstimatorQNN, SamplerQNN

ATOL = 1e-9  # complex128 against qiskit-machine-learning
OBSERVABLES = [  # several terms, X/Y/Z, real coefficients, on the 3-qubit circuit
    SparsePauliOp.from_list([("XYZ", 0.5), ("IZI", -1.0), ("YYI", 0.25)]),
    SparsePauliOp("ZZZ"),
    SparsePauliOp.from_list([("IIX", 0.75), ("XIX", -2.0)]),
]


def parity(bits: int) -> int:
    return bin(bits).count("1") % 2


def two_digits(bits: int) -> tuple[int, int]:
    return bits % 2, (bits >> 1) % 3


def words(*needles: str) -> str:
    """A ``match`` pattern: every needle somewhere in the message, in any order, any case."""
    return "(?is)" + "".join(f"(?=.*{re.escape(n)})" for n in needles)


def pair(kind: str, **kwargs):
    """gpuqnn's network and qiskit-machine-learning's, from the same arguments."""
    if kind == "estimator":
        return EstimatorQNN(**kwargs), QmlEstimatorQNN(**kwargs)
    return SamplerQNN(**kwargs), QmlSamplerQNN(**kwargs)


def assert_same(ours, ref, atol: float = ATOL) -> None:
    if ref is None:
        assert ours is None
        return
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float64
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=atol)


def check_against(ours, ref, inputs, weights, atol: float = ATOL):
    """Forward and backward of both networks agree; returns ours (forward, (in_grad, w_grad))."""
    forward = ours.forward(inputs, weights)
    assert_same(forward, ref.forward(inputs, weights), atol)
    backward = ours.backward(inputs, weights)
    assert isinstance(backward, tuple) and len(backward) == 2
    for a, b in zip(backward, ref.backward(inputs, weights), strict=True):
        assert_same(a, b, atol)
    return forward, backward


def bind(qnn_circuit, inputs, weights) -> QuantumCircuit:
    qc, x, w = qnn_circuit
    return qc.assign_parameters(dict(zip([*x, *w], [*inputs, *weights], strict=True)))


def has_cuda() -> bool:
    try:
        import cupy  # noqa: PLC0415

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no device: all mean "no GPU"
        return False


RNG = np.random.default_rng(2024)
WEIGHTS = RNG.uniform(-np.pi, np.pi, 3)


def network_kwargs(kind: str, three_qubit) -> tuple[str, dict]:
    base = {
        "circuit": three_qubit.circuit,
        "input_params": three_qubit.inputs,
        "weight_params": three_qubit.weights,
    }
    extra = {
        "estimator": {"observables": OBSERVABLES},
        "estimator-default": {},
        "sampler": {},
        "sampler-parity": {"interpret": parity, "output_shape": 2},
        "sampler-tuple": {"interpret": two_digits, "output_shape": (2, 3)},
    }[kind]
    return kind.split("-")[0], {**base, **extra}


OUTPUT_SHAPES = {
    "estimator": (3,),
    "estimator-default": (1,),
    "sampler": (8,),
    "sampler-parity": (2,),
    "sampler-tuple": (2, 3),
}


# ---- shapes and values ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2,), (1, 2), (5, 2), (2, 3, 2)], ids=str)
@pytest.mark.parametrize("input_gradients", [False, True], ids=["w-grad", "in-grad"])
@pytest.mark.parametrize("kind", list(OUTPUT_SHAPES))
def test_shapes_and_values_match_qml(kind, input_gradients, shape, three_qubit) -> None:
    cls, kwargs = network_kwargs(kind, three_qubit)
    ours, ref = pair(cls, input_gradients=input_gradients, **kwargs)
    output_shape = OUTPUT_SHAPES[kind]
    assert ours.output_shape == ref.output_shape == output_shape
    inputs = RNG.uniform(-2, 2, shape)
    forward, (input_grad, weight_grad) = check_against(ours, ref, inputs, WEIGHTS)
    # a 1-D input is one sample: the batch axis of 1 is kept
    batch = (1,) if len(shape) == 1 else shape[:-1]
    assert forward.shape == (*batch, *output_shape)
    assert weight_grad.shape == (*batch, *output_shape, 3)
    if input_gradients:
        assert input_grad.shape == (*batch, *output_shape, 2)
    else:
        assert input_grad is None


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_scalar_input_and_scalar_weight(kind: str) -> None:
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.ry(a, 0)
    qc.rx(b, 0)
    ours, ref = pair(kind, circuit=qc, input_params=[a], weight_params=[b], input_gradients=True)
    forward, (input_grad, weight_grad) = check_against(ours, ref, 0.3, 0.7)
    width = 1 if kind == "estimator" else 2
    assert forward.shape == (1, width)
    assert input_grad.shape == weight_grad.shape == (1, width, 1)
    # one 1-D sample of one input: still a batch of one
    one, (one_input_grad, _) = check_against(ours, ref, np.array([0.3]), np.array([0.7]))
    assert one.shape == (1, width) and one_input_grad.shape == (1, width, 1)
    np.testing.assert_array_equal(one, forward)
    psi = Statevector(qc.assign_parameters({a: 0.3, b: 0.7}))
    if kind == "estimator":
        expected = psi.expectation_value(SparsePauliOp("Z")).real
    else:
        expected = psi.probabilities()
    np.testing.assert_allclose(forward[0], np.atleast_1d(expected), atol=1e-12)


def test_estimator_values_equal_statevector_expectations(three_qubit) -> None:
    qnn = EstimatorQNN(
        circuit=three_qubit.circuit,
        observables=OBSERVABLES,
        input_params=three_qubit.inputs,
        weight_params=three_qubit.weights,
    )
    inputs = RNG.uniform(-2, 2, (4, 2))
    forward = qnn.forward(inputs, WEIGHTS)
    for row, x in zip(forward, inputs, strict=True):
        psi = Statevector(bind(three_qubit, x, WEIGHTS))
        np.testing.assert_allclose(
            row, [psi.expectation_value(op).real for op in OBSERVABLES], atol=1e-12
        )


def test_sampler_values_equal_statevector_probabilities(three_qubit) -> None:
    qnn = SamplerQNN(
        circuit=three_qubit.circuit,
        input_params=three_qubit.inputs,
        weight_params=three_qubit.weights,
        interpret=two_digits,
        output_shape=(2, 3),
    )
    inputs = RNG.uniform(-2, 2, (4, 2))
    forward = qnn.forward(inputs, WEIGHTS)
    for row, x in zip(forward, inputs, strict=True):
        expected = np.zeros((2, 3))
        for key, p in enumerate(Statevector(bind(three_qubit, x, WEIGHTS)).probabilities()):
            expected[two_digits(key)] += p
        np.testing.assert_allclose(row, expected, atol=1e-12)


# ---- None inputs / weights / parameters ------------------------------------------------------


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
@pytest.mark.parametrize("input_gradients", [False, True], ids=["w-grad", "in-grad"])
def test_circuit_without_inputs_takes_none_inputs(kind, input_gradients) -> None:
    w = ParameterVector("w", 2)
    qc = QuantumCircuit(2)
    qc.ry(w[0], 0)
    qc.cx(0, 1)
    qc.rx(w[1], 1)
    ours, ref = pair(kind, circuit=qc, weight_params=w, input_gradients=input_gradients)
    assert ours.num_inputs == 0
    forward, (input_grad, weight_grad) = check_against(ours, ref, None, [0.4, -1.1])
    width = 1 if kind == "estimator" else 4
    assert forward.shape == (1, width)
    assert input_grad is None  # zero-size input gradients come back as None
    assert weight_grad.shape == (1, width, 2)


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_circuit_without_weights_takes_none_weights(kind: str) -> None:
    x = ParameterVector("x", 2)
    qc = QuantumCircuit(2)
    qc.ry(x[0], 0)
    qc.cx(0, 1)
    qc.rx(x[1], 1)
    ours, ref = pair(kind, circuit=qc, input_params=x)
    inputs = RNG.uniform(-2, 2, (3, 2))
    assert ours.num_weights == 0
    _, backward = check_against(ours, ref, inputs, None)
    assert backward == (None, None)  # input_gradients False and no weights
    ours.input_gradients = ref.input_gradients = True
    _, (input_grad, weight_grad) = check_against(ours, ref, inputs, None)
    assert input_grad.shape == (3, 1 if kind == "estimator" else 4, 2)
    assert weight_grad is None  # zero-size weight gradients come back as None


def test_estimator_circuit_without_parameters() -> None:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    observables = [SparsePauliOp("ZZ"), SparsePauliOp("XX"), SparsePauliOp("ZI")]
    ours, ref = pair("estimator", circuit=qc, observables=observables, input_gradients=True)
    forward, backward = check_against(ours, ref, None, None)
    np.testing.assert_allclose(forward, [[1.0, 1.0, 0.0]], atol=1e-12)
    assert backward == (None, None)


def test_sampler_circuit_without_parameters() -> None:
    """qiskit-machine-learning 0.9.1 returns zeros here; the Bell state's distribution is right."""
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qnn = SamplerQNN(circuit=qc, input_gradients=True)
    forward = qnn.forward(None, None)
    assert forward.shape == (1, 4) and forward.dtype == np.float64
    np.testing.assert_allclose(forward, [Statevector(qc).probabilities()], atol=1e-12)
    assert qnn.backward(None, None) == (None, None)


# ---- properties ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "observables", [None, SparsePauliOp("ZIX"), OBSERVABLES], ids=["default", "single", "list"]
)
def test_estimator_properties_match_qml(observables, three_qubit) -> None:
    kwargs = {
        "circuit": three_qubit.circuit,
        "input_params": three_qubit.inputs,
        "weight_params": three_qubit.weights,
        "observables": observables,
    }
    ours, ref = pair("estimator", **kwargs)
    assert ours.circuit == ref.circuit
    assert ours.observables == ref.observables
    assert ours.input_params == ref.input_params
    assert ours.weight_params == ref.weight_params
    assert (ours.num_inputs, ours.num_weights) == (ref.num_inputs, ref.num_weights) == (2, 3)
    assert ours.output_shape == ref.output_shape
    assert ours.default_precision == ref.default_precision
    assert ours.sparse is ref.sparse is False
    assert ours.input_gradients is ref.input_gradients is False
    inputs = RNG.uniform(-2, 2, (2, 2))
    check_against(ours, ref, inputs, WEIGHTS)
    ours.input_gradients = ref.input_gradients = True
    assert ours.input_gradients is True
    _, (input_grad, _) = check_against(ours, ref, inputs, WEIGHTS)
    assert input_grad is not None
    custom = EstimatorQNN(**kwargs, default_precision=0.01)
    assert (
        custom.default_precision
        == QmlEstimatorQNN(**kwargs, default_precision=0.01).default_precision
    )


def test_default_observable_is_z_on_every_qubit(three_qubit) -> None:
    qnn = EstimatorQNN(
        circuit=three_qubit.circuit,
        input_params=three_qubit.inputs,
        weight_params=three_qubit.weights,
    )
    assert list(qnn.observables) == [SparsePauliOp("ZZZ")]
    inputs = RNG.uniform(-2, 2, 2)
    psi = Statevector(bind(three_qubit, inputs, WEIGHTS))
    np.testing.assert_allclose(
        qnn.forward(inputs, WEIGHTS),
        [[psi.expectation_value(SparsePauliOp("ZZZ")).real]],
        atol=1e-12,
    )


@pytest.mark.parametrize("interpret", [None, parity], ids=["identity", "parity"])
def test_sampler_properties_match_qml(interpret, three_qubit) -> None:
    kwargs = {
        "circuit": three_qubit.circuit,
        "input_params": three_qubit.inputs,
        "weight_params": three_qubit.weights,
        "interpret": interpret,
        "output_shape": 2 if interpret else None,
    }
    ours, ref = pair("sampler", **kwargs)
    assert ours.circuit == ref.circuit
    assert ours.input_params == ref.input_params
    assert ours.weight_params == ref.weight_params
    assert (ours.num_inputs, ours.num_weights) == (ref.num_inputs, ref.num_weights)
    assert ours.output_shape == ref.output_shape == ((2,) if interpret else (8,))
    assert ours.sparse is ref.sparse is False
    if interpret is None:  # qiskit-machine-learning reports an identity function
        assert [ours.interpret(k) for k in range(8)] == [ref.interpret(k) for k in range(8)]
    else:
        assert ours.interpret is ref.interpret is interpret
    ours.input_gradients = ref.input_gradients = True
    assert ours.input_gradients is True
    check_against(ours, ref, RNG.uniform(-2, 2, (2, 2)), WEIGHTS)


def test_networks_subclass_qml() -> None:
    x = Parameter("x")
    qc = QuantumCircuit(1)
    qc.ry(x, 0)
    assert isinstance(EstimatorQNN(circuit=qc, input_params=[x]), QmlEstimatorQNN)
    assert isinstance(SamplerQNN(circuit=qc, input_params=[x]), QmlSamplerQNN)


# ---- SamplerQNN output formats -----------------------------------------------------------------


def test_set_interpret_after_construction(three_qubit) -> None:
    _, kwargs = network_kwargs("sampler", three_qubit)
    ours, ref = pair("sampler", input_gradients=True, **kwargs)
    inputs = RNG.uniform(-2, 2, (3, 2))
    plain = ours.forward(inputs, WEIGHTS)
    plain_grads = ours.backward(inputs, WEIGHTS)
    ours.set_interpret(parity, 2)
    ref.set_interpret(parity, 2)
    assert ours.output_shape == ref.output_shape == (2,)
    forward, grads = check_against(ours, ref, inputs, WEIGHTS)
    odd = np.array([parity(k) for k in range(8)], dtype=bool)
    np.testing.assert_allclose(
        forward, np.stack([plain[:, ~odd].sum(1), plain[:, odd].sum(1)], axis=1), atol=1e-12
    )
    for grad, plain_grad in zip(grads, plain_grads, strict=True):
        np.testing.assert_allclose(grad[:, 1], plain_grad[:, odd].sum(1), atol=1e-12)
    ours.set_interpret(two_digits, (2, 3))
    ref.set_interpret(two_digits, (2, 3))
    forward, _ = check_against(ours, ref, inputs, WEIGHTS)
    assert forward.shape == (3, 2, 3)


@pytest.mark.parametrize("interpret", [None, parity], ids=["identity", "parity"])
def test_sparse_output_matches_qml(interpret, three_qubit) -> None:
    sparse = pytest.importorskip("sparse")
    ours, ref = pair(
        "sampler",
        circuit=three_qubit.circuit,
        input_params=three_qubit.inputs,
        weight_params=three_qubit.weights,
        sparse=True,
        interpret=interpret,
        output_shape=2 if interpret else None,
        input_gradients=True,
    )
    assert ours.sparse is True
    inputs = RNG.uniform(-2, 2, (3, 2))
    forward = ours.forward(inputs, WEIGHTS)
    assert isinstance(forward, sparse.COO)
    np.testing.assert_allclose(
        forward.todense(), ref.forward(inputs, WEIGHTS).todense(), atol=ATOL, rtol=0
    )
    for a, b in zip(ours.backward(inputs, WEIGHTS), ref.backward(inputs, WEIGHTS), strict=True):
        assert isinstance(a, sparse.COO) and a.shape == b.shape
        np.testing.assert_allclose(a.todense(), b.todense(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("interpret", [None, parity], ids=["identity", "parity"])
def test_own_classical_register_gives_each_rows_probabilities(interpret, three_qubit) -> None:
    """qiskit-machine-learning 0.9.1 returns the batch mean in every row here, so the reference
    is the statevector of each row's bound circuit."""
    qc = QuantumCircuit(QuantumRegister(3, "q"), ClassicalRegister(2, "out"))
    qc.compose(three_qubit.circuit, inplace=True)
    qc.measure(1, 0)  # bit 0 of the key: qubit 1; bit 1: qubit 0; qubit 2 unmeasured
    qc.measure(0, 1)
    qnn = SamplerQNN(
        circuit=qc,
        input_params=three_qubit.inputs,
        weight_params=three_qubit.weights,
        interpret=interpret,
        output_shape=2 if interpret else None,
    )
    inputs = RNG.uniform(-2, 2, (4, 2))
    forward = qnn.forward(inputs, WEIGHTS)
    width = 2 if interpret else 2**qc.num_qubits
    assert forward.shape == (4, width)
    for row, x in zip(forward, inputs, strict=True):
        bound = bind((qc, three_qubit.inputs, three_qubit.weights), x, WEIGHTS)
        probs = Statevector(bound.remove_final_measurements(inplace=False)).probabilities_dict(
            qargs=[1, 0]
        )  # key bits: qubit 1 least significant
        expected = np.zeros(width)
        for key, p in probs.items():
            expected[(interpret or (lambda k: k))(int(key, 2))] += p
        np.testing.assert_allclose(row, expected, atol=1e-12)
    assert np.ptp(forward, axis=0).max() > 1e-3  # the rows differ: not a batch mean


def test_transpiled_circuits_match_qml(three_qubit) -> None:
    from qiskit.providers.fake_provider import GenericBackendV2  # noqa: PLC0415
    from qiskit.transpiler import generate_preset_pass_manager  # noqa: PLC0415

    pm = generate_preset_pass_manager(
        optimization_level=1, backend=GenericBackendV2(num_qubits=5, seed=3), seed_transpiler=4
    )
    kwargs = {
        "input_params": three_qubit.inputs,
        "weight_params": three_qubit.weights,
        "input_gradients": True,
    }
    inputs = RNG.uniform(-2, 2, (2, 2))
    ours, ref = pair("sampler", circuit=three_qubit.circuit, pass_manager=pm, **kwargs)
    forward, _ = check_against(ours, ref, inputs, WEIGHTS)
    assert forward.shape == (2, 8)
    transpiled = pm.run(three_qubit.circuit)
    observable = SparsePauliOp("ZXY").apply_layout(transpiled.layout)
    ours, ref = pair("estimator", circuit=transpiled, observables=observable, **kwargs)
    check_against(ours, ref, inputs, WEIGHTS)


# ---- parameter expressions ---------------------------------------------------------------------


def expression_circuit(kind: str):
    x, w = ParameterVector("x", 2), ParameterVector("w", 2)
    qc = QuantumCircuit(2)
    qc.h([0, 1])
    if kind == "reused":
        qc.ry(x[0], 0)
        qc.rz(x[0], 1)
        qc.crx(x[0], 0, 1)
        qc.rx(w[0], 1)
        qc.rzz(x[1], 0, 1)
        qc.ry(w[0], 0)
        qc.ry(w[1], 1)
    elif kind == "scaled":
        qc.ry(2 * x[0], 0)
        qc.rx(-0.5 * x[1], 1)
        qc.cx(0, 1)
        qc.rz(3 * w[0], 1)
        qc.ry(w[1] / 2, 0)
    elif kind == "sum":
        qc.ry(x[0] + w[0], 0)
        qc.rx(x[1] - w[1], 1)
        qc.cx(0, 1)
        qc.ry(x[0] + x[1] + 0.3, 1)
        qc.rz(w[0], 0)
    elif kind == "product":
        qc.ry(x[0] * x[1], 0)
        qc.rx(x[0] * w[0], 1)
        qc.cx(0, 1)
        qc.crz(w[0] * w[1], 0, 1)
        qc.ry(w[1], 0)
    elif kind == "power":
        qc.ry(x[0] ** 2, 0)
        qc.rx(x[1], 1)
        qc.cx(0, 1)
        qc.ry(w[0] ** 2 + x[1], 1)
        qc.rx(w[1] ** 3, 0)
    elif kind == "sin":
        qc.ry(x[0].sin(), 0)
        qc.rx(2 * x[1].cos(), 1)
        qc.cx(0, 1)
        qc.ry(w[0].sin() + w[1], 1)
        qc.rz(w[1], 0)
    elif kind == "zz_feature_map":
        feature_map, ansatz = zz_feature_map(2, reps=1), real_amplitudes(2, reps=1)
        qc.compose(feature_map, inplace=True)
        qc.compose(ansatz, inplace=True)
        return qc, list(feature_map.parameters), list(ansatz.parameters)
    return qc, list(x), list(w)


def finite_difference(qnn, inputs: np.ndarray, weights: np.ndarray, step: float = 1e-6):
    """Central differences of forward, shaped like backward's (input_grad, weight_grad)."""

    def column(which: str, j: int) -> np.ndarray:
        args = {"inputs": inputs, "weights": weights}
        plus, minus = {k: v.copy() for k, v in args.items()}, {k: v.copy() for k, v in args.items()}
        plus[which][..., j] += step
        minus[which][..., j] -= step
        return (
            qnn.forward(plus["inputs"], plus["weights"])
            - qnn.forward(minus["inputs"], minus["weights"])
        ) / (2 * step)

    return (
        np.stack([column("inputs", j) for j in range(inputs.shape[-1])], axis=-1),
        np.stack([column("weights", j) for j in range(weights.shape[-1])], axis=-1),
    )


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
@pytest.mark.parametrize(
    "expression", ["reused", "scaled", "sum", "product", "power", "sin", "zz_feature_map"]
)
def test_parameter_expressions(expression: str, kind: str) -> None:
    qc, x, w = expression_circuit(expression)
    extra = (
        {
            "observables": [
                SparsePauliOp.from_list([("XY", 0.7), ("ZI", -0.3), ("YZ", 0.2)]),
                SparsePauliOp("ZZ"),
            ]
        }
        if kind == "estimator"
        else {}
    )
    ours, ref = pair(
        kind, circuit=qc, input_params=x, weight_params=w, input_gradients=True, **extra
    )
    rng = np.random.default_rng(sum(map(ord, expression)))
    inputs, weights = rng.uniform(-2, 2, (3, len(x))), rng.uniform(-2, 2, len(w))
    _, gradients = check_against(ours, ref, inputs, weights)
    for ours_grad, fd_grad in zip(gradients, finite_difference(ours, inputs, weights), strict=True):
        np.testing.assert_allclose(ours_grad, fd_grad, rtol=0, atol=1e-6)


# ---- qiskit's reference primitives in their noisy modes ----------------------------------------
# gpuqnn serves them with the same statistics; with an int seed it draws what qiskit draws, so the
# values agree up to the exact values' rounding. A subclass (any other primitive) still runs
# qiskit-machine-learning's own code path, unchanged.


class _DelegatedSampler(StatevectorSampler):
    """Not qiskit's StatevectorSampler itself: gpuqnn must step aside."""


class _DelegatedEstimator(StatevectorEstimator):
    """Not qiskit's StatevectorEstimator itself: gpuqnn must step aside."""


def _served_compare(actual: np.ndarray, expected: np.ndarray) -> None:
    """Served with qiskit's own draws: equal up to the exact values' rounding."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sampler", [StatevectorSampler, _DelegatedSampler])
def test_shot_based_sampler_gives_what_qml_gives(sampler, three_qubit) -> None:
    kwargs = {
        "circuit": three_qubit.circuit,
        "input_params": three_qubit.inputs,
        "weight_params": three_qubit.weights,
        "input_gradients": True,
    }
    ours = SamplerQNN(**kwargs, sampler=sampler(default_shots=1000, seed=7))
    ref = QmlSamplerQNN(**kwargs, sampler=StatevectorSampler(default_shots=1000, seed=7))
    served = sampler is StatevectorSampler
    assert (ours.resolved_gradient_method() is not None) is served
    compare = _served_compare if served else np.testing.assert_array_equal
    inputs = RNG.uniform(-2, 2, (3, 2))
    forward = ours.forward(inputs, WEIGHTS)
    expected = ref.forward(inputs, WEIGHTS)
    compare(forward, expected)
    for a, b in zip(ours.backward(inputs, WEIGHTS), ref.backward(inputs, WEIGHTS), strict=True):
        compare(a, b)
    # the reference does sample: it is not the exact distribution
    exact = QmlSamplerQNN(**kwargs).forward(inputs, WEIGHTS)
    assert np.abs(expected - exact).max() > 1e-3


@pytest.mark.parametrize("estimator", [StatevectorEstimator, _DelegatedEstimator])
@pytest.mark.parametrize("precision", [None, 0.05], ids=["default_precision", "precision=0.05"])
def test_noisy_estimator_gives_what_qml_gives(precision, estimator, three_qubit) -> None:
    kwargs = {
        "circuit": three_qubit.circuit,
        "input_params": three_qubit.inputs,
        "weight_params": three_qubit.weights,
        "observables": OBSERVABLES,
        "input_gradients": True,
    }
    if precision is not None:
        kwargs["default_precision"] = precision
    ours = EstimatorQNN(**kwargs, estimator=estimator(seed=7))
    ref = QmlEstimatorQNN(**kwargs, estimator=StatevectorEstimator(seed=7))
    served = estimator is StatevectorEstimator
    assert (ours.resolved_gradient_method() is not None) is served
    compare = _served_compare if served else np.testing.assert_array_equal
    inputs = RNG.uniform(-2, 2, (3, 2))
    forward = ours.forward(inputs, WEIGHTS)
    expected = ref.forward(inputs, WEIGHTS)
    compare(forward, expected)
    for a, b in zip(ours.backward(inputs, WEIGHTS), ref.backward(inputs, WEIGHTS), strict=True):
        compare(a, b)
    exact = QmlEstimatorQNN(**kwargs).forward(inputs, WEIGHTS)
    assert np.abs(expected - exact).max() > 1e-3


# ---- gpuqnn's options --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_device_auto_equals_cpu(kind: str, three_qubit) -> None:
    cls = EstimatorQNN if kind == "estimator" else SamplerQNN
    kwargs = {
        "circuit": three_qubit.circuit,
        "input_params": three_qubit.inputs,
        "weight_params": three_qubit.weights,
        "input_gradients": True,
    }
    auto, cpu = cls(**kwargs, device="auto"), cls(**kwargs, device="cpu")
    inputs = RNG.uniform(-2, 2, (4, 2))
    assert_same(auto.forward(inputs, WEIGHTS), cpu.forward(inputs, WEIGHTS), 1e-12)
    for a, b in zip(auto.backward(inputs, WEIGHTS), cpu.backward(inputs, WEIGHTS), strict=True):
        assert_same(a, b, 1e-12)


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
@pytest.mark.parametrize(
    "options",
    [
        {"gradient_method": "parameter_shift"},
        {"max_memory": "auto"},
        {"max_memory": None},
        {"max_memory": 1 << 30},
    ],
    ids=str,
)
def test_accepted_options_keep_qmls_values(options: dict, kind: str, three_qubit) -> None:
    cls, qml_cls = (
        (EstimatorQNN, QmlEstimatorQNN) if kind == "estimator" else (SamplerQNN, QmlSamplerQNN)
    )
    kwargs = {
        "circuit": three_qubit.circuit,
        "input_params": three_qubit.inputs,
        "weight_params": three_qubit.weights,
        "input_gradients": True,
    }
    check_against(cls(**kwargs, **options), qml_cls(**kwargs), RNG.uniform(-2, 2, (3, 2)), WEIGHTS)


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_complex64_agrees_with_complex128(kind: str, three_qubit) -> None:
    cls = EstimatorQNN if kind == "estimator" else SamplerQNN
    kwargs = {
        "circuit": three_qubit.circuit,
        "input_params": three_qubit.inputs,
        "weight_params": three_qubit.weights,
        "input_gradients": True,
    }
    if kind == "estimator":
        kwargs["observables"] = OBSERVABLES
    single, double = cls(**kwargs, dtype="complex64"), cls(**kwargs, dtype="complex128")
    inputs = RNG.uniform(-2, 2, (6, 2))
    assert_same(single.forward(inputs, WEIGHTS), double.forward(inputs, WEIGHTS), 1e-4)
    for a, b in zip(
        single.backward(inputs, WEIGHTS), double.backward(inputs, WEIGHTS), strict=True
    ):
        assert_same(a, b, 1e-4)  # outputs stay float64


def test_small_max_memory_chunks_give_the_same_numbers() -> None:
    """64 KiB holds a few 6-qubit rows; this backward pass evolves thousands of them."""
    max_memory = 64 * 1024
    feature_map, ansatz = zz_feature_map(6, reps=1), real_amplitudes(6, reps=1)
    qc = QuantumCircuit(6)
    qc.compose(feature_map, inplace=True)
    qc.compose(ansatz, inplace=True)
    kwargs = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "input_gradients": True,
        "observables": [SparsePauliOp("ZZZZZZ"), SparsePauliOp("XIIIIY")],
    }
    rng = np.random.default_rng(6)
    inputs, weights = rng.uniform(-1, 1, (50, 6)), rng.uniform(-1, 1, ansatz.num_parameters)
    chunked, unlimited = EstimatorQNN(**kwargs, max_memory=max_memory), EstimatorQNN(**kwargs)
    assert_same(
        unlimited.forward(inputs[:4], weights),
        QmlEstimatorQNN(**kwargs).forward(inputs[:4], weights),
    )
    assert_same(chunked.forward(inputs, weights), unlimited.forward(inputs, weights), 1e-12)
    for a, b in zip(
        chunked.backward(inputs, weights), unlimited.backward(inputs, weights), strict=True
    ):
        assert_same(a, b, 1e-12)
    sampler = SamplerQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        interpret=parity,
        output_shape=2,
        max_memory=max_memory,
    )
    reference = SamplerQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        interpret=parity,
        output_shape=2,
    )
    for a, b in zip(
        sampler.backward(inputs, weights), reference.backward(inputs, weights), strict=True
    ):
        assert_same(a, b, 1e-12)


def test_sampler_shots_are_seeded_and_unbiased(three_qubit) -> None:
    kwargs = {
        "circuit": three_qubit.circuit,
        "input_params": three_qubit.inputs,
        "weight_params": three_qubit.weights,
    }
    inputs = np.tile(RNG.uniform(-2, 2, 2), (200, 1))
    first = SamplerQNN(**kwargs, shots=1000, seed=3).forward(inputs, WEIGHTS)
    second = SamplerQNN(**kwargs, shots=1000, seed=3).forward(inputs, WEIGHTS)
    assert first.shape == (200, 8) and first.dtype == np.float64
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(first * 1000, np.round(first * 1000), rtol=0, atol=1e-9)
    exact = QmlSamplerQNN(**kwargs).forward(inputs[0], WEIGHTS)[0]
    np.testing.assert_allclose(first.mean(axis=0), exact, rtol=0, atol=0.02)
    assert np.abs(first - exact).max() > 1e-3  # sampled, not exact
    assert len({row.tobytes() for row in first}) > 1  # each row sampled on its own
    # shifted rows are sampled too: noisy gradients, unbiased
    _, grad = SamplerQNN(**kwargs, shots=1000, seed=3).backward(inputs[:20], WEIGHTS)
    _, exact_grad = QmlSamplerQNN(**kwargs).backward(inputs[:1], WEIGHTS)
    assert np.abs(grad[0] - exact_grad[0]).max() > 1e-4
    np.testing.assert_allclose(grad.mean(axis=0), exact_grad[0], rtol=0, atol=0.03)


# ---- bad input ---------------------------------------------------------------------------------


@pytest.fixture
def estimator(three_qubit) -> EstimatorQNN:
    return EstimatorQNN(
        circuit=three_qubit.circuit,
        input_params=three_qubit.inputs,
        weight_params=three_qubit.weights,
    )


@pytest.mark.parametrize(
    ("inputs", "weights", "error", "pattern"),
    [
        (np.zeros((2, 3)), WEIGHTS, QiskitMachineLearningError, words("input")),
        (np.zeros(1), WEIGHTS, QiskitMachineLearningError, words("input")),
        (np.zeros(2), np.zeros(4), ValueError, words("weights")),
        (np.zeros(2), np.zeros(2), ValueError, words("weights")),
        (np.array([[0.1, 0.2], [0.3, np.nan]]), WEIGHTS, ValueError, words("input_data", "finite")),
        (np.array([0.1, np.inf]), WEIGHTS, ValueError, words("input_data", "finite")),
        (np.zeros(2), np.array([0.1, np.nan, 0.0]), ValueError, words("weights", "finite")),
        (np.zeros(2), np.array([0.1, -np.inf, 0.0]), ValueError, words("weights", "finite")),
    ],
    ids=[
        "3-inputs",
        "1-input",
        "4-weights",
        "2-weights",
        "nan-input",
        "inf-input",
        "nan-weight",
        "inf-weight",
    ],
)
@pytest.mark.parametrize("method", ["forward", "backward"])
def test_bad_forward_arguments(method, inputs, weights, error, pattern, estimator) -> None:
    with pytest.raises(error, match=pattern):
        getattr(estimator, method)(inputs, weights)


@pytest.mark.parametrize(
    ("inputs", "weights", "error", "pattern"),
    [
        (None, WEIGHTS, ValueError, words("input_data")),
        (np.zeros(2), None, ValueError, words("weights")),
        ([["a", "b"]], WEIGHTS, TypeError, words("input_data")),
    ],
    ids=["none-inputs", "none-weights", "strings"],
)
def test_missing_or_non_numeric_arguments(inputs, weights, error, pattern, estimator) -> None:
    with pytest.raises(error, match=pattern):
        estimator.forward(inputs, weights)


def test_circuit_must_be_a_circuit() -> None:
    with pytest.raises(TypeError, match=words("circuit")):
        EstimatorQNN(circuit="not a circuit")


@pytest.mark.parametrize("shots", [0, -3, 2.5])
def test_bad_shots(shots) -> None:
    x = Parameter("x")
    qc = QuantumCircuit(1)
    qc.ry(x, 0)
    with pytest.raises(ValueError, match=words("shots")):
        SamplerQNN(circuit=qc, input_params=[x], shots=shots)


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_input_param_missing_from_circuit(kind: str, three_qubit) -> None:
    cls = EstimatorQNN if kind == "estimator" else SamplerQNN
    stranger = Parameter("stranger")
    with pytest.raises(ValueError, match=words("stranger")):
        cls(
            circuit=three_qubit.circuit,
            input_params=[*three_qubit.inputs, stranger],
            weight_params=three_qubit.weights,
        )
    with pytest.raises(ValueError, match=words("stranger")):
        cls(
            circuit=three_qubit.circuit,
            input_params=three_qubit.inputs,
            weight_params=[stranger, *three_qubit.weights],
        )


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_parameter_in_inputs_and_weights(kind: str, three_qubit) -> None:
    cls = EstimatorQNN if kind == "estimator" else SamplerQNN
    x, w = three_qubit.inputs, three_qubit.weights
    with pytest.raises(ValueError, match=words(w[1].name)):
        cls(circuit=three_qubit.circuit, input_params=[*x, w[1]], weight_params=w)


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_circuit_parameter_in_neither(kind: str, three_qubit) -> None:
    cls = EstimatorQNN if kind == "estimator" else SamplerQNN
    x, w = three_qubit.inputs, three_qubit.weights
    with pytest.raises(ValueError, match=words(w[2].name)):
        cls(circuit=three_qubit.circuit, input_params=x, weight_params=w[:2])
    with pytest.raises(ValueError, match=words(x[0].name)):
        cls(circuit=three_qubit.circuit, input_params=None, weight_params=[x[1], *w])


@pytest.mark.parametrize(
    "observables",
    [SparsePauliOp("ZZ"), [SparsePauliOp("ZZZ"), SparsePauliOp("ZZZZ")]],
    ids=["single", "second-of-two"],
)
def test_observable_on_wrong_number_of_qubits(observables, three_qubit) -> None:
    with pytest.raises(ValueError, match=words("observables")):
        EstimatorQNN(
            circuit=three_qubit.circuit,
            input_params=three_qubit.inputs,
            weight_params=three_qubit.weights,
            observables=observables,
        )


@pytest.mark.parametrize(
    ("observables", "index"),
    [
        (1j * SparsePauliOp("ZII"), 0),
        ([SparsePauliOp("ZZZ"), SparsePauliOp(["XII", "YII"], [1.0, 0.5j])], 1),
        ([SparsePauliOp("ZZZ"), SparsePauliOp("ZII") @ SparsePauliOp("XII")], 1),  # iY
    ],
    ids=["imaginary-coefficient", "complex-second-of-two", "product-of-paulis"],
)
def test_non_hermitian_observable_is_refused(observables, index, three_qubit) -> None:
    """qiskit-machine-learning and StatevectorEstimator raise; the real part is no answer."""
    with pytest.raises(ValueError, match=words(f"observables[{index}]", "Hermitian")):
        EstimatorQNN(
            circuit=three_qubit.circuit,
            input_params=three_qubit.inputs,
            weight_params=three_qubit.weights,
            observables=observables,
        )


def test_hermitian_observables_with_phases_are_accepted(three_qubit) -> None:
    """Y = iXZ and products whose phases cancel are Hermitian: values as Statevector's."""
    observables = [
        SparsePauliOp("YII") + 0.5 * SparsePauliOp("ZZY"),
        SparsePauliOp("XII") @ SparsePauliOp("YII") * -1j,  # XY = iZ, times -i: Z
    ]
    qnn = EstimatorQNN(
        circuit=three_qubit.circuit,
        input_params=three_qubit.inputs,
        weight_params=three_qubit.weights,
        observables=observables,
    )
    x, w = np.array([[0.3, -1.1]]), np.array([0.4, 1.2, -0.7])
    bound = three_qubit.circuit.assign_parameters(
        dict(zip(three_qubit.inputs + three_qubit.weights, [*x[0], *w], strict=True))
    )
    state = Statevector(bound)
    expected = [state.expectation_value(o).real for o in observables]
    np.testing.assert_allclose(qnn.forward(x, w)[0], expected, atol=1e-12)


@pytest.mark.parametrize(
    "interpret,output_shape",
    [(lambda b: b, 4), (lambda b: (b % 2, b), (2, 3)), (lambda b: -1 if b == 5 else 0, 2)],
    ids=["index-too-large", "tuple-index-too-large", "negative-index"],
)
def test_interpret_outside_output_shape(interpret, output_shape, three_qubit) -> None:
    with pytest.raises(ValueError, match=words("interpret")):
        qnn = SamplerQNN(
            circuit=three_qubit.circuit,
            input_params=three_qubit.inputs,
            weight_params=three_qubit.weights,
            interpret=interpret,
            output_shape=output_shape,
        )
        qnn.forward(RNG.uniform(-2, 2, 2), WEIGHTS)


def test_interpret_without_output_shape(three_qubit) -> None:
    with pytest.raises(QiskitMachineLearningError, match=words("output shape")):
        SamplerQNN(
            circuit=three_qubit.circuit,
            input_params=three_qubit.inputs,
            weight_params=three_qubit.weights,
            interpret=parity,
        )


def unsupported_circuit(instruction: str) -> tuple[QuantumCircuit, ParameterVector]:
    x = ParameterVector("x", 2)
    qc = QuantumCircuit(2, 1)
    qc.ry(x[0], 0)
    qc.cx(0, 1)
    if instruction == "measure":  # mid-circuit: a gate follows on the measured qubit
        qc.measure(0, 0)
        qc.rx(x[1], 0)
    elif instruction == "reset":
        qc.reset(0)
        qc.rx(x[1], 0)
    else:  # if_else on a classical bit
        with qc.if_test((qc.clbits[0], 1)):
            qc.rx(x[1], 0)
    return qc, x


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
@pytest.mark.parametrize("instruction", ["measure", "reset", "if_else"])
def test_unsupported_instruction_is_named_at_construction(instruction: str, kind: str) -> None:
    qc, x = unsupported_circuit(instruction)
    cls = EstimatorQNN if kind == "estimator" else SamplerQNN
    with pytest.raises(QiskitMachineLearningError, match=words(instruction)):
        cls(circuit=qc, input_params=x)


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
@pytest.mark.parametrize(
    ("option", "value", "error", "pattern"),
    [
        ("device", "tpu", ValueError, words("device")),
        ("dtype", "float32", ValueError, words("dtype")),
        ("gradient_method", "nope", ValueError, words("gradient_method")),
    ],
)
def test_bad_options(option, value, error, pattern, kind, three_qubit) -> None:
    cls = EstimatorQNN if kind == "estimator" else SamplerQNN
    with pytest.raises(error, match=pattern):
        cls(
            circuit=three_qubit.circuit,
            input_params=three_qubit.inputs,
            weight_params=three_qubit.weights,
            **{option: value},
        )


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_device_gpu_without_a_gpu(kind: str, three_qubit) -> None:
    cls = EstimatorQNN if kind == "estimator" else SamplerQNN
    kwargs = {
        "circuit": three_qubit.circuit,
        "input_params": three_qubit.inputs,
        "weight_params": three_qubit.weights,
    }
    if has_cuda():  # where there is one, "gpu" must work and agree with the CPU
        inputs = RNG.uniform(-2, 2, (3, 2))
        assert_same(
            cls(**kwargs, device="gpu").forward(inputs, WEIGHTS),
            cls(**kwargs, device="cpu").forward(inputs, WEIGHTS),
            1e-12,
        )
        return
    with pytest.raises(RuntimeError, match=words("gpu")):
        cls(**kwargs, device="gpu")


@pytest.mark.parametrize("kind", ["estimator", "sampler"])
def test_max_memory_too_small_for_one_row(kind: str, three_qubit) -> None:
    cls = EstimatorQNN if kind == "estimator" else SamplerQNN
    with pytest.raises(ValueError, match=words("max_memory")):
        qnn = cls(
            circuit=three_qubit.circuit,
            input_params=three_qubit.inputs,
            weight_params=three_qubit.weights,
            max_memory=10,
        )
        qnn.forward(RNG.uniform(-2, 2, 2), WEIGHTS)

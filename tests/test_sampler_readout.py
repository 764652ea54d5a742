"""SamplerQNN's distributions: transpiled measured circuits, more clbits than qubits, seeded
shots and what ``interpret`` may return. References: ``Statevector`` of the untranspiled
circuit and qiskit's ``StatevectorSampler``."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter, ParameterVector
from qiskit.primitives import StatevectorSampler
from qiskit.quantum_info import Statevector
from qiskit.transpiler import CouplingMap, generate_preset_pass_manager
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN

from gpuqnn import SamplerQNN

X = ParameterVector("x", 2)
W = Parameter("w")


def _measured_circuit(num_qubits: int = 3) -> QuantumCircuit:
    """Entangled, uneven distribution; clbit j measures qubit (j + 1) % n (crossed)."""
    qc = QuantumCircuit(num_qubits, num_qubits)
    qc.ry(X[0], 0)
    qc.cx(0, 1)
    qc.ry(X[1] * W, 1)
    if num_qubits > 2:
        qc.cx(1, num_qubits - 1)
    qc.rx(W, num_qubits - 1)
    qc.cx(0, num_qubits - 1)
    for j in range(num_qubits):
        qc.measure((j + 1) % num_qubits, j)
    return qc


def _clbit_distribution(qc: QuantumCircuit, values: dict) -> np.ndarray:
    """Exact distribution of the clbits (clbit j is bit j) of a circuit with final measurements."""
    measured = {}
    for inst in qc.data:
        if inst.operation.name == "measure":
            measured[qc.find_bit(inst.clbits[0]).index] = qc.find_bit(inst.qubits[0]).index
    state = Statevector(qc.assign_parameters(values).remove_final_measurements(inplace=False))
    probs = state.probabilities()
    out = np.zeros(2**qc.num_clbits)
    for b, p in enumerate(probs):
        key = sum(((b >> q) & 1) << c for c, q in measured.items())
        out[key] += p
    return out


LINE = CouplingMap.from_line(5)


def _layout_only(qc):
    return transpile(qc, coupling_map=LINE, initial_layout=[2, 0, 1], optimization_level=0)


def _routed(qc):
    return transpile(
        qc, coupling_map=CouplingMap.from_line(5), initial_layout=[4, 0, 2], seed_transpiler=3
    )


def _preset(qc):
    pm = generate_preset_pass_manager(optimization_level=1, coupling_map=LINE, seed_transpiler=7)
    return pm.run(qc)


@pytest.mark.parametrize("transpiler", [_layout_only, _routed, _preset])
def test_transpiled_measured_circuit_gives_its_clbit_distribution(transpiler):
    qc = _measured_circuit()
    transpiled = transpiler(qc)
    assert transpiled.layout is not None
    qnn = SamplerQNN(circuit=transpiled, input_params=list(X), weight_params=[W])
    x = np.array([[0.4, 1.3], [2.2, -0.7], [1.0, 0.3]])
    w = np.array([0.9])
    got = qnn.forward(x, w)
    expected = [_clbit_distribution(qc, {X[0]: r[0], X[1]: r[1], W: w[0]}) for r in x]
    np.testing.assert_allclose(got, expected, atol=1e-10)
    # and qiskit's own sampler on the transpiled circuit agrees (within shot noise)
    bound = transpiled.assign_parameters({X[0]: x[0, 0], X[1]: x[0, 1], W: w[0]})
    result = StatevectorSampler(seed=5).run([bound], shots=40000).result()[0]
    counts = result.data.c.get_int_counts()
    sampled = np.zeros(8)
    for key, n in counts.items():
        sampled[key] = n / 40000
    np.testing.assert_allclose(got[0], sampled, atol=0.015)
    # gradients: finite differences of the exact distribution
    h = 1e-6
    _, weight_grad = qnn.backward(x[:1], w)
    plus = _clbit_distribution(qc, {X[0]: x[0, 0], X[1]: x[0, 1], W: w[0] + h})
    minus = _clbit_distribution(qc, {X[0]: x[0, 0], X[1]: x[0, 1], W: w[0] - h})
    np.testing.assert_allclose(weight_grad[0, :, 0], (plus - minus) / (2 * h), atol=1e-6)


def test_the_issue_example_two_clbits_layout_2_0_1():
    qc = QuantumCircuit(3, 2)
    qc.ry(X[0], 0)
    qc.cx(0, 2)
    qc.ry(X[1], 2)
    qc.h(1)
    qc.measure([0, 2], [0, 1])
    transpiled = transpile(qc, coupling_map=LINE, initial_layout=[2, 0, 1], optimization_level=0)
    qnn = SamplerQNN(circuit=transpiled, input_params=list(X))
    got = qnn.forward([[1.2, 1.0]], None)[0]
    assert got.shape == (8,)  # 2**num_qubits columns, as qiskit-machine-learning's
    expected = _clbit_distribution(qc, {X[0]: 1.2, X[1]: 1.0})
    np.testing.assert_allclose(got[:4], expected, atol=1e-12)
    np.testing.assert_allclose(got[4:], 0.0, atol=1e-12)
    assert expected[1] > 0.05 and expected[2] > 0.05  # not the 0.5/0/0.5/0 of a wrong mapping


def test_transpiled_circuit_without_clbits_still_gives_logical_qubits():
    """Measurements the network adds itself (on every physical qubit) are read through the
    layout, as qiskit-machine-learning does."""
    qc = _measured_circuit().remove_final_measurements(inplace=False)
    pm = generate_preset_pass_manager(optimization_level=1, coupling_map=LINE, seed_transpiler=7)
    kwargs = dict(circuit=qc, input_params=list(X), weight_params=[W], pass_manager=pm)
    ours, theirs = SamplerQNN(**kwargs), QmlSamplerQNN(**kwargs)
    x, w = np.array([[0.4, 1.3], [2.2, -0.7]]), np.array([0.9])
    got = ours.forward(x, w)
    expected = [
        Statevector(qc.assign_parameters({X[0]: r[0], X[1]: r[1], W: w[0]})).probabilities()
        for r in x
    ]
    np.testing.assert_allclose(got, expected, atol=1e-10)
    np.testing.assert_allclose(got, theirs.forward(x, w), atol=1e-10)


def _more_clbits_than_qubits() -> QuantumCircuit:
    qc = QuantumCircuit(2, 3)
    qc.ry(X[0], 0)
    qc.cx(0, 1)
    qc.ry(X[1], 1)
    qc.measure([0, 1], [1, 2])  # clbit 0 stays 0; keys up to 6
    return qc


@pytest.mark.parametrize(
    "interpret",
    [None, (lambda b: b, 8)],
    ids=["default-interpret", "identity-interpret-output-shape-8"],
)
def test_more_clbits_than_qubits_keeps_every_outcome(interpret):
    qc = _more_clbits_than_qubits()
    kwargs = {} if interpret is None else {"interpret": interpret[0], "output_shape": interpret[1]}
    qnn = SamplerQNN(circuit=qc, input_params=list(X), **kwargs)
    assert qnn.output_shape == (8,)
    x = np.array([[0.4, 1.3], [2.2, -0.7]])
    got = qnn.forward(x, None)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-12)
    expected = [_clbit_distribution(qc, {X[0]: r[0], X[1]: r[1]}) for r in x]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert np.asarray(expected)[:, 4:].sum() > 0.1  # outcomes >= 2**num_qubits matter here
    bound = qc.assign_parameters({X[0]: 0.4, X[1]: 1.3})
    counts = StatevectorSampler(seed=2).run([bound], shots=40000).result()[0].data.c
    sampled = np.zeros(8)
    for key, n in counts.get_int_counts().items():
        sampled[key] = n / 40000
    np.testing.assert_allclose(got[0], sampled, atol=0.015)


def _sampler(seed, shots=200):
    qc = _measured_circuit(2)
    return SamplerQNN(circuit=qc, input_params=list(X), weight_params=[W], shots=shots, seed=seed)


def test_seeded_shots_repeat_on_every_call():
    x, w = np.array([[0.4, 1.3], [2.2, -0.7], [1.0, 0.3]]), np.array([0.9])
    qnn = _sampler(seed=11)
    first = qnn.forward(x, w)
    np.testing.assert_array_equal(qnn.forward(x, w), first)
    np.testing.assert_array_equal(_sampler(seed=11).forward(x, w), first)
    grads = qnn.backward(x, w)
    again = qnn.backward(x, w)
    np.testing.assert_array_equal(grads[1], again[1])
    # frequencies of 200 shots, not the exact distribution, and another seed differs
    assert not np.allclose(first, _sampler(seed=None, shots=None).forward(x, w), atol=1e-6)
    assert not np.array_equal(_sampler(seed=12).forward(x, w), first)
    np.testing.assert_allclose(first * 200, np.round(first * 200), atol=1e-9)


def test_unseeded_shots_draw_new_samples():
    x, w = np.array([[0.4, 1.3]] * 4), np.array([0.9])
    qnn = _sampler(seed=None)
    assert not np.array_equal(qnn.forward(x, w), qnn.forward(x, w))


@pytest.mark.parametrize(
    ("interpret", "shown"),
    [
        (lambda b: str(b % 2), "'0'"),
        (lambda b: float(b % 2), "0.0"),
        (lambda b: (b % 2, 0.5), "(0, 0.5)"),
    ],
    ids=["digit-string", "float", "tuple-with-float"],
)
def test_interpret_must_return_integers(interpret, shown):
    qc = _measured_circuit(2)
    shape = (2, 2) if "tuple" in shown or "," in shown else 2
    qnn = SamplerQNN(
        circuit=qc,
        input_params=list(X),
        weight_params=[W],
        interpret=interpret,
        output_shape=shape,
    )
    x, w = np.array([[0.4, 1.3]]), np.array([0.9])
    for call in (qnn.forward, qnn.backward):
        with pytest.raises(ValueError, match="interpret") as info:
            call(x, w)
        assert shown in str(info.value) and "int" in str(info.value)


def test_interpret_outside_output_shape_fails_at_the_first_pass_not_at_construction():
    """qiskit-machine-learning accepts the network and its classifiers check ``output_shape``
    themselves (``test_bad_binary_shape``): the error comes from the first pass."""
    qc = _measured_circuit(2)
    qnn = SamplerQNN(
        circuit=qc,
        input_params=list(X),
        weight_params=[W],
        interpret=lambda b: bin(b).count("1") % 2,
        output_shape=1,
    )
    assert "output_shape=(1,)" in repr(qnn)
    x, w = np.array([[0.4, 1.3]]), np.array([0.9])
    for call in (qnn.forward, qnn.backward):
        with pytest.raises(ValueError, match=r"interpret\(\d\) returned 1, which is not an index"):
            call(x, w)
    qnn.set_interpret(lambda b: bin(b).count("1") % 2, 2)  # fixed: the simulator is built
    assert qnn.forward(x, w).shape == (1, 2)


def test_interpret_may_return_numpy_integers():
    qc = _measured_circuit(2)
    qnn = SamplerQNN(
        circuit=qc,
        input_params=list(X),
        weight_params=[W],
        interpret=lambda b: (np.int64(b % 2), np.uint8(b >> 1)),
        output_shape=(2, 2),
    )
    x, w = np.array([[0.4, 1.3]]), np.array([0.9])
    expected = _clbit_distribution(qc, {X[0]: 0.4, X[1]: 1.3, W: 0.9}).reshape(2, 2).T
    np.testing.assert_allclose(qnn.forward(x, w)[0], expected, atol=1e-12)


def test_seeded_backward_draws_once_per_call_not_once_per_chunk():
    """A backward pass in many chunks (small max_memory) still draws every chunk's shots from
    one generator: identical samples get independent estimates, and the call repeats."""
    x, w = np.tile([[0.4, 1.3]], (8, 1)), np.array([0.9])
    qnn = SamplerQNN(
        circuit=_measured_circuit(2),
        input_params=list(X),
        weight_params=[W],
        shots=100,
        seed=3,
        max_memory=2000,
    )
    _, grad = qnn.backward(x, w)
    assert len({tuple(row) for row in np.round(grad[:, :, 0], 9)}) == len(x)
    np.testing.assert_array_equal(qnn.backward(x, w)[1], grad)

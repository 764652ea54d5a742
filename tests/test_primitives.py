"""gpuqnn.primitives against qiskit's and qiskit-machine-learning's exact reference primitives:
pub broadcasting, exact and noisy/shot modes, seeds, caching, gradients, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter, ParameterVector
from qiskit.primitives import StatevectorEstimator, StatevectorSampler
from qiskit.primitives.containers import BitArray
from qiskit.quantum_info import SparseObservable, SparsePauliOp, Statevector
from qiskit_machine_learning.gradients import (
    ParamShiftEstimatorGradient,
    ParamShiftSamplerGradient,
)
from qiskit_machine_learning.gradients.utils import DerivativeType
from qiskit_machine_learning.primitives import QMLEstimator, QMLSampler

import gpuqnn.primitives._cache as cache_module
from gpuqnn._sim.simulator import Simulator
from gpuqnn.primitives import (
    Estimator,
    EstimatorGradient,
    ExactProbabilities,
    Sampler,
    SamplerGradient,
)

from conftest import make_three_qubit_circuit, make_zz_real_amplitudes

ATOL = 1e-10


def values_for(circuit: QuantumCircuit, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2, 2, (*shape, circuit.num_parameters))


@pytest.fixture
def three_qubit_circuit() -> QuantumCircuit:
    return make_three_qubit_circuit().circuit


def measured_circuit() -> QuantumCircuit:
    """Two registers: 'a' reads qubits 2 and 0, 'b' reads qubit 1 twice and one unmeasured bit."""
    qc = QuantumCircuit(QuantumRegister(3), ClassicalRegister(2, "a"), ClassicalRegister(3, "b"))
    qc.compose(make_three_qubit_circuit().circuit, inplace=True)
    qc.measure(2, 0)
    qc.measure(0, 1)
    qc.measure(1, 2)
    qc.measure(1, 4)
    return qc


# ---- Estimator --------------------------------------------------------------------------------


def test_estimator_matches_statevector_estimator(three_qubit_circuit) -> None:
    qc = three_qubit_circuit
    fixed = QuantumCircuit(3)
    fixed.h(0)
    fixed.cx(0, 2)
    named = {tuple(qc.parameters): values_for(qc, (3,), seed=4)}  # bindings given by name
    pubs = [
        (
            qc,
            [[SparsePauliOp("ZZZ")], [SparsePauliOp.from_list([("XYZ", 0.5), ("IZI", -1)])]],
            values_for(qc, (1, 4)),
        ),  # (2, 1) x (1, 4) -> (2, 4)
        (qc, "XIX", values_for(qc, ())),  # one parameter set, shape ()
        (qc, ["ZII", "IYI", "IIX"], named),  # elementwise (3,) with (3,)
        (fixed, ["ZIZ", "XIX"]),  # no parameters
    ]
    ours = Estimator().run(pubs).result()
    reference = StatevectorEstimator().run(pubs).result()
    for mine, ref in zip(ours, reference, strict=True):
        assert mine.data.evs.shape == ref.data.evs.shape
        np.testing.assert_allclose(mine.data.evs, ref.data.evs, rtol=0, atol=ATOL)
        np.testing.assert_array_equal(mine.data.stds, 0.0)
        assert mine.metadata["target_precision"] == 0.0
    assert np.ptp(ours[0].data.evs) > 0.1  # distinct values, not a broadcast constant


def test_estimator_many_observables_per_row(three_qubit_circuit) -> None:
    """More distinct observables than share a readout: one engine call per observable."""
    qc = three_qubit_circuit
    rng = np.random.default_rng(1)
    labels = ["".join(rng.choice(list("IXYZ"), 3)) for _ in range(24)]
    pub = (
        qc,
        [SparsePauliOp(label, rng.uniform(-1, 1)) for label in labels],
        values_for(qc, (24,), seed=2),
    )
    ours = Estimator().run([pub]).result()[0].data.evs
    reference = StatevectorEstimator().run([pub]).result()[0].data.evs
    np.testing.assert_allclose(ours, reference, rtol=0, atol=ATOL)


def test_estimator_projector_observables(three_qubit_circuit) -> None:
    """SparseObservable terms with projectors (+, -, r, l, 0, 1), beyond StatevectorEstimator."""
    qc = three_qubit_circuit
    values = values_for(qc, ())
    observable = SparseObservable.from_list([("+0Z", 0.5), ("r1-", -1.0), ("lXI", 2.0)])
    ours = Estimator().run([(qc, observable, values)]).result()[0].data.evs
    state = Statevector(qc.assign_parameters(values))
    expected = state.expectation_value(SparsePauliOp.from_sparse_observable(observable)).real
    assert ours == pytest.approx(expected, abs=ATOL)


def test_estimator_complex64(three_qubit_circuit) -> None:
    qc = three_qubit_circuit
    pub = (qc, ["ZZZ", "XIY"], values_for(qc, (5, 1)))
    ours = Estimator(dtype="complex64").run([pub]).result()[0].data.evs
    reference = StatevectorEstimator().run([pub]).result()[0].data.evs
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-5)


def test_estimator_noise_equals_statevector_estimator_with_same_seed(three_qubit_circuit) -> None:
    qc = three_qubit_circuit
    pubs = [(qc, ["ZZZ", "XIY"], values_for(qc, (3, 1))), (qc, "IIZ", values_for(qc, (), 5))]
    ours = Estimator(default_precision=0.05, seed=7).run(pubs).result()
    reference = StatevectorEstimator(default_precision=0.05, seed=7).run(pubs).result()
    exact = Estimator().run(pubs).result()
    for mine, ref, clean in zip(ours, reference, exact, strict=True):
        np.testing.assert_allclose(mine.data.evs, ref.data.evs, rtol=0, atol=ATOL)
        assert np.all(mine.data.evs != clean.data.evs)
        np.testing.assert_array_equal(mine.data.stds, 0.05)
    # run's precision and a pub's own precision override the default
    pub = (qc, "ZZZ", values_for(qc, (2000,)))
    noisy = Estimator(default_precision=0.05, seed=1).run([pub], precision=0.2).result()[0]
    deviation = noisy.data.evs - Estimator().run([pub]).result()[0].data.evs
    assert np.std(deviation) == pytest.approx(0.2, rel=0.1)
    own = Estimator(default_precision=0.05, seed=1).run([(*pub, 0.0)]).result()[0].data.evs
    np.testing.assert_allclose(own, Estimator().run([pub]).result()[0].data.evs, atol=ATOL)


def test_exact_estimator_ignores_precision_like_qml_estimator(three_qubit_circuit) -> None:
    qc = three_qubit_circuit
    pub = (qc, "ZZZ", values_for(qc, (4,)))
    ours = Estimator().run([pub], precision=0.5).result()[0].data.evs
    reference = QMLEstimator().run([pub], precision=0.5).result()[0].data.evs
    np.testing.assert_allclose(ours, reference, rtol=0, atol=ATOL)


def test_each_circuit_compiled_once_and_pubs_batched(monkeypatch, three_qubit_circuit) -> None:
    compiled, calls = [], []
    original_compile = cache_module.compile_circuit
    original_forward = Simulator.forward
    monkeypatch.setattr(
        cache_module,
        "compile_circuit",
        lambda circuit, params, *noise: (
            compiled.append(circuit) or original_compile(circuit, params, *noise)
        ),
    )

    def forward(self, params):
        calls.append(params.shape[0])
        return original_forward(self, params)

    monkeypatch.setattr(Simulator, "forward", forward)
    qc = three_qubit_circuit
    values = values_for(qc, (6,))
    estimator = Estimator(cache_size=2)
    estimator.run(
        [(qc, "ZZZ", values), (qc, "XIZ", values[:3]), (qc.copy(), "IIZ", values)]
    ).result()
    assert len(compiled) == 1  # an equal copy is the same circuit
    assert calls == [6]  # three pubs, one engine call; identical parameter sets once
    estimator.run([(qc, "ZZZ", values)]).result()
    assert len(compiled) == 1
    other = qc.assign_parameters({qc.parameters[0]: 0.3})
    third = qc.copy()
    third.x(0)
    estimator.run([(other, "ZZZ", values[:, 1:]), (third, "ZZZ", values)]).result()
    assert len(compiled) == 3
    assert estimator._cache.num_programs == 2  # bounded by cache_size


@pytest.mark.parametrize(
    "make",
    [
        lambda: Estimator(default_precision=-1),
        lambda: Estimator(seed=-3),
        lambda: Estimator(device="tpu"),
        lambda: Estimator(dtype="float32"),
        lambda: Estimator(cache_size=0),
        lambda: Sampler(shots=0),
        lambda: Sampler(shots=2.5),
        lambda: Sampler(max_memory=-5),
    ],
    ids=[
        "precision",
        "seed",
        "device",
        "dtype",
        "cache_size",
        "shots",
        "float-shots",
        "max_memory",
    ],
)
def test_invalid_options_raise(make) -> None:
    with pytest.raises((ValueError, TypeError)):
        make()


def test_non_finite_parameter_values_raise(three_qubit_circuit) -> None:
    qc = three_qubit_circuit
    values = values_for(qc, (2,))
    values[1, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        Estimator().run([(qc, "ZZZ", values)])
    with pytest.raises(ValueError, match="finite"):
        Sampler().run([(qc.measure_all(inplace=False), values)])
    with pytest.raises(ValueError, match="precision"):
        Estimator().run([(qc, "ZZZ", values[:1])], precision=-0.1)


# ---- Sampler ----------------------------------------------------------------------------------


def register_distribution(
    qc: QuantumCircuit, values: np.ndarray, sources: list[int | None]
) -> dict[str, float]:
    """A register's exact distribution from the Statevector: bit i reads qubit sources[i]."""
    state = Statevector(qc.remove_final_measurements(inplace=False).assign_parameters(values))
    out: dict[str, float] = {}
    for z, p in enumerate(state.probabilities()):
        bits = "".join("0" if q is None else str((z >> q) & 1) for q in reversed(sources))
        out[bits] = out.get(bits, 0.0) + p
    return out


def test_exact_sampler_per_register_matches_statevector() -> None:
    qc = measured_circuit()
    values = values_for(qc, (2, 3))
    ours = Sampler().run([(qc, values)]).result()[0]
    shots = StatevectorSampler(seed=1).run([(qc, values)], shots=10).result()[0]
    assert set(ours.data) == {"a", "b"}
    layout = {"a": [2, 0], "b": [1, None, 1]}
    for name, sources in layout.items():
        field = ours.data[name]
        assert isinstance(field, ExactProbabilities)
        assert field.shape == (2, 3) and field.num_shots is None
        assert field.num_bits == shots.data[name].num_bits == len(sources)
        for loc in np.ndindex(2, 3):
            expected = register_distribution(qc, values[loc], sources)
            mine = field.get_probabilities(loc)
            for key in set(mine) | set(expected):
                assert mine.get(key, 0.0) == pytest.approx(expected.get(key, 0.0), abs=ATOL)
            dense = field.probabilities[loc]
            for key, p in expected.items():
                assert dense[int(key, 2)] == pytest.approx(p, abs=ATOL)
    assert ours.data.b.probabilities.shape == (2, 3, 8)
    # joined registers: a's bits least significant, as BitArray.concatenate_bits
    for loc in np.ndindex(2, 3):
        joined = ours.join_data()[loc].get_int_counts()
        total = sum(joined.values())
        expected = register_distribution(qc, values[loc], layout["a"] + layout["b"])
        for bits, p in expected.items():
            assert joined.get(int(bits, 2), 0) / total == pytest.approx(p, abs=1e-11)
    assert ours.join_data(["b", "a"]).num_bits == 5


def test_exact_sampler_matches_qml_sampler() -> None:
    qc = make_zz_real_amplitudes(2).circuit.measure_all(inplace=False)
    values = values_for(qc, (4,))
    ours = Sampler().run([(qc, values)]).result()[0].data.meas
    reference = QMLSampler().run([(qc, values)]).result()[0].data.meas
    for i in range(4):
        mine, theirs = ours.get_probabilities(i), reference.get_probabilities(i)
        for key in set(mine) | set(theirs):
            assert mine.get(key, 0.0) == pytest.approx(theirs.get(key, 0.0), abs=ATOL)
        assert ours.get_counts(i) == reference.get_counts(i)  # the same dyadic counts


def test_exact_sampler_counts_normalise_to_probabilities() -> None:
    qc = make_zz_real_amplitudes(2).circuit.measure_all(inplace=False)
    values = values_for(qc, (4,))
    field = Sampler().run([(qc, values)], shots=10).result()[0].data.meas  # shots ignored
    for i in range(4):
        counts = field.get_counts(i)
        total = sum(counts.values())
        assert total > 10**9  # dyadic counts, as QMLSampler's
        for key, p in field.get_probabilities(i).items():
            assert counts[key] / total == pytest.approx(p, abs=1e-11)
    union = field.get_counts(shots=1000)
    assert sum(union.values()) == pytest.approx(4000, abs=8)


def test_shot_sampler_is_seeded_and_follows_the_distribution() -> None:
    qc = measured_circuit()
    values = values_for(qc, (3,))
    first = Sampler(shots=4000, seed=11).run([(qc, values)]).result()[0]
    again = Sampler(shots=4000, seed=11).run([(qc, values)]).result()[0]
    other = Sampler(shots=4000, seed=12).run([(qc, values)]).result()[0]
    exact = Sampler().run([(qc, values)]).result()[0]
    assert isinstance(first.data.a, BitArray) and first.data.a.num_shots == 4000
    assert first.data.a.shape == (3,) and first.data.b.num_bits == 3
    assert first.data.a == again.data.a and first.data.b == again.data.b
    assert first.data.a != other.data.a
    for loc in range(3):
        counts = first.data.a.get_counts(loc)
        for key, p in exact.data.a.get_probabilities(loc).items():
            sigma = np.sqrt(p * (1 - p) / 4000)
            assert abs(counts.get(key, 0) / 4000 - p) < 5 * sigma + 1e-9
        # the registers come from the same shots: b's bit 2 and bit 0 read the same qubit
        for bits in first.data.b.get_bitstrings(loc):
            assert bits[0] == bits[2] and bits[1] == "0"
    # run's shots and a pub's own shots override the default
    result = Sampler(shots=100, seed=1).run([(qc, values), (qc, values, 7)], shots=50).result()
    assert result[0].data.a.num_shots == 50 and result[1].data.a.num_shots == 7


def test_sampler_without_registers_warns() -> None:
    qc = QuantumCircuit(1)
    qc.h(0)
    with pytest.warns(UserWarning, match="no output classical registers"):
        result = Sampler().run([qc]).result()[0]
    assert list(result.data) == []


def test_primitives_survive_pickle(three_qubit_circuit) -> None:
    qc = three_qubit_circuit
    values = values_for(qc, (3,))
    estimator = pickle.loads(pickle.dumps(Estimator(default_precision=0.1, seed=3)))
    sampler = pickle.loads(pickle.dumps(Sampler(shots=20, seed=3)))
    np.testing.assert_array_equal(
        estimator.run([(qc, "ZZZ", values)]).result()[0].data.evs,
        Estimator(default_precision=0.1, seed=3).run([(qc, "ZZZ", values)]).result()[0].data.evs,
    )
    measured = qc.measure_all(inplace=False)
    assert (
        sampler.run([(measured, values)]).result()[0].data.meas
        == Sampler(shots=20, seed=3).run([(measured, values)]).result()[0].data.meas
    )


# ---- gradients --------------------------------------------------------------------------------


def test_estimator_gradient_matches_parameter_shift_and_finite_differences() -> None:
    three = make_three_qubit_circuit().circuit
    zz = make_zz_real_amplitudes(2).circuit
    values = [values_for(three, (), seed=s) for s in range(3)] + [values_for(zz, (), seed=9)]
    circuits = [three, three, three, zz]
    observables = [
        SparsePauliOp("ZZZ"),
        SparsePauliOp.from_list([("XYZ", 0.5), ("IIZ", 1.0)]),
        SparsePauliOp("ZZZ"),
        SparsePauliOp("XZ"),
    ]
    parameters = [None, three.parameters[3:], [three.parameters[4], three.parameters[0]], None]
    ours = EstimatorGradient().run(circuits, observables, values, parameters).result()
    reference = (
        ParamShiftEstimatorGradient(QMLEstimator())
        .run(circuits, observables, values, parameters)
        .result()
    )
    assert ours.metadata[2]["parameters"] == [three.parameters[4], three.parameters[0]]
    for mine, ref in zip(ours.gradients, reference.gradients, strict=True):
        assert mine.shape == ref.shape
        np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-9)
    # central finite differences of the exact expectation value
    estimator, eps = Estimator(), 1e-6
    shifted = [values[0] + eps * np.eye(len(values[0]))[j] for j in range(len(values[0]))]
    shifted += [values[0] - eps * np.eye(len(values[0]))[j] for j in range(len(values[0]))]
    evs = estimator.run([(three, observables[0], np.array(shifted))]).result()[0].data.evs
    half = len(values[0])
    np.testing.assert_allclose(ours.gradients[0], (evs[:half] - evs[half:]) / (2 * eps), atol=1e-7)


def test_sampler_gradient_matches_parameter_shift() -> None:
    qc = make_zz_real_amplitudes(2).circuit.measure_all(inplace=False)
    values = values_for(qc, (3,))
    parameters = [None, qc.parameters[2:], [qc.parameters[5], qc.parameters[1]]]
    ours = SamplerGradient().run([qc] * 3, values, parameters).result()
    reference = ParamShiftSamplerGradient(QMLSampler()).run([qc] * 3, values, parameters).result()
    for mine, ref in zip(ours.gradients, reference.gradients, strict=True):
        assert len(mine) == len(ref)
        for a, b in zip(mine, ref, strict=True):
            for key in set(a) | set(b):
                assert a.get(key, 0.0) == pytest.approx(b.get(key, 0.0), abs=1e-9)
    assert any(abs(v) > 0.05 for grad in ours.gradients[0] for v in grad.values())


def test_gradients_delegate_for_non_exact_primitives() -> None:
    """With a noisy estimator / a shot sampler, the result is qiskit-machine-learning's
    parameter shift on that primitive, to the last digit (same seeds)."""
    qc = make_zz_real_amplitudes(2).circuit
    values = values_for(qc, (2,))
    ours = (
        EstimatorGradient(Estimator(default_precision=0.01, seed=3))
        .run([qc] * 2, [SparsePauliOp("ZZ")] * 2, values)
        .result()
    )
    reference = (
        ParamShiftEstimatorGradient(Estimator(default_precision=0.01, seed=3))
        .run([qc] * 2, [SparsePauliOp("ZZ")] * 2, values)
        .result()
    )
    assert not EstimatorGradient(Estimator(default_precision=0.01)).engine_serves
    for mine, ref in zip(ours.gradients, reference.gradients, strict=True):
        np.testing.assert_array_equal(mine, ref)
    measured = qc.measure_all(inplace=False)
    ours = SamplerGradient(Sampler(shots=300, seed=5)).run([measured], values[:1]).result()
    reference = (
        ParamShiftSamplerGradient(Sampler(shots=300, seed=5)).run([measured], values[:1]).result()
    )
    assert ours.gradients == reference.gradients


def test_gradient_errors() -> None:
    with pytest.raises(ValueError, match="REAL"):
        EstimatorGradient(derivative_type=DerivativeType.IMAG)
    qc = QuantumCircuit(1)
    qc.ry(Parameter("t"), 0)
    with pytest.raises(ValueError, match="classical bits"):
        SamplerGradient().run([qc], [[0.1]]).result()
    with pytest.raises(ValueError):  # qiskit-machine-learning's argument checks
        EstimatorGradient().run([qc], [SparsePauliOp("Z")], [[0.1, 0.2]]).result()


def test_parameter_vector_order_follows_circuit_parameters() -> None:
    """Values bind to circuit.parameters order (x[10] after x[9]), as qiskit's primitives."""
    x = ParameterVector("x", 11)
    qc = QuantumCircuit(2)
    for i, p in enumerate(x):
        (qc.ry if i % 2 else qc.rx)(p, i % 2)
        qc.cx(0, 1)
    values = values_for(qc, (2,))
    ours = Estimator().run([(qc, "XZ", values)]).result()[0].data.evs
    reference = StatevectorEstimator().run([(qc, "XZ", values)]).result()[0].data.evs
    np.testing.assert_allclose(ours, reference, atol=ATOL)

"""``noise_model=``: noisy networks and primitives over exact density matrices, against
qiskit-aer's density-matrix simulator (``save_density_matrix``), finite differences and
qiskit-machine-learning's parameter shift over qiskit-aer's exact noisy estimator."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.exceptions import QiskitMachineLearningError

import gpuqnn
from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn.examples import zz_real_amplitudes
from gpuqnn.primitives import Estimator, Sampler

from circuits import layered_network, observables

aer = pytest.importorskip("qiskit_aer")
from qiskit_aer import AerSimulator  # noqa: E402
from qiskit_aer.backends.backend_utils import BASIS_GATES  # noqa: E402
from qiskit_aer.noise import (  # noqa: E402
    NoiseModel,
    ReadoutError,
    amplitude_damping_error,
    depolarizing_error,
    pauli_error,
    phase_damping_error,
    reset_error,
    thermal_relaxation_error,
)

ATOL = 1e-10
NATIVE = set(BASIS_GATES["density_matrix"])


def mixed_noise_model() -> NoiseModel:
    """Every covered kind of error: depolarizing, amplitude and phase damping, thermal
    relaxation, Pauli and reset errors, compositions and tensor products, on all qubits and on
    specific ones."""
    model = NoiseModel()
    one = depolarizing_error(0.03, 1).compose(amplitude_damping_error(0.04))
    model.add_all_qubit_quantum_error(one, ["h", "sx", "x", "y", "z", "s", "t"])
    model.add_all_qubit_quantum_error(phase_damping_error(0.07), ["rx", "sdg", "tdg", "sxdg"])
    model.add_all_qubit_quantum_error(thermal_relaxation_error(60, 45, 8), ["ry", "rz"])
    model.add_quantum_error(pauli_error([("X", 0.05), ("Y", 0.02), ("I", 0.93)]), ["ry"], [1])
    model.add_all_qubit_quantum_error(reset_error(0.03, 0.01), ["p", "u"])
    two = depolarizing_error(0.06, 2).compose(
        thermal_relaxation_error(50, 40, 30).tensor(amplitude_damping_error(0.02))
    )
    model.add_all_qubit_quantum_error(two, ["cx", "cz", "swap", "rzz", "rxx", "ryy", "cp"])
    model.add_quantum_error(depolarizing_error(0.2, 2), ["cx"], [2, 0])
    model.add_all_qubit_quantum_error(depolarizing_error(0.05, 3), ["ccx"])
    return model


def benchmark_noise_model() -> NoiseModel:
    """Depolarizing and thermal relaxation errors (the benchmark's model)."""
    model = NoiseModel()
    relax = thermal_relaxation_error(80, 60, 20)
    model.add_all_qubit_quantum_error(depolarizing_error(0.01, 1).compose(relax), ["h", "ry", "p"])
    two = depolarizing_error(0.03, 2).compose(relax.tensor(relax))
    model.add_all_qubit_quantum_error(two, ["cx"])
    return model


def native(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` with every gate qiskit-aer does not run natively decomposed through its
    definition, as gpuqnn does before attaching errors."""
    while True:
        names = {inst.operation.name for inst in circuit.data} - NATIVE
        names -= {"measure", "barrier", "reset", "delay"}
        if not names:
            return circuit
        circuit = circuit.decompose(gates_to_decompose=list(names))


def aer_density_matrices(circuit, parameters, values, noise_model):
    """qiskit-aer's density matrices of ``circuit`` at each row of ``values``."""
    base = native(circuit.remove_final_measurements(inplace=False))
    circuits = []
    for row in values:
        bound = base.assign_parameters(dict(zip(parameters, row, strict=True)))
        bound.save_density_matrix()
        circuits.append(bound)
    simulator = AerSimulator(method="density_matrix", noise_model=noise_model)
    result = simulator.run(circuits).result()
    return [result.data(i)["density_matrix"] for i in range(len(circuits))]


def aer_expectations(circuit, parameters, values, noise_model, obs):
    rhos = aer_density_matrices(circuit, parameters, values, noise_model)
    return np.array([[rho.expectation_value(o).real for o in obs] for rho in rhos])


def rows(inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.hstack([inputs, np.broadcast_to(weights, (len(inputs), len(weights)))])


def finite_differences(network, inputs, weights, eps=1e-6):
    """Central differences of ``network.forward`` by inputs and weights."""

    def column(shift_inputs, j):
        plus, minus = inputs.copy(), inputs.copy()
        wp, wm = weights.copy(), weights.copy()
        if shift_inputs:
            plus[:, j] += eps
            minus[:, j] -= eps
        else:
            wp[j] += eps
            wm[j] -= eps
        return (network.forward(plus, wp) - network.forward(minus, wm)) / (2 * eps)

    grad_in = np.stack([column(True, j) for j in range(inputs.shape[1])], axis=-1)
    grad_w = np.stack([column(False, j) for j in range(len(weights))], axis=-1)
    return grad_in, grad_w


@pytest.mark.parametrize(
    "seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]
)
def test_random_circuits_match_aer(seed):
    circuit, x, w = layered_network(seed, 3, layers=3)
    model = mixed_noise_model()
    rng = np.random.default_rng(seed)
    obs = observables(3, rng)
    inputs, weights = rng.uniform(-2, 2, (3, len(x))), rng.uniform(-2, 2, len(w))
    estimator = EstimatorQNN(
        circuit=circuit, observables=obs, input_params=x, weight_params=w, noise_model=model
    )
    expected = aer_expectations(circuit, x + w, rows(inputs, weights), model, obs)
    np.testing.assert_allclose(estimator.forward(inputs, weights), expected, atol=ATOL, rtol=0)
    sampler = SamplerQNN(circuit=circuit, input_params=x, weight_params=w, noise_model=model)
    rhos = aer_density_matrices(circuit, x + w, rows(inputs, weights), model)
    probabilities = np.array([rho.probabilities() for rho in rhos])
    np.testing.assert_allclose(sampler.forward(inputs, weights), probabilities, atol=ATOL, rtol=0)


def test_feature_map_and_ansatz_networks_match_aer():
    circuit, feature_map, ansatz = zz_real_amplitudes(3, reps=2)
    x, w = list(feature_map.parameters), list(ansatz.parameters)
    model = benchmark_noise_model()
    rng = np.random.default_rng(5)
    inputs, weights = rng.uniform(0, np.pi, (4, len(x))), rng.uniform(-1, 1, len(w))
    obs = [SparsePauliOp("ZZI"), SparsePauliOp.from_list([("XII", 0.5), ("IYZ", -1.0)])]
    estimator = EstimatorQNN(
        circuit=circuit, observables=obs, input_params=x, weight_params=w, noise_model=model
    )
    expected = aer_expectations(circuit, x + w, rows(inputs, weights), model, obs)
    np.testing.assert_allclose(estimator.forward(inputs, weights), expected, atol=ATOL, rtol=0)
    parity = SamplerQNN(
        circuit=circuit,
        input_params=x,
        weight_params=w,
        interpret=lambda key: bin(key).count("1") % 2,
        output_shape=2,
        noise_model=model,
    )
    rhos = aer_density_matrices(circuit, x + w, rows(inputs, weights), model)
    odd = [bin(k).count("1") % 2 for k in range(8)]
    expected = np.array([np.bincount(odd, rho.probabilities(), minlength=2) for rho in rhos])
    np.testing.assert_allclose(parity.forward(inputs, weights), expected, atol=ATOL, rtol=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_library_gates_are_decomposed_before_their_errors():
    """ZZFeatureMap and RealAmplitudes (the library classes) are gates qiskit-aer does not
    run: their errors attach to the h, p, cx and ry they are made of."""
    from qiskit.circuit.library import RealAmplitudes, ZZFeatureMap

    feature_map, ansatz = ZZFeatureMap(3), RealAmplitudes(3, reps=1)
    circuit = QuantumCircuit(3)
    circuit.compose(feature_map, inplace=True)
    circuit.compose(ansatz, inplace=True)
    assert {inst.operation.name for inst in circuit.data} == {"ZZFeatureMap", "RealAmplitudes"}
    x, w = list(feature_map.parameters), list(ansatz.parameters)
    model = benchmark_noise_model()
    network = EstimatorQNN(circuit=circuit, input_params=x, weight_params=w, noise_model=model)
    rng = np.random.default_rng(13)
    inputs, weights = rng.uniform(0, 1, (2, 3)), rng.uniform(-1, 1, len(w))
    obs = [SparsePauliOp("ZZZ")]
    expected = aer_expectations(circuit, x + w, rows(inputs, weights), model, obs)
    np.testing.assert_allclose(network.forward(inputs, weights), expected, atol=ATOL, rtol=0)


def test_fake_backend_noise_model_matches_aer():
    from qiskit import transpile
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    backend = FakeManilaV2()
    model = NoiseModel.from_backend(backend)
    circuit, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    compiled = transpile(circuit, backend, optimization_level=1, seed_transpiler=7)
    x, w = list(feature_map.parameters), list(ansatz.parameters)
    obs = [SparsePauliOp("ZZ").apply_layout(compiled.layout)]
    network = EstimatorQNN(
        circuit=compiled, observables=obs, input_params=x, weight_params=w, noise_model=model
    )
    rng = np.random.default_rng(9)
    inputs, weights = rng.uniform(0, np.pi, (3, 2)), rng.uniform(-1, 1, len(w))
    expected = aer_expectations(compiled, x + w, rows(inputs, weights), model, obs)
    np.testing.assert_allclose(network.forward(inputs, weights), expected, atol=ATOL, rtol=0)
    noiseless = EstimatorQNN(circuit=compiled, observables=obs, input_params=x, weight_params=w)
    assert np.max(np.abs(noiseless.forward(inputs, weights) - expected)) > 1e-3  # noise seen


def _measured_circuit():
    x, w = ParameterVector("x", 2), ParameterVector("w", 2)
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.ry(x[0], 1)
    qc.cx(0, 1)
    qc.rx(w[0], 2)
    qc.crx(x[1], 1, 2)
    qc.ry(w[1], 0)
    qc.id(2)
    return qc, list(x), list(w)


def test_measure_and_readout_errors_precede_the_measurement():
    circuit, x, w = _measured_circuit()
    model = NoiseModel()
    model.add_all_qubit_quantum_error(phase_damping_error(0.2), ["id", "rx"])
    model.add_all_qubit_quantum_error(depolarizing_error(0.1, 2), ["cx"])
    measure_error = reset_error(0.1, 0.05)
    model.add_all_qubit_quantum_error(measure_error, ["measure"])
    default, on_one = [[0.9, 0.1], [0.2, 0.8]], [[0.95, 0.05], [0.3, 0.7]]
    model.add_all_qubit_readout_error(ReadoutError(default))
    model.add_readout_error(ReadoutError(on_one), [1])
    network = SamplerQNN(circuit=circuit, input_params=x, weight_params=w, noise_model=model)
    rng = np.random.default_rng(3)
    inputs, weights = rng.uniform(-2, 2, (3, 2)), rng.uniform(-2, 2, 2)
    expected = []
    for rho in aer_density_matrices(circuit, x + w, rows(inputs, weights), model):
        for q in range(3):
            rho = rho.evolve(measure_error.to_quantumchannel(), [q])
        confusion = np.kron(np.array(default).T, np.kron(np.array(on_one).T, np.array(default).T))
        expected.append(confusion @ rho.probabilities())
    np.testing.assert_allclose(network.forward(inputs, weights), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("method", ["parameter_shift", "adjoint"])
def test_gradients_match_finite_differences(method):
    circuit, x, w = layered_network(4, 3, layers=2)
    rng = np.random.default_rng(4)
    obs = observables(3, rng)
    inputs, weights = rng.uniform(-2, 2, (2, len(x))), rng.uniform(-2, 2, len(w))
    model = mixed_noise_model()
    estimator = EstimatorQNN(
        circuit=circuit,
        observables=obs,
        input_params=x,
        weight_params=w,
        input_gradients=True,
        gradient_method=method,
        noise_model=model,
    )
    assert estimator.resolved_gradient_method() == method
    grad_in, grad_w = estimator.backward(inputs, weights)
    fd_in, fd_w = finite_differences(estimator, inputs, weights)
    np.testing.assert_allclose(grad_in, fd_in, atol=1e-7, rtol=0)
    np.testing.assert_allclose(grad_w, fd_w, atol=1e-7, rtol=0)
    circuit, x, w = _measured_circuit()
    sampler = SamplerQNN(
        circuit=circuit,
        input_params=x,
        weight_params=w,
        input_gradients=True,
        gradient_method=method,
        noise_model=model,
    )
    inputs, weights = rng.uniform(-2, 2, (2, 2)), rng.uniform(-2, 2, 2)
    grad_in, grad_w = sampler.backward(inputs, weights)
    fd_in, fd_w = finite_differences(sampler, inputs, weights)
    np.testing.assert_allclose(grad_in, fd_in, atol=1e-7, rtol=0)
    np.testing.assert_allclose(grad_w, fd_w, atol=1e-7, rtol=0)


def test_gradients_match_qml_parameter_shift_over_aer_estimator():
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator
    from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN

    circuit, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    circuit = native(circuit)
    x, w = list(feature_map.parameters), list(ansatz.parameters)
    model = benchmark_noise_model()
    options = {"backend_options": {"method": "density_matrix", "noise_model": model}}
    reference = QmlEstimatorQNN(
        circuit=circuit,
        estimator=AerEstimator(options=options),
        input_params=x,
        weight_params=w,
        input_gradients=True,
        default_precision=0.0,
    )
    ours = EstimatorQNN(
        circuit=circuit, input_params=x, weight_params=w, input_gradients=True, noise_model=model
    )
    rng = np.random.default_rng(11)
    inputs, weights = rng.uniform(0, np.pi, (3, 2)), rng.uniform(-1, 1, len(w))
    np.testing.assert_allclose(
        ours.forward(inputs, weights), reference.forward(inputs, weights), atol=ATOL, rtol=0
    )
    for mine, theirs in zip(
        ours.backward(inputs, weights), reference.backward(inputs, weights), strict=True
    ):
        np.testing.assert_allclose(mine, theirs, atol=ATOL, rtol=0)


@pytest.mark.parametrize("model", [NoiseModel(), None], ids=["empty", "zero-strength"])
def test_zero_noise_gives_the_statevector_results(model, three_qubit):
    if model is None:
        model = NoiseModel()
        model.add_all_qubit_quantum_error(depolarizing_error(0.0, 1), ["h", "ry", "rx"])
        model.add_all_qubit_quantum_error(amplitude_damping_error(0.0), ["rzz", "cx"])
    circuit, x, w = three_qubit
    obs = [SparsePauliOp("ZZI"), SparsePauliOp.from_list([("XIY", 0.7), ("ZXZ", 0.2)])]
    kwargs = dict(circuit=circuit, observables=obs, input_params=x, weight_params=w)
    pure = EstimatorQNN(**kwargs, input_gradients=True)
    noisy = EstimatorQNN(**kwargs, input_gradients=True, noise_model=model)
    rng = np.random.default_rng(0)
    inputs, weights = rng.uniform(-2, 2, (5, 2)), rng.uniform(-2, 2, 3)
    np.testing.assert_allclose(
        noisy.forward(inputs, weights), pure.forward(inputs, weights), atol=1e-12, rtol=0
    )
    for a, b in zip(noisy.backward(inputs, weights), pure.backward(inputs, weights), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12, rtol=0)


def test_torch_connector_trains_through_the_noise(three_qubit):
    torch = pytest.importorskip("torch")
    from gpuqnn import TorchConnector

    circuit, x, w = three_qubit
    model = benchmark_noise_model()
    network = EstimatorQNN(
        circuit=circuit, input_params=x, weight_params=w, input_gradients=True, noise_model=model
    )
    weights = np.random.default_rng(2).uniform(-1, 1, 3)
    layer = TorchConnector(network, initial_weights=weights, dtype=torch.float64)
    inputs = torch.tensor(np.random.default_rng(3).uniform(-1, 1, (4, 2)), requires_grad=True)
    out = layer(inputs)
    cotangent = torch.tensor(np.random.default_rng(4).normal(size=tuple(out.shape)))
    (out * cotangent).sum().backward()
    grad_in, grad_w = network.backward(inputs.detach().numpy(), weights)
    g = cotangent.numpy()
    expected = network.forward(inputs.detach().numpy(), weights)
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-12, rtol=0)
    np.testing.assert_allclose(
        inputs.grad.numpy(), np.einsum("bo,boi->bi", g, grad_in), atol=1e-10, rtol=0
    )
    np.testing.assert_allclose(
        layer.weight.grad.numpy(), np.einsum("bo,bow->w", g, grad_w), atol=1e-10, rtol=0
    )


def test_chunks_within_max_memory(three_qubit):
    circuit, x, w = three_qubit
    model = benchmark_noise_model()
    rng = np.random.default_rng(8)
    inputs, weights = rng.uniform(-2, 2, (40, 2)), rng.uniform(-2, 2, 3)
    kwargs = dict(circuit=circuit, input_params=x, weight_params=w, noise_model=model)
    whole = EstimatorQNN(**kwargs, input_gradients=True)
    chunked = EstimatorQNN(**kwargs, input_gradients=True, max_memory=200_000)
    np.testing.assert_allclose(
        chunked.forward(inputs, weights), whole.forward(inputs, weights), atol=1e-13, rtol=0
    )
    for a, b in zip(
        chunked.backward(inputs, weights), whole.backward(inputs, weights), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-13, rtol=0)
    with pytest.raises(ValueError, match=r"density-matrix row \(4\*\*n amplitudes\)"):
        EstimatorQNN(**kwargs, max_memory=4000)


def test_primitives_take_the_noise_model():
    circuit, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    params = list(circuit.parameters)
    model = benchmark_noise_model()
    values = np.random.default_rng(6).uniform(-1, 1, (3, len(params)))
    obs = SparsePauliOp.from_list([("ZZ", 1.0), ("XI", 0.3)])
    result = Estimator(noise_model=model).run([(circuit, obs, values)]).result()[0]
    expected = aer_expectations(circuit, params, values, model, [obs])[:, 0]
    np.testing.assert_allclose(result.data.evs, expected, atol=ATOL, rtol=0)
    measured = circuit.measure_all(inplace=False)
    sampler = Sampler(noise_model=model)
    assert sampler.noise_model is model
    data = sampler.run([(measured, values)]).result()[0].data.meas
    rhos = aer_density_matrices(measured, params, values, model)
    np.testing.assert_allclose(
        data.probabilities, [rho.probabilities() for rho in rhos], atol=ATOL, rtol=0
    )


def test_a_noisy_gpuqnn_estimator_is_not_bypassed(three_qubit):
    circuit, x, w = three_qubit
    model = benchmark_noise_model()
    through = EstimatorQNN(
        circuit=circuit, input_params=x, weight_params=w, estimator=Estimator(noise_model=model)
    )
    own = EstimatorQNN(circuit=circuit, input_params=x, weight_params=w, noise_model=model)
    rng = np.random.default_rng(1)
    inputs, weights = rng.uniform(-2, 2, (3, 2)), rng.uniform(-2, 2, 3)
    np.testing.assert_allclose(
        through.forward(inputs, weights), own.forward(inputs, weights), atol=ATOL, rtol=0
    )


def test_errors_on_id_and_delay_apply_where_aer_applies_them():
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.id(0)
    qc.delay(10, 1)
    qc.cx(0, 1)
    model = NoiseModel()
    model.add_all_qubit_quantum_error(amplitude_damping_error(0.3), ["id"])
    model.add_all_qubit_quantum_error(pauli_error([("X", 0.2), ("I", 0.8)]), ["delay"])
    obs = [SparsePauliOp("ZI"), SparsePauliOp("IZ"), SparsePauliOp("XX")]
    network = EstimatorQNN(circuit=qc, observables=obs, noise_model=model)
    expected = aer_expectations(qc, [], np.zeros((1, 0)), model, obs)
    np.testing.assert_allclose(network.forward(None, None), expected, atol=ATOL, rtol=0)


def test_noise_passes_through_fusion():
    """Constant single-qubit gates fuse into one matrix and ``cx p cx`` into one parity phase
    without noise; with errors between them, they must not."""
    x = ParameterVector("x", 1)
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.s(0)
    qc.h(0)
    qc.cx(0, 1)
    qc.p(x[0], 1)
    qc.cx(0, 1)
    qc.h(1)
    model = NoiseModel()
    model.add_all_qubit_quantum_error(amplitude_damping_error(0.3), ["s", "p"])
    model.add_all_qubit_quantum_error(phase_damping_error(0.4), ["h"])
    model.add_all_qubit_quantum_error(depolarizing_error(0.2, 2), ["cx"])
    obs = [SparsePauliOp("ZI"), SparsePauliOp("IX"), SparsePauliOp("YY")]
    network = EstimatorQNN(circuit=qc, observables=obs, input_params=list(x), noise_model=model)
    inputs = np.array([[0.3], [1.7], [-2.2]])
    expected = aer_expectations(qc, list(x), inputs, model, obs)
    np.testing.assert_allclose(network.forward(inputs, None), expected, atol=ATOL, rtol=0)


def test_bad_noise_models_are_refused(three_qubit):
    circuit, x, w = three_qubit
    kwargs = dict(circuit=circuit, input_params=x, weight_params=w)
    with pytest.raises(TypeError, match="noise_model must be a qiskit_aer.noise.NoiseModel"):
        EstimatorQNN(**kwargs, noise_model={"cx": 0.1})
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    with pytest.raises(ValueError, match="noise_model is simulated by gpuqnn's engine"):
        EstimatorQNN(**kwargs, estimator=AerEstimator(), noise_model=benchmark_noise_model())
    correlated = NoiseModel()
    correlated.add_readout_error(ReadoutError(np.full((4, 4), 0.25)), [0, 1])
    with pytest.raises(ValueError, match="correlated readout error on qubits"):
        SamplerQNN(**kwargs, noise_model=correlated)
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    delayed = QuantumCircuit(2)
    delayed.h(0)
    delayed.delay(100, 0, unit="dt")
    delayed.cx(0, 1)
    with pytest.raises(QiskitMachineLearningError, match="relaxation during delays"):
        EstimatorQNN(circuit=delayed, noise_model=NoiseModel.from_backend(FakeManilaV2()))


def test_import_gpuqnn_does_not_need_qiskit_aer():
    """qiskit-aer is imported inside functions only (when a noise model is given): no module of
    the package imports it at import time."""
    package = Path(gpuqnn.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level, where an import runs with the package's
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(name.split(".")[0] == "qiskit_aer" for name in names):
                offenders.append(f"{path.relative_to(package)}:{node.lineno}")
    assert offenders == []
    assert (package / "_aer_noise.py").exists()  # the one place that imports it, lazily


def test_an_exact_qiskit_aer_estimator_is_served_with_its_noise_model(three_qubit):
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    circuit, x, w = three_qubit
    circuit = native(circuit)
    model = benchmark_noise_model()
    options = {"backend_options": {"method": "density_matrix", "noise_model": model}}
    kwargs = dict(circuit=circuit, input_params=x, weight_params=w, input_gradients=True)
    served = EstimatorQNN(**kwargs, estimator=AerEstimator(options=options), default_precision=0)
    assert "engine" in repr(served) and served.resolved_gradient_method() is not None
    own = EstimatorQNN(**kwargs, noise_model=model)
    rng = np.random.default_rng(12)
    inputs, weights = rng.uniform(-2, 2, (3, 2)), rng.uniform(-2, 2, 3)
    np.testing.assert_allclose(
        served.forward(inputs, weights), own.forward(inputs, weights), atol=1e-12, rtol=0
    )
    expected = aer_expectations(
        circuit, x + w, rows(inputs, weights), model, [served.observables[0]]
    )
    np.testing.assert_allclose(served.forward(inputs, weights), expected, atol=ATOL, rtol=0)
    # precision > 0 (aer adds Gaussian noise) or a statevector method with noise: stepped aside
    aside = EstimatorQNN(**kwargs, estimator=AerEstimator(options=options))
    assert "delegating" in repr(aside)
    sampled = {"backend_options": {"method": "statevector", "noise_model": model}}
    aside = EstimatorQNN(**kwargs, estimator=AerEstimator(options=sampled), default_precision=0)
    assert "delegating" in repr(aside)
    with pytest.raises(ValueError, match="the qiskit-aer estimator has its own"):
        EstimatorQNN(
            **kwargs,
            estimator=AerEstimator(options=options),
            default_precision=0,
            noise_model=model,
        )


def test_an_error_on_other_qubit_counts_than_its_instruction_is_refused():
    from qiskit.circuit.library import UnitaryGate

    model = NoiseModel()
    model.add_all_qubit_quantum_error(depolarizing_error(0.1, 1), ["unitary"])
    qc = QuantumCircuit(2)
    qc.append(UnitaryGate(np.eye(4)[[1, 0, 3, 2]]), [0, 1])
    with pytest.raises(ValueError, match="acts on 1 qubits, but the circuit applies 'unitary'"):
        EstimatorQNN(circuit=qc, noise_model=model)


def test_trajectory_means_agree_with_the_density_matrix_within_4_standard_errors():
    from gpuqnn._internals import simulator_of

    circuit, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    x, w = list(feature_map.parameters), list(ansatz.parameters)
    model = NoiseModel()
    model.add_all_qubit_quantum_error(depolarizing_error(0.05, 2), ["cx"])
    damping = amplitude_damping_error(0.2).compose(phase_damping_error(0.1))  # state-dependent
    model.add_all_qubit_quantum_error(damping, ["h", "ry"])
    model.add_all_qubit_quantum_error(thermal_relaxation_error(50, 40, 20), ["p"])
    kwargs = dict(
        circuit=circuit, input_params=x, weight_params=w, input_gradients=True, noise_model=model
    )
    exact = EstimatorQNN(**kwargs)
    sampled = EstimatorQNN(**kwargs, noise_method="trajectories", trajectories=400, noise_seed=7)
    assert "400 trajectories" in repr(sampled)
    rng = np.random.default_rng(0)
    inputs, weights = rng.uniform(0, 1, (2, 3)), rng.uniform(-1, 1, len(w))
    simulator = simulator_of(sampled)
    mean, error = simulator.forward_stats(rows(inputs, weights))
    np.testing.assert_array_less(np.abs(mean - exact.forward(inputs, weights)), 4 * error)
    np.testing.assert_array_equal(sampled.forward(inputs, weights), mean)  # seeded: repeats
    grad_mean, grad_error = simulator.backward_stats(rows(inputs, weights), list(range(9)))
    expected = np.concatenate(exact.backward(inputs, weights), axis=-1)
    np.testing.assert_array_less(np.abs(grad_mean - expected), 4 * grad_error + 1e-12)
    grad_in, grad_w = sampled.backward(inputs, weights)
    np.testing.assert_array_equal(np.concatenate([grad_in, grad_w], axis=-1), grad_mean)
    assert exact.precompile() == sampled.precompile() == 0  # the block engine compiles nothing
    np.testing.assert_array_equal(sampled.forward(inputs, weights), mean)
    sampler = SamplerQNN(
        circuit=circuit,
        input_params=x,
        weight_params=w,
        noise_model=model,
        noise_method="trajectories",
        trajectories=400,
        noise_seed=3,
    )
    mean, error = simulator_of(sampler).forward_stats(rows(inputs, weights))
    probabilities = SamplerQNN(
        circuit=circuit, input_params=x, weight_params=w, noise_model=model
    ).forward(inputs, weights)
    np.testing.assert_array_less(np.abs(mean - probabilities), 4 * error + 1e-12)


def test_trajectory_options_are_checked(three_qubit):
    circuit, x, w = three_qubit
    kwargs = dict(circuit=circuit, input_params=x, weight_params=w)
    model = benchmark_noise_model()
    with pytest.raises(ValueError, match="noise_method must be one of"):
        EstimatorQNN(**kwargs, noise_model=model, noise_method="mps")
    with pytest.raises(ValueError, match="trajectories must be a positive int"):
        EstimatorQNN(**kwargs, noise_model=model, noise_method="trajectories", trajectories=0)
    with pytest.raises(ValueError, match="gradient_method='adjoint' needs exact states"):
        EstimatorQNN(
            **kwargs, noise_model=model, noise_method="trajectories", gradient_method="adjoint"
        )
    with pytest.raises(ValueError, match="but no noise_model was given"):
        EstimatorQNN(**kwargs, noise_method="trajectories")
    with pytest.raises(ValueError, match="shots are not drawn on"):
        SamplerQNN(**kwargs, noise_model=model, noise_method="trajectories", shots=100)


def test_the_kernel_engines_refuse_a_program_with_noise_channels():
    """A pure-state program with CHANNEL ops (what the compiler emits for a noise model, before
    the density or trajectory transform) is refused, naming the op, by both compiled engines:
    neither has a channel op, and neither may run one as if it were unitary."""
    from gpuqnn._aer_noise import noise_table
    from gpuqnn._compile import OpKind, compile_circuit
    from gpuqnn._cuda.tables import unsupported_reason as cuda_reason
    from gpuqnn._native.tables import unsupported_reason as native_reason
    from gpuqnn._sim.readout import PauliReadout

    circuit, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    model = NoiseModel()
    model.add_all_qubit_quantum_error(depolarizing_error(0.1, 2), ["cx"])
    program = compile_circuit(circuit, list(circuit.parameters), noise_table(model))
    first = next(i for i, op in enumerate(program.ops) if op.kind is OpKind.CHANNEL)
    assert cuda_reason(program) == (
        f"op {first} is a noise channel (CHANNEL): the kernels have no channel op"
    )
    readout = PauliReadout.__new__(PauliReadout)  # only its type is looked at
    assert native_reason(program, readout) == (
        f"op {first} is a noise channel (CHANNEL): the native engine has no channel op"
    )

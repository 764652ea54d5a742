"""Both gradient methods (adjoint and parameter shift) and the fused engine under them, against
qiskit-machine-learning's own networks, qiskit's Statevector and finite differences: random
layered circuits of up to 10 qubits (Kronecker groups at the top, middle and bottom of the
register, partial layers), phase blocks with permutations and controls, several observables,
interpreted and raw probabilities, both dtypes, chunked and threaded batches."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.circuit.library import real_amplitudes
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._compile import compile_circuit
from gpuqnn._sim.backend import select_backend
from gpuqnn._sim.block_circuit import BlockCircuit
from gpuqnn._sim.fusion import GATE, LAYER, PHASE, fuse
from gpuqnn.examples import zz_real_amplitudes

from circuits import assert_same_passes, layered_network, observables

METHODS = ["adjoint", "parameter_shift"]


def assert_close(ours, ref, atol: float) -> None:
    if ref is None:
        assert ours is None
        return
    assert ours.shape == ref.shape and ours.dtype == np.float64
    np.testing.assert_allclose(ours, ref, rtol=0, atol=atol)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("seed", "num_qubits"), [(1, 1), (2, 2), (3, 3), (4, 5), (5, 6), (6, 9), (7, 10)]
)
def test_layered_estimator_matches_qml(method: str, seed: int, num_qubits: int) -> None:
    qc, x, w = layered_network(seed, num_qubits)
    rng = np.random.default_rng(seed)
    kwargs = {
        "circuit": qc,
        "observables": observables(num_qubits, rng),
        "input_params": x,
        "weight_params": w,
        "input_gradients": True,
    }
    ours = EstimatorQNN(**kwargs, gradient_method=method)
    ref = QmlEstimatorQNN(**kwargs)
    inputs, weights = rng.uniform(-2, 2, (3, 2)), rng.uniform(-2, 2, 5)
    assert_same_passes(ours, ref, inputs, weights, 1e-9)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("seed", "num_qubits", "interpret"),
    [(11, 3, "tuple"), (12, 4, "parity"), (13, 5, None), (14, 9, "parity")],
)
def test_layered_sampler_matches_qml(
    method: str, seed: int, num_qubits: int, interpret: str | None
) -> None:
    qc, x, w = layered_network(seed, num_qubits)
    kwargs = {"circuit": qc, "input_params": x, "weight_params": w, "input_gradients": True}
    if interpret == "tuple":
        kwargs.update(interpret=lambda k: (k % 2, (k >> 1) % 3), output_shape=(2, 3))
    elif interpret == "parity":
        kwargs.update(interpret=lambda k: bin(k).count("1") % 2, output_shape=2)
    ours = SamplerQNN(**kwargs, gradient_method=method)
    ref = QmlSamplerQNN(**kwargs)
    rng = np.random.default_rng(seed)
    inputs, weights = rng.uniform(-2, 2, (2, 2)), rng.uniform(-2, 2, 5)
    assert_same_passes(ours, ref, inputs, weights, 1e-9)


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
@pytest.mark.parametrize("method", METHODS)
def test_gradients_match_finite_differences(method: str, dtype: str) -> None:
    qc, x, w = layered_network(21, 6, layers=4)
    rng = np.random.default_rng(21)
    qnn = EstimatorQNN(
        circuit=qc,
        observables=observables(6, rng),
        input_params=x,
        weight_params=w,
        input_gradients=True,
        gradient_method=method,
        dtype=dtype,
    )
    reference = EstimatorQNN(
        circuit=qc,
        observables=observables(6, np.random.default_rng(21)),
        input_params=x,
        weight_params=w,
    )
    inputs, weights = rng.uniform(-2, 2, (4, 2)), rng.uniform(-2, 2, 5)
    input_grad, weight_grad = qnn.backward(inputs, weights)
    step, atol = 1e-5, (1e-7 if dtype == "complex128" else 2e-4)
    for j in range(2):
        dx = np.zeros(2)
        dx[j] = step
        fd = (reference.forward(inputs + dx, weights) - reference.forward(inputs - dx, weights)) / (
            2 * step
        )
        np.testing.assert_allclose(input_grad[:, :, j], fd, atol=atol, rtol=0)
    for j in range(5):
        dw = np.zeros(5)
        dw[j] = step
        fd = (reference.forward(inputs, weights + dw) - reference.forward(inputs, weights - dw)) / (
            2 * step
        )
        np.testing.assert_allclose(weight_grad[:, :, j], fd, atol=atol, rtol=0)


def test_observable_with_pauli_phases_gradient() -> None:
    """A Hermitian observable written with phased Pauli products (-i XY = Z) and Y terms:
    gradients by both methods match finite differences. (Non-Hermitian observables are
    refused at construction, see test_contract.py.)"""
    qc, x, w = layered_network(31, 3)
    observable = SparsePauliOp.from_list([("XYZ", 0.5), ("ZZI", -0.3), ("IIX", 1.0)]) + (
        -1j * (SparsePauliOp("IXI") @ SparsePauliOp("IYI")) * 0.7
    )
    rng = np.random.default_rng(31)
    inputs, weights = rng.uniform(-2, 2, (2, 2)), rng.uniform(-2, 2, 5)
    for method in METHODS:
        qnn = EstimatorQNN(
            circuit=qc,
            observables=observable,
            input_params=x,
            weight_params=w,
            gradient_method=method,
        )
        _, weight_grad = qnn.backward(inputs, weights)
        for j in range(5):
            dw = np.zeros(5)
            dw[j] = 1e-5
            fd = (qnn.forward(inputs, weights + dw) - qnn.forward(inputs, weights - dw)) / 2e-5
            np.testing.assert_allclose(weight_grad[:, :, j], fd, atol=1e-7, rtol=0)


def test_methods_agree_on_the_benchmark_networks() -> None:
    """Adjoint, parameter shift and qiskit-machine-learning on the 8-qubit ZZ network."""
    qc, feature_map, ansatz = zz_real_amplitudes(8, reps=3)
    rng = np.random.default_rng(5)
    inputs = rng.uniform(0, 2 * np.pi, (3, 8))
    weights = rng.uniform(0, 2 * np.pi, ansatz.num_parameters)
    kwargs = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "input_gradients": True,
    }
    ref = QmlEstimatorQNN(**kwargs).backward(inputs, weights)
    for method in METHODS:
        ours = EstimatorQNN(**kwargs, gradient_method=method).backward(inputs, weights)
        for a, b in zip(ours, ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_chunked_and_threaded_batches_give_the_same_result(method: str) -> None:
    """Tiny max_memory forces many chunks (spread over worker threads); sizes that change from
    call to call reuse the workspace buffers; results equal the one-chunk run."""
    qc, x, w = layered_network(41, 5)
    rng = np.random.default_rng(41)
    kwargs = {
        "circuit": qc,
        "observables": observables(5, rng),
        "input_params": x,
        "weight_params": w,
        "input_gradients": True,
        "gradient_method": method,
    }
    whole = EstimatorQNN(**kwargs)
    chunked = EstimatorQNN(**kwargs, max_memory=60_000)
    weights = rng.uniform(-2, 2, 5)
    for batch in (37, 5, 64, 1):
        inputs = rng.uniform(-2, 2, (batch, 2))
        assert_same_passes(chunked, whole, inputs, weights, 1e-12)


def test_auto_picks_the_cheaper_method_and_says_so() -> None:
    qc, feature_map, ansatz = zz_real_amplitudes(4, reps=2)
    common = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
    }
    one_output = EstimatorQNN(**common)
    assert one_output.resolved_gradient_method() == "adjoint"
    assert "gradient_method='auto' (adjoint)" in repr(one_output)
    # 16 outputs and 12 weights: per sample, adjoint sweeps 16 adjoint states, parameter shift
    # 25 rows of which most start late in the circuit
    raw = SamplerQNN(**common)
    assert raw.resolved_gradient_method() == "parameter_shift"
    assert "(parameter_shift)" in repr(raw)
    forced = SamplerQNN(**common, gradient_method="adjoint")
    assert forced.resolved_gradient_method() == "adjoint"
    assert "gradient_method='adjoint'" in repr(forced)
    shots = SamplerQNN(**common, shots=100, seed=1)
    assert shots.resolved_gradient_method() == "parameter_shift"


def test_adjoint_with_shots_is_refused() -> None:
    qc, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    with pytest.raises(ValueError, match="adjoint.*shots"):
        SamplerQNN(
            circuit=qc,
            input_params=feature_map.parameters,
            weight_params=ansatz.parameters,
            shots=10,
            gradient_method="adjoint",
        )


def test_gradient_method_is_validated() -> None:
    qc, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    with pytest.raises(ValueError, match="gradient_method.*'adjoint'.*'backprop'"):
        EstimatorQNN(
            circuit=qc,
            input_params=feature_map.parameters,
            weight_params=ansatz.parameters,
            gradient_method="backprop",
        )


# ---- fusion -----------------------------------------------------------------------------------


def test_zz_network_fuses_into_phase_and_layer_blocks() -> None:
    """ZZ feature map: the Hadamard layer, then ONE phase block with every p and parity phase;
    RealAmplitudes: real RY layers between CX-chain permutation blocks."""
    qc, feature_map, ansatz = zz_real_amplitudes(6, reps=2)
    program = compile_circuit(qc, list(qc.parameters))
    specs = fuse(program.ops, program.num_qubits)
    kinds = [spec.kind for spec in specs]
    assert kinds == [LAYER, PHASE, LAYER, PHASE, LAYER, PHASE, LAYER]
    fm_slots = {op.slot for i in specs[1].ops if (op := program.ops[i]).slot >= 0}
    assert len(fm_slots) == 6 + 15  # p(2 x_i) and every pair's phase
    assert sorted(i for spec in specs for i in spec.ops) == list(range(len(program.ops)))
    engine = BlockCircuit(program, select_backend("cpu", "complex128"))
    assert len(engine.blocks) == 6  # the Hadamard layer is folded into the initial state
    assert all(block.real for block in engine.blocks if block.kind == LAYER)


def test_fusion_keeps_non_commuting_order() -> None:
    """u gates (rz ry rz) between entanglers, controlled rotations and a 2-qubit dense gate:
    the fused program equals the circuit (Statevector), and blocks of every kind appear."""
    rng = np.random.default_rng(3)
    qc = QuantumCircuit(4)
    params = ParameterVector("t", 20)
    k = 0
    for _ in range(2):
        for q in range(4):
            qc.u(params[k], params[k + 1], float(rng.uniform()), q)
            k += 2
        qc.cx(0, 1)
        qc.crx(params[k], 2, 3)
        qc.iswap(1, 2)
        qc.rzz(params[k + 1], 0, 3)
        k += 2
    program = compile_circuit(qc, list(qc.parameters))
    kinds = {spec.kind for spec in fuse(program.ops, program.num_qubits)}
    assert kinds == {LAYER, PHASE, GATE}
    values = rng.uniform(-3, 3, len(qc.parameters))
    engine = BlockCircuit(program, select_backend("cpu", "complex128"))
    psi = engine.evolve(program.angles.angles(values[None]))[0]
    reference = Statevector(
        qc.assign_parameters(dict(zip(qc.parameters, values, strict=True)))
    ).data
    overlap = np.vdot(reference, psi)
    assert abs(abs(overlap) - 1) < 1e-12


def test_phase_block_slot_limit_splits_big_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    import gpuqnn._sim.fusion as fusion  # noqa: PLC0415

    monkeypatch.setattr(fusion, "MAX_PHASE_TABLE_BYTES", 3 * 8 * 2**4)  # three slots at n=4
    qc, feature_map, ansatz = zz_real_amplitudes(4, reps=1)
    program = compile_circuit(qc, list(qc.parameters))
    specs = fusion.fuse(program.ops, program.num_qubits)
    for spec in specs:
        if spec.kind == PHASE:
            assert sum(program.ops[i].slot >= 0 for i in spec.ops) <= 3
    kwargs = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "input_gradients": True,
    }
    rng = np.random.default_rng(2)
    inputs, weights = rng.uniform(0, 3, (2, 4)), rng.uniform(0, 3, ansatz.num_parameters)
    ref = QmlEstimatorQNN(**kwargs)
    ours = EstimatorQNN(**kwargs)
    assert_same_passes(ours, ref, inputs, weights, 1e-9)


def test_exp_i_phi_table_method_is_exact_to_rounding() -> None:
    from gpuqnn._sim.expi import ExpI  # noqa: PLC0415

    rng = np.random.default_rng(0)
    cis = ExpI()
    for scale in (1e-6, 1.0, 30.0, 1e3):
        phi = rng.uniform(-scale, scale, (7, 333))
        out = np.empty(phi.shape, dtype=complex)
        cis(phi.copy(), out)
        np.testing.assert_allclose(out, np.exp(1j * phi), rtol=0, atol=3e-16 * max(scale, 30))
    edges = np.array([0.0, np.pi, -np.pi, 2 * np.pi, np.pi / 512, -np.pi / 1024, 1e5])
    out = np.empty(edges.shape, dtype=complex)
    cis(edges.copy(), out)
    np.testing.assert_allclose(out, np.exp(1j * edges), rtol=0, atol=2e-11)


def test_ansatz_without_inputs_and_constant_prefix_only() -> None:
    """No inputs (weights only), and a circuit whose only parametric gate comes last after a
    long constant prefix (folded into the initial state)."""
    ansatz = real_amplitudes(3, reps=2)
    qnn = EstimatorQNN(circuit=ansatz, weight_params=ansatz.parameters, gradient_method="adjoint")
    ref = QmlEstimatorQNN(circuit=ansatz, weight_params=ansatz.parameters)
    weights = np.linspace(-1, 1, ansatz.num_parameters)
    assert_close(qnn.forward(None, weights), ref.forward(None, weights), 1e-10)
    assert_close(qnn.backward(None, weights)[1], ref.backward(None, weights)[1], 1e-10)
    theta = ParameterVector("t", 1)
    qc = QuantumCircuit(3)
    qc.h([0, 1, 2])
    qc.cx(0, 1)
    qc.t(2)
    qc.ry(theta[0], 1)
    qnn = EstimatorQNN(circuit=qc, weight_params=theta, observables=SparsePauliOp("XXZ"))
    ref = QmlEstimatorQNN(circuit=qc, weight_params=theta, observables=SparsePauliOp("XXZ"))
    for method in METHODS:
        qnn = EstimatorQNN(
            circuit=qc,
            weight_params=theta,
            observables=SparsePauliOp("XXZ"),
            gradient_method=method,
        )
        assert_close(qnn.backward(None, [0.3])[1], ref.backward(None, [0.3])[1], 1e-12)

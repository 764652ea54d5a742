"""The native CPU engine (``gpuqnn._native``) on its own: random programs over every op kind
(controls, up to 5-target diagonals, 3-target rotations and dense ops), both readouts, both
dtypes and every instruction set this CPU runs, against the NumPy block engine and finite
differences; dispatch (``engine=``, ``GPUQNN_ENGINE``, ``GPUQNN_NATIVE_ISA``), threads and bad
input. Networks on the native engine also run the whole conformance suite
(``test_conformance.py``, the ``native`` entry of ``engines.ENGINES``)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import PauliEvolutionGate
from qiskit.quantum_info import SparsePauliOp

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._internals import simulator_of
from gpuqnn._native import NativeRunner, load_core
from gpuqnn._sim.backend import select_backend
from gpuqnn._sim.block_circuit import BlockCircuit
from gpuqnn._sim.buffers import Buffers
from gpuqnn.examples import parity, zz_real_amplitudes

from engines import native_built
from programs import engine_outputs, make_readout, random_program, random_shifts

pytestmark = pytest.mark.skipif(
    not native_built(), reason="the native engine is not built (no C++ compiler at install)"
)

TOL = {"complex128": 1e-11, "complex64": 2e-5}
"""Absolute tolerance against the NumPy engine in the same dtype."""
FD_TOL = {"complex128": 1e-7, "complex64": 2e-4}
"""Absolute tolerance of derivatives against central finite differences (step 1e-5) of the
NumPy engine in complex128."""

ISAS = list(load_core().isas()) if load_core() is not None else []


def _runner(program, readout, dtype: str, isa: str) -> NativeRunner:
    circuit = BlockCircuit(program, select_backend("cpu", dtype))
    return NativeRunner(load_core(), circuit, readout, isa)


def _finite_differences(program, readout, angles: np.ndarray, step: float = 1e-5) -> np.ndarray:
    """(B, O, K) central differences of the NumPy engine's outputs in complex128."""
    none = (np.full(1, -1, dtype=np.int32), np.zeros(1))
    rows, slots = angles.shape
    grads = []
    for k in range(slots):
        shifted = []
        for sign in (1, -1):
            moved = angles.copy()
            moved[:, k] += sign * step
            shifted.append(engine_outputs(program, readout, "complex128", moved, *none))
        grads.append((shifted[0] - shifted[1]) / (2 * step))
    return np.stack(grads, axis=-1)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
@pytest.mark.parametrize("kind", ["pauli", "direct", "pieces"])
def test_random_programs_match_the_numpy_engine_and_finite_differences(isa, dtype, kind) -> None:
    for seed, n in ((0, 3), (1, 5)):
        program = random_program(seed, n, num_ops=20)
        readout = make_readout(kind, n, seed, dtype)
        runner = _runner(program, readout, dtype, isa)
        assert runner.isa == isa and isa in runner.description
        rng = np.random.default_rng(seed)
        slots = program.angles.num_slots
        angles = rng.uniform(-np.pi, np.pi, (3, slots))
        shift_slot, shift_value = random_shifts(rng, slots, 4)
        expected = engine_outputs(program, readout, dtype, angles, shift_slot, shift_value)

        buffers = Buffers(np)
        np.testing.assert_allclose(
            runner.forward(angles, buffers), expected[:3], rtol=0, atol=TOL[dtype]
        )

        class Plan:  # the two fields a runner reads of a ShiftPlan
            pass

        plan = Plan()
        plan.shift_slot, plan.shift_value = shift_slot, shift_value
        np.testing.assert_allclose(
            runner.shifted(angles, plan, buffers), expected, rtol=0, atol=TOL[dtype]
        )

        # every output's derivatives by a subset of the slots, in an order of their own
        fd = _finite_differences(program, make_readout(kind, n, seed, "complex128"), angles)
        slots_by = list(rng.permutation(slots)[: max(1, slots - 2)])
        got = runner.adjoint(angles, slots_by, buffers, checkpoints=False)
        assert got.shape == (3, readout.num_outputs, len(slots_by))
        np.testing.assert_allclose(got, fd[:, :, slots_by], rtol=0, atol=FD_TOL[dtype])
        assert np.abs(fd[:, :, slots_by]).max() > 1e-2  # not vacuous

        # the vector-Jacobian product, from one call and from a kept forward pass (the tape)
        cotangent = rng.normal(size=(3, readout.num_outputs))
        product = np.einsum("bo,bos->bs", cotangent, fd[:, :, slots_by])[:, None, :]
        vjp = runner.adjoint(angles, slots_by, buffers, False, cotangent)
        np.testing.assert_allclose(vjp, product, rtol=0, atol=10 * FD_TOL[dtype])
        sweep = runner.sweep(angles, slots_by, Buffers(np))
        np.testing.assert_allclose(sweep.outputs, expected[:3], rtol=0, atol=TOL[dtype])
        assert sweep.phi.shape == (1, 3, 1 << n) and sweep.phi.dtype == np.dtype(dtype)
        np.testing.assert_allclose(
            runner.reverse(sweep, slots_by, cotangent), vjp, rtol=0, atol=TOL[dtype]
        )


def _estimator(**options) -> EstimatorQNN:
    qc, feature_map, ansatz = zz_real_amplitudes(6, reps=1)
    return EstimatorQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
        **options,
    )


def test_threads_split_the_rows_and_change_nothing() -> None:
    """600 rows of 6 qubits on 2 worker threads (each gets rows, the executor's rule) and on
    one: the same values, Jacobians and products, equal to the NumPy engine's."""
    rng = np.random.default_rng(3)
    inputs, weights = rng.uniform(0, np.pi, (600, 6)), rng.uniform(0, np.pi, 12)
    one, two, reference = _estimator(threads=1), _estimator(threads=2), _estimator(engine="numpy")
    assert one.threads == 1 and two.threads == 2
    sizing = simulator_of(two).executor.sizing(64, "a row", 600, states=64)
    assert sizing.workers == 2
    np.testing.assert_array_equal(one.forward(inputs, weights), two.forward(inputs, weights))
    for a, b in zip(one.backward(inputs, weights), two.backward(inputs, weights), strict=True):
        np.testing.assert_array_equal(a, b)
    expected = reference.backward(inputs, weights)
    for got, want in zip(two.backward(inputs, weights), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)


def test_parameter_shift_on_the_native_engine_matches_the_adjoint() -> None:
    rng = np.random.default_rng(5)
    inputs, weights = rng.uniform(0, np.pi, (4, 6)), rng.uniform(0, np.pi, 12)
    shift = _estimator(gradient_method="parameter_shift")
    adjoint = _estimator(gradient_method="adjoint")
    assert "native" in shift.engine and shift.resolved_gradient_method() == "parameter_shift"
    for a, b in zip(
        shift.backward(inputs, weights), adjoint.backward(inputs, weights), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-11)


def test_auto_and_cpu_use_the_native_engine_and_repr_says_so() -> None:
    for device in ("auto", "cpu"):
        network = _estimator(device=device)
        assert network.engine.startswith("native CPU engine (")
        assert repr(network).endswith(f", engine: {network.engine})")
    assert repr(_estimator(engine="numpy")).endswith(", engine: block engine)")


def test_the_environment_forces_numpy_or_an_instruction_set(monkeypatch) -> None:
    monkeypatch.setenv("GPUQNN_ENGINE", "numpy")
    assert _estimator().engine == "block engine"
    assert _estimator(engine="native").engine.startswith("native")  # the option wins
    monkeypatch.setenv("GPUQNN_ENGINE", "fast")
    with pytest.raises(ValueError, match="GPUQNN_ENGINE.*engine must be one of.*'fast'"):
        _estimator()
    monkeypatch.delenv("GPUQNN_ENGINE")
    monkeypatch.setenv("GPUQNN_NATIVE_ISA", "generic")
    assert _estimator().engine == "native CPU engine (generic)"
    monkeypatch.setenv("GPUQNN_NATIVE_ISA", "sse9")
    with pytest.raises(ValueError, match=r"GPUQNN_NATIVE_ISA.*isa must be .*got 'sse9'"):
        _estimator()


@pytest.mark.parametrize("engine", ["fast", "NUMPY", 1, None])
def test_a_bad_engine_option_is_named(engine) -> None:
    with pytest.raises(ValueError, match=rf"engine must be one of .*got {engine!r}"):
        _estimator(engine=engine)


def _four_qubit_unitary() -> tuple[QuantumCircuit, Parameter]:
    """An evolution under XXYZ: compiled to a 4-qubit dense basis change (more targets than the
    native engine applies) around a phase."""
    qc = QuantumCircuit(4)
    theta = Parameter("t")
    qc.append(PauliEvolutionGate(SparsePauliOp("XXYZ"), theta), range(4))
    return qc, theta


def test_a_circuit_the_native_engine_cannot_run(caplog) -> None:
    qc, theta = _four_qubit_unitary()
    with pytest.raises(ValueError, match="engine='native' cannot run.*4 targets"):
        EstimatorQNN(circuit=qc, weight_params=[theta], engine="native")
    with caplog.at_level(logging.INFO, logger="gpuqnn._native.runner"):
        network = EstimatorQNN(circuit=qc, weight_params=[theta])
    assert network.engine == "block engine"
    assert "native CPU engine not used" in caplog.text and "4 targets" in caplog.text


def test_the_sampler_with_interpret_on_both_dtypes() -> None:
    qc, feature_map, ansatz = zz_real_amplitudes(5, reps=2)
    qc.measure_all()
    rng = np.random.default_rng(8)
    inputs, weights = rng.uniform(0, np.pi, (7, 5)), rng.uniform(0, np.pi, ansatz.num_parameters)
    kwargs = {
        "circuit": qc,
        "input_params": feature_map.parameters,
        "weight_params": ansatz.parameters,
        "interpret": parity,
        "output_shape": 2,
        "input_gradients": True,
    }
    reference = SamplerQNN(**kwargs, engine="numpy")
    cotangent = rng.normal(size=(7, 2))
    for dtype, atol in (("complex128", 1e-12), ("complex64", 2e-5)):
        native = SamplerQNN(**kwargs, dtype=dtype)
        assert "native" in native.engine
        np.testing.assert_allclose(
            native.forward(inputs, weights), reference.forward(inputs, weights), atol=atol, rtol=0
        )
        got = native.vjp(inputs, weights, cotangent)
        want = reference.vjp(inputs, weights, cotangent)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, atol=10 * atol, rtol=0)


def test_auto_leaves_large_circuits_to_numpy_unless_asked(caplog) -> None:
    qc, feature_map, ansatz = zz_real_amplitudes(11, reps=1)
    kwargs = {"circuit": qc, "input_params": feature_map.parameters}
    kwargs["weight_params"] = ansatz.parameters
    with caplog.at_level(logging.INFO, logger="gpuqnn._native.runner"):
        assert EstimatorQNN(**kwargs).engine == "block engine"
    assert "11 qubits" in caplog.text and "engine='native'" in caplog.text
    native = EstimatorQNN(**kwargs, engine="native")
    assert native.engine.startswith("native")
    rng = np.random.default_rng(2)
    inputs, weights = rng.uniform(0, np.pi, (3, 11)), rng.uniform(0, np.pi, ansatz.num_parameters)
    np.testing.assert_allclose(
        native.forward(inputs, weights),
        EstimatorQNN(**kwargs).forward(inputs, weights),
        rtol=0,
        atol=1e-11,
    )


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_a_jacobian_of_many_outputs_runs_in_blocks_of_outputs(dtype) -> None:
    """With room for 3 adjoint states per call, the 8 outputs of a full distribution run in
    blocks of 3, 3 and 2 (each sweeping forward again): the same derivatives as in one call."""
    program = random_program(4, 3, num_ops=16)
    readout = make_readout("direct", 3, 4, dtype)
    circuit = BlockCircuit(program, select_backend("cpu", dtype))
    whole = NativeRunner(load_core(), circuit, readout)
    itemsize = np.dtype(dtype).itemsize
    blocked = NativeRunner(load_core(), circuit, readout, scratch_bytes=4 * 8 * 8 * itemsize)
    assert blocked._output_block() == 3 and whole._output_block() == 8
    angles = np.random.default_rng(4).uniform(-3, 3, (11, program.angles.num_slots))
    slots = list(range(program.angles.num_slots))
    expected = whole.adjoint(angles, slots, Buffers(np), False)
    np.testing.assert_array_equal(blocked.adjoint(angles, slots, Buffers(np), False), expected)
    fd = _finite_differences(program, make_readout("direct", 3, 4, "complex128"), angles)
    np.testing.assert_allclose(expected, fd, rtol=0, atol=FD_TOL[dtype])
    assert blocked.adjoint_cost(slots, False) > whole.adjoint_cost(slots, False)


def test_max_memory_bounds_the_native_passes_too() -> None:
    """The native runner counts its scratch per row: a budget of a few rows runs in chunks,
    with the same values as one chunk."""
    rng = np.random.default_rng(9)
    inputs, weights = rng.uniform(0, np.pi, (40, 6)), rng.uniform(0, np.pi, 12)
    roomy, tight = _estimator(), _estimator(max_memory=60_000)
    assert (
        simulator_of(tight)
        .executor.sizing(simulator_of(tight).runner.row_bytes(), "a row", 40)
        .chunk
        < 40
    )
    np.testing.assert_allclose(
        tight.forward(inputs, weights), roomy.forward(inputs, weights), rtol=0, atol=0
    )
    for a, b in zip(tight.backward(inputs, weights), roomy.backward(inputs, weights), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert "native" in tight.engine


def test_noisy_networks_stay_on_the_block_engine(caplog) -> None:
    """A noise model's channels are non-unitary, and the native adjoint un-applies ops: a noisy
    network is refused with engine='native' and runs on the block engine with 'auto', where
    its outputs and gradients equal those of a network forced onto NumPy."""
    noise = pytest.importorskip("qiskit_aer.noise")
    model = noise.NoiseModel()
    model.add_all_qubit_quantum_error(noise.depolarizing_error(0.05, 2), ["cx"])
    model.add_all_qubit_quantum_error(noise.amplitude_damping_error(0.1), ["ry"])
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    kwargs = dict(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
        noise_model=model,
    )
    with pytest.raises(ValueError, match="engine='native' cannot run this network"):
        EstimatorQNN(**kwargs, engine="native").forward(np.zeros(3), np.zeros(6))
    auto, numpy_engine = EstimatorQNN(**kwargs), EstimatorQNN(**kwargs, engine="numpy")
    assert auto.engine == "block engine"
    rng = np.random.default_rng(5)
    x, w = rng.uniform(0, np.pi, (4, 3)), rng.uniform(-1, 1, 6)
    np.testing.assert_array_equal(auto.forward(x, w), numpy_engine.forward(x, w))
    for got, want in zip(auto.backward(x, w), numpy_engine.backward(x, w), strict=True):
        np.testing.assert_array_equal(got, want)

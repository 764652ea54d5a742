"""The specialised kernels (gpuqnn/_cuda/codegen.py) on the CPU: the generated source built for
the host (``GPUQNN_HOST``), launch by launch against the NumPy engine's adjoint method and
finite differences; the phase-run planning; and what ``gradient_method="auto"`` picks on the
emulated GPU backend for the 8-, 12- and 13-qubit workloads and for programs that do not fit."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.quantum_info import SparsePauliOp, Statevector

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._compile import OpKind, Program
from gpuqnn._cuda.codegen import generate_adjoint, generate_forward
from gpuqnn._cuda.layout import adjoint_shared_bytes
from gpuqnn._cuda.passes import PhaseRun, build_passes
from gpuqnn._cuda.tables import encode_tables
from gpuqnn._internals import simulator_of
from gpuqnn._sim.adjoint import adjoint_gradients
from gpuqnn._sim.backend import select_backend
from gpuqnn._sim.block_circuit import BlockCircuit
from gpuqnn.examples import zz_real_amplitudes

from engines import THREAD_ORDERS, Emulation, HostFusedLauncher, HostKernels
from programs import make_readout, random_program

pytestmark = pytest.mark.gpu_logic

TOL = {"complex128": 1e-10, "complex64": 1e-6}  # complex64: measured worst 3.8e-7
H200_SHARED = 227 * 1024


def _reference(program, readout, dtype, base, slots, cotangent=None) -> np.ndarray:
    """The NumPy engine's adjoint method (no checkpoints)."""
    circuit = BlockCircuit(program, readout.backend)
    angles = base.astype(readout.backend.real_dtype)
    g = None if cotangent is None else cotangent.astype(readout.backend.real_dtype)
    return np.asarray(adjoint_gradients(circuit, readout, angles, slots, False, cotangent=g))


CASES = [(seed, n) for seed, n in enumerate([1, 2, 4, 6])]


@pytest.mark.parametrize("order", sorted(THREAD_ORDERS))
@pytest.mark.parametrize("vjp", [False, True], ids=["jacobian", "vjp"])
@pytest.mark.parametrize("readout_kind", ["pauli", "direct", "pieces"])
@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
@pytest.mark.parametrize(("seed", "n"), CASES, ids=[f"n{n}" for _s, n in CASES])
def test_fused_adjoint_matches_the_numpy_adjoint(
    kernels: HostKernels, seed: int, n: int, dtype: str, readout_kind: str, vjp: bool, order: str
) -> None:
    """Every op kind (1-3 targets, controls, wide diagonals, parity phases), every readout,
    a subset of slots in a shuffled order, both thread orders and the strict emulation: one
    launch per pass."""
    program = random_program(seed, n)
    readout = make_readout(readout_kind, n, seed, dtype)
    kp = encode_tables(program, readout)
    runner = HostFusedLauncher(kernels, kp, dtype, max_blocks=2, **THREAD_ORDERS[order])
    rng = np.random.default_rng(seed)
    k = program.angles.num_slots
    slots = [int(s) for s in rng.permutation(k)[: max(1, (2 * k) // 3)]]
    base = rng.uniform(-np.pi, np.pi, (3, k))
    cotangent = rng.normal(size=(3, kp.num_outputs)) if vjp else None
    launches = []
    run = runner._execute_generated
    runner._execute_generated = lambda kernel, launch: (
        launches.append(launch),
        run(kernel, launch),
    )
    got = runner.adjoint(base, slots, cotangent)
    expected = _reference(program, readout, dtype, base, slots, cotangent)
    assert got.shape == expected.shape == (3, 1 if vjp else kp.num_outputs, len(slots))
    assert len(launches) == 1 and launches[0].grid == 2  # rows strided over 2 blocks
    np.testing.assert_allclose(got, expected, atol=TOL[dtype] * max(1, np.abs(expected).max()))


@pytest.mark.parametrize("keep", [True, False], ids=["final-kept", "final-recomputed"])
def test_outputs_beyond_the_first_recompute_or_restore_the_final_state(
    kernels: HostKernels, keep: bool
) -> None:
    """With room for a third state the final state is kept between outputs; without it the
    forward sweep runs again per output: both give the same derivatives."""
    program = random_program(7, 5)
    readout = make_readout("pauli", 5, 7, "complex128")
    kp = encode_tables(program, readout)
    slots = list(range(program.angles.num_slots))
    two = adjoint_shared_bytes(kp, "complex128", len(slots), False, False)
    three = adjoint_shared_bytes(kp, "complex128", len(slots), False, True)
    assert three > two
    limit = three if keep else three - 16
    runner = HostFusedLauncher(kernels, kp, "complex128", shared_limit=limit)
    assert runner.adjoint_kernel(slots, False).keeps_final is keep
    base = np.random.default_rng(7).uniform(-2, 2, (2, len(slots)))
    np.testing.assert_allclose(
        runner.adjoint(base, slots),
        _reference(program, readout, "complex128", base, slots),
        atol=1e-10,
    )
    assert generate_adjoint(kp, "complex128", slots, False, two - 16) is None


def test_fused_adjoint_matches_finite_differences(kernels: HostKernels) -> None:
    """Against central differences of qiskit's Statevector, independent of the NumPy engine."""
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=2)
    observable = SparsePauliOp(["ZZI", "XIY"], [0.7, -0.4])
    network = EstimatorQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        observables=observable,
    )
    sim = simulator_of(network)
    runner = HostFusedLauncher(kernels, encode_tables(sim.program, sim.readout))
    rng = np.random.default_rng(3)
    x, w = rng.uniform(0, 1, 3), rng.uniform(-1, 1, ansatz.num_parameters)
    params = np.concatenate([x, w])[None]
    slots = list(range(sim.program.angles.num_slots))
    dslot = runner.adjoint(np.asarray(sim.angle_map.angles(params)), slots)
    grad = dslot @ np.asarray(sim.angle_map.jacobian(params, slots, list(range(params.shape[1]))))
    ordered = list(feature_map.parameters) + list(ansatz.parameters)

    def value(p: np.ndarray) -> float:
        bound = qc.assign_parameters(dict(zip(ordered, p, strict=True)))
        return float(np.real(Statevector(bound).expectation_value(observable)))

    eps = 1e-6
    fd = [
        (value(params[0] + eps * e) - value(params[0] - eps * e)) / (2 * eps)
        for e in np.eye(params.shape[1])
    ]
    np.testing.assert_allclose(grad[0, 0], fd, atol=1e-7)


def test_passes_gather_phases_and_multiply_constant_runs() -> None:
    """h(0) p(0) h(1) p(1) ... : the Hadamards move ahead of one phase run and multiply into
    dense ops of at most three qubits; the parametric ops stay, each once, in order; the
    passes give the program's state."""
    qc, feature_map, ansatz = zz_real_amplitudes(4, reps=1)
    network = EstimatorQNN(
        circuit=qc, input_params=feature_map.parameters, weight_params=ansatz.parameters
    )
    program = simulator_of(network).program
    passes = build_passes(program)
    runs = [p for p in passes if isinstance(p, PhaseRun)]
    phases = [op for op in program.ops if op.kind is OpKind.PHASE]
    assert len(runs) == 1 and list(runs[0].ops) == phases
    assert isinstance(passes[2], PhaseRun)  # h(0) h(1) h(2), then h(3), then the run
    assert [len(p.ops[0].targets) for p in passes[:2]] == [3, 1]
    parametric = [op for p in passes for op in p.ops if op.slot >= 0]
    assert parametric == [op for op in program.ops if op.slot >= 0]
    assert all(len(op.qubits) <= 3 for p in passes for op in p.ops)
    cx = [p.ops[0] for p in passes[3:] if p.ops[0].slot < 0]  # the chain cx(2,3) cx(1,2) cx(0,1)
    assert [(op.kind, len(op.qubits)) for op in cx] == [(OpKind.DENSE, 3), (OpKind.PERM, 2)]
    x = np.random.default_rng(2).uniform(-1, 1, program.angles.num_slots)
    flat = Program(
        program.num_qubits,
        program.qubit_map,
        tuple(op for p in passes for op in p.ops),
        program.angles,
        program.slot_ops,
    )
    backend = select_backend("cpu", "complex128")
    np.testing.assert_allclose(
        BlockCircuit(flat, backend).evolve(x[None])[:1],
        BlockCircuit(program, backend).evolve(x[None])[:1],
        atol=1e-12,
    )


def test_generated_source_has_no_op_tables() -> None:
    """The ops are literals: the generated kernel bodies read no op table and dispatch on no
    kind, and each slot's cos/sin is computed once per row, not per op."""
    qc, feature_map, ansatz = zz_real_amplitudes(4, reps=1)
    network = EstimatorQNN(
        circuit=qc, input_params=feature_map.parameters, weight_params=ansatz.parameters
    )
    sim = simulator_of(network)
    kp = encode_tables(sim.program, sim.readout)
    for kernel in (
        generate_forward(kp, "complex128"),
        generate_adjoint(kp, "complex128", [0, 5], True, H200_SHARED),
    ):
        body = kernel.source.split("#define GQ_SPECIALISED 1", 1)[1].split("GQ_SPECIALISED\n")[-1]
        generated = body[body.index(f"GQ_DEVICE void {kernel.name}_body") :]
        assert "gq_load_op" not in generated and "switch" not in generated
        assert "gq_sincos(" not in generated  # CUDA's sincos, with its slow path
        # half and full angle, once per slot and row
        assert generated.count("gqs_sincos(a * 0.5,") == generated.count("gqs_sincos(a,") == 1


# ---- what auto picks on the emulated GPU ------------------------------------------------------
def _emulated(kernels: HostKernels, network, shared: int = H200_SHARED):
    """Move ``network`` to the emulated GPU with host-built kernels in mode 'auto'; its
    simulator and runner."""
    Emulation(kernels, shared_limit=shared).move(network)
    sim = simulator_of(network)
    return sim, sim.runner


@pytest.mark.parametrize(
    ("n", "dtype", "runner", "backward", "vjp"),
    [
        (8, "complex128", "fused", "adjoint", "adjoint"),
        (8, "complex64", "fused", "adjoint", "adjoint"),
        (12, "complex128", "fused", "adjoint", "adjoint"),
        (13, "complex64", "fused", "adjoint", "adjoint"),
        # 13 qubits in complex128: one state (128 KiB) fits, two do not: fused shift
        (13, "complex128", "fused", "parameter_shift", "parameter_shift"),
    ],
)
def test_auto_picks_the_fused_kernels(
    kernels: HostKernels, n: int, dtype: str, runner: str, backward: str, vjp: str
) -> None:
    qc, feature_map, ansatz = zz_real_amplitudes(n, reps=3)
    network = EstimatorQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
        dtype=dtype,
    )
    sim, built = _emulated(kernels, network)
    assert built is not None and built.description == f"{runner} CUDA kernels"
    columns = list(range(network.num_inputs + network.num_weights))
    assert sim.method(columns) == backward
    assert sim.method(columns, vjp=True) == vjp
    weights = list(range(network.num_inputs, network.num_inputs + network.num_weights))
    assert sim.method(weights) == backward


def test_auto_on_programs_that_do_not_fit_shared_memory(kernels: HostKernels) -> None:
    """Beyond the fused kernels: the per-op kernels for parameter shift and the block engine
    for adjoint, chosen by the block engine's cost model (a 6-qubit program on a device
    emulated with 1 KiB of shared memory)."""
    qc, feature_map, ansatz = zz_real_amplitudes(6, reps=2)
    network = EstimatorQNN(
        circuit=qc, input_params=feature_map.parameters, weight_params=ansatz.parameters
    )
    sim, built = _emulated(kernels, network, shared=1024)
    assert built.description == "per-op CUDA kernels" and sim.adjoint.runners == (sim.engine,)
    weights = list(range(network.num_inputs, network.num_inputs + network.num_weights))
    assert sim.method(weights) == "adjoint"  # engine adjoint beats per-row shift here
    rng = np.random.default_rng(0)
    x, w = rng.uniform(0, 1, (4, network.num_inputs)), rng.uniform(0, 1, network.num_weights)
    reference = EstimatorQNN(
        circuit=qc, input_params=feature_map.parameters, weight_params=ansatz.parameters
    )
    np.testing.assert_allclose(network.backward(x, w)[1], reference.backward(x, w)[1], atol=1e-10)


@pytest.mark.parametrize("cls", [EstimatorQNN, SamplerQNN])
def test_a_backward_pass_is_one_fused_adjoint_launch(kernels: HostKernels, cls) -> None:
    """On the fused kernels a network's backward (input and weight gradients) and a
    vector-Jacobian product are one launch each, with the CPU engine's values."""
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    kwargs = dict(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
    )
    if cls is SamplerQNN:
        qc.measure_all()
        kwargs.update(interpret=lambda key: key % 3, output_shape=3)
    network, reference = cls(**kwargs), cls(**kwargs)
    sim, built = _emulated(kernels, network)
    calls = []  # the kernel computes the angles and the chain rule from the parameters
    adjoint = built.launcher.adjoint_parameters
    built.launcher.adjoint_parameters = lambda *a, **k: (calls.append(a), adjoint(*a, **k))[1]
    rng = np.random.default_rng(5)
    x, w = rng.uniform(0, 1, (5, 3)), rng.uniform(0, 1, ansatz.num_parameters)
    got, expected = network.backward(x, w), reference.backward(x, w)
    np.testing.assert_allclose(got[0], expected[0], atol=1e-10)
    np.testing.assert_allclose(got[1], expected[1], atol=1e-10)
    assert len(calls) == 1
    g = rng.normal(size=(5, network.output_shape[0]))
    np.testing.assert_allclose(network.vjp(x, w, g)[1], reference.vjp(x, w, g)[1], atol=1e-10)
    assert len(calls) == 2


def test_a_run_op_that_phases_every_amplitude(kernels: HostKernels) -> None:
    """A phase op whose mask selects every basis state inside a run (seed 1034 draws one)
    builds for the host with -Werror and differentiates like the NumPy adjoint."""
    program = random_program(1034, 2, 24)
    run_ops = [op for p in build_passes(program) if isinstance(p, PhaseRun) for op in p.ops]
    assert any(np.all(np.asarray(op.data).real != 0) for op in run_ops)
    readout = make_readout("pauli", 2, 1034, "complex128")
    runner = HostFusedLauncher(kernels, encode_tables(program, readout))
    slots = list(range(program.angles.num_slots))
    base = np.random.default_rng(0).uniform(-1, 1, (2, len(slots)))
    np.testing.assert_allclose(
        runner.adjoint(base, slots),
        _reference(program, readout, "complex128", base, slots),
        atol=1e-12,
    )


def test_complex64_phase_runs_stay_accurate_for_large_angles(kernels: HostKernels) -> None:
    """Feature-map angles can be large (products of unnormalised inputs): a complex64 phase run
    sums its ops' angles as uint32 fixed-point turns, exact modulo 2 pi (a float sum of the
    reduced angles erred by up to 3e-5 rad)."""
    qc, feature_map, ansatz = zz_real_amplitudes(4, reps=1)
    kwargs = dict(circuit=qc, input_params=feature_map.parameters, weight_params=ansatz.parameters)
    sim = simulator_of(EstimatorQNN(**kwargs, dtype="complex64"))
    exact = simulator_of(EstimatorQNN(**kwargs))
    runner = HostFusedLauncher(kernels, encode_tables(sim.program, sim.readout), "complex64")
    rng = np.random.default_rng(9)
    base = rng.uniform(-1, 1, (4, sim.program.angles.num_slots))
    phases = [op.slot for op in sim.program.ops if op.kind is OpKind.PHASE]
    base[:, phases] = rng.uniform(300, 1000, (4, len(phases)))
    out = runner.run(base, np.array([-1], np.int32), np.zeros(1))
    reference = exact.readout(exact.circuit.evolve(base))
    np.testing.assert_allclose(out, reference, atol=TOL["complex64"])
    slots = list(range(sim.program.angles.num_slots))
    expected = _reference(exact.program, exact.readout, "complex128", base, slots)
    np.testing.assert_allclose(runner.adjoint(base, slots), expected, atol=TOL["complex64"])


def test_bad_adjoint_arguments_are_refused(kernels: HostKernels) -> None:
    program = random_program(3, 3)
    runner = HostFusedLauncher(
        kernels, encode_tables(program, make_readout("pauli", 3, 3, "complex128"))
    )
    base = np.zeros((2, program.angles.num_slots))
    with pytest.raises(ValueError, match="distinct slots"):
        runner.adjoint(base, [0, 0])
    with pytest.raises(ValueError, match="non-empty list"):
        runner.adjoint(base, [])
    with pytest.raises(ValueError, match=r"cotangent must be float64 of shape \(2, 3\)"):
        runner.adjoint(base, [0], np.zeros((2, 2)))


def test_fused_shift_cost_counts_every_shifted_row(kernels: HostKernels) -> None:
    """On the fused kernel every shifted row runs the whole circuit: a parameter-shift pass by
    S slots of two-term rules costs (1 + 2 S) rows of (passes + readout)."""
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    network = EstimatorQNN(
        circuit=qc, input_params=feature_map.parameters, weight_params=ansatz.parameters
    )
    sim, built = _emulated(kernels, network)
    slots = list(range(sim.program.angles.num_slots))
    passes = built.launcher.forward_kernel.passes
    assert sim.parameter_shift.cost(slots) == (1 + 2 * len(slots)) * (passes + 1)


def test_first_build_of_a_generated_kernel_is_logged(
    kernels: HostKernels, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 18, item 8: the first run of a generated kernel logs one INFO record with its
    name, pass count, dtype and seconds; later runs of the same kernel build and log nothing."""
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    network = EstimatorQNN(
        circuit=qc, input_params=feature_map.parameters, weight_params=ansatz.parameters
    )
    sim = simulator_of(network)
    launcher = HostFusedLauncher(kernels, encode_tables(sim.program, sim.readout), "complex64")
    angles = np.asarray(sim.angle_map.angles(np.zeros((2, qc.num_parameters))))
    slots = list(range(sim.program.angles.num_slots))
    with caplog.at_level("INFO", logger="gpuqnn._cuda.launchers"):
        for _ in range(2):
            launcher.adjoint(angles, slots)
    messages = [r.getMessage() for r in caplog.records if r.name == "gpuqnn._cuda.launchers"]
    kernel = launcher.adjoint_kernel(slots, False)
    assert len(messages) == 1, messages
    expected = f"compiled {kernel.name} ({kernel.passes} passes, complex64) in "
    assert messages[0].startswith(expected) and messages[0].endswith(" s"), messages

"""The fused kernels that read parameter rows (issue 18, item 1): each slot's angle and its
derivatives are C in the generated kernel, the adjoint kernel chains slot derivatives into
parameter columns, and a forward, backward or vector-Jacobian product is one launch; and
``gpuqnn.profile()`` counting those launches and the host's array calls (item 2).

Run on the kernels' host build (the emulated GPU of ``engines.py``) against the CPU engine
(qiskit's ``Statevector`` checks that engine elsewhere) and finite differences.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit_machine_learning.circuit.library import raw_feature_vector

import gpuqnn
from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._cuda.angle_code import angle_code
from gpuqnn._cuda.tables import encode_tables
from gpuqnn._internals import simulator_of
from gpuqnn._sim.protocols import Capability
from gpuqnn.examples import zz_real_amplitudes

from engines import Emulation, HostFusedLauncher

pytestmark = pytest.mark.gpu_logic

TOL = {"complex128": 1e-10, "complex64": 1e-6}


def _nonaffine_circuit() -> tuple[QuantumCircuit, list[Parameter], list[Parameter]]:
    """Slots with products, sin/cos, powers, exp, ZZ's 2(pi - x)(pi - y), a controlled
    rotation of a weight product and a phase, on 3 qubits."""
    x0, x1, w0, w1 = (Parameter(n) for n in ("x0", "x1", "w0", "w1"))
    qc = QuantumCircuit(3)
    qc.h(range(3))
    qc.ry(x0.sin() * w0, 0)
    qc.rz((x1**2) * x0.cos(), 1)
    qc.rzz(2 * (np.pi - x0) * (np.pi - x1), 0, 2)
    qc.crx(w1 * w0, 1, 2)
    qc.p(w1 + x1 / 3, 2)
    qc.rx(x0.exp() - w1, 1)
    qc.cx(2, 0)
    qc.ry(w0, 0)
    return qc, [x0, x1], [w0, w1]


@pytest.fixture(scope="module")
def emulation(kernels) -> Emulation:
    return Emulation(kernels)


def _data(batch: int = 4, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.5, 1.5, (batch, 2)), rng.uniform(-1.5, 1.5, 2)


@pytest.mark.parametrize(
    ("dtype", "input_gradients"),
    [
        ("complex128", True),
        ("complex64", False),
        pytest.param("complex128", False, marks=pytest.mark.slow),
        pytest.param("complex64", True, marks=pytest.mark.slow),
    ],
)
def test_values_and_gradients_equal_the_cpu_engine(emulation, dtype, input_gradients):
    qc, x, w = _nonaffine_circuit()
    kwargs = dict(circuit=qc, input_params=x, weight_params=w, input_gradients=input_gradients)
    net = emulation.build(EstimatorQNN, **kwargs, dtype=dtype, gradient_method="adjoint")
    assert isinstance(emulation.runners[-1], HostFusedLauncher)
    assert Capability.PARAMETERS in simulator_of(net).runner.capabilities
    reference = EstimatorQNN(**kwargs, device="cpu", gradient_method="adjoint")
    inputs, weights = _data()
    np.testing.assert_allclose(
        net.forward(inputs, weights), reference.forward(inputs, weights), atol=TOL[dtype], rtol=0
    )
    got, expected = net.backward(inputs, weights), reference.backward(inputs, weights)
    assert (got[0] is None) == (not input_gradients)
    for a, b in zip(got, expected, strict=True):
        if b is not None:
            assert np.abs(b).max() > 0.05  # a comparison that checks something
            np.testing.assert_allclose(a, b, atol=TOL[dtype], rtol=0)


def test_gradients_equal_finite_differences(emulation):
    """Independent of the CPU engine: central differences of the kernels' own forward."""
    qc, x, w = _nonaffine_circuit()
    kwargs = dict(circuit=qc, input_params=x, weight_params=w, input_gradients=True)
    net = emulation.build(EstimatorQNN, **kwargs, gradient_method="adjoint")
    inputs, weights = _data(batch=2, seed=9)
    grad_x, grad_w = net.backward(inputs, weights)
    h = 1e-5
    for j in range(2):
        step = np.zeros_like(inputs)
        step[:, j] = h
        fd = (net.forward(inputs + step, weights) - net.forward(inputs - step, weights)) / (2 * h)
        np.testing.assert_allclose(grad_x[:, :, j], fd, atol=1e-8)
    for j in range(2):
        step = np.zeros_like(weights)
        step[j] = h
        fd = (net.forward(inputs, weights + step) - net.forward(inputs, weights - step)) / (2 * h)
        np.testing.assert_allclose(grad_w[:, :, j], fd, atol=1e-8)


@pytest.mark.parametrize("dtype", [pytest.param("complex128", marks=pytest.mark.slow), "complex64"])
def test_vjp_equals_the_cpu_engine(emulation, dtype):
    qc, x, w = _nonaffine_circuit()
    kwargs = dict(circuit=qc, input_params=x, weight_params=w, input_gradients=True)
    net = emulation.build(SamplerQNN, **kwargs, dtype=dtype, gradient_method="adjoint")
    reference = SamplerQNN(**kwargs, device="cpu", gradient_method="adjoint")
    inputs, weights = _data()
    cotangent = np.random.default_rng(2).uniform(-1, 1, (4, 8))
    got, expected = net.vjp(inputs, weights, cotangent), reference.vjp(inputs, weights, cotangent)
    for a, b in zip(got, expected, strict=True):
        assert np.abs(b).max() > 0.05
        np.testing.assert_allclose(a, b, atol=TOL[dtype], rtol=0)


def test_amplitude_encoding_keeps_its_host_angles(emulation):
    """Slot functions have no C form: the fused runner takes host angles, and stays right."""
    feature_map = raw_feature_vector(4)
    qc = QuantumCircuit(2)
    qc.compose(feature_map, inplace=True)
    weight = Parameter("w")
    qc.ry(weight, 0)
    kwargs = dict(circuit=qc, input_params=feature_map.parameters, weight_params=[weight])
    kwargs |= {"input_gradients": True}
    net = emulation.build(EstimatorQNN, **kwargs, gradient_method="adjoint")
    runner = simulator_of(net).runner
    assert Capability.PARAMETERS not in runner.capabilities
    assert Capability.ADJOINT in runner.capabilities
    reference = EstimatorQNN(**kwargs, device="cpu", gradient_method="adjoint")
    inputs = np.random.default_rng(3).uniform(0.2, 1.0, (3, 4))
    for a, b in zip(net.backward(inputs, [0.3]), reference.backward(inputs, [0.3]), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10)


def test_angle_code_prints_doubles_and_refuses_what_c_lacks():
    x, w = Parameter("x"), Parameter("w")
    qc = QuantumCircuit(1)
    qc.rx(x * np.pi / 3, 0)
    qc.ry(abs(w) * w, 0)
    qc.rz(x**0.5, 0)
    program = simulator_of(EstimatorQNN(circuit=qc, input_params=[x], weight_params=[w])).program
    code = angle_code(program.angles)
    assert code is not None
    assert "M_PI" not in "".join(code.angles) and "1.0471975511965976" in code.angles[0]
    assert code.derivatives[1] and all("DiracDelta" not in d for d in code.derivatives[1].values())
    assert "pow(p0, 0.5)" in code.angles[2] or "sqrt(p0)" in code.angles[2]
    assert code.columns_of(0) == (0,) and code.columns_of(1) == (1,)
    feature_map = raw_feature_vector(2)
    encoded = simulator_of(
        EstimatorQNN(circuit=feature_map, input_params=feature_map.parameters, weight_params=[])
    ).program
    assert angle_code(encoded.angles) is None


def test_parameter_launches_refuse_bad_arguments(kernels):
    qc, x, w = _nonaffine_circuit()
    sim = simulator_of(EstimatorQNN(circuit=qc, input_params=x, weight_params=w))
    launcher = HostFusedLauncher(kernels, encode_tables(sim.program, sim.readout))
    with pytest.raises(ValueError, match=r"inputs' columns plus weights .* 4 parameters"):
        launcher.forward_parameters(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="inputs must be float64"):
        launcher.forward_parameters(np.zeros((2, 2), dtype=np.float32), np.zeros(2))
    with pytest.raises(ValueError, match=r"columns must be a non-empty list in \[0, 4\)"):
        launcher.adjoint_parameters(np.zeros((2, 2)), np.zeros(2), [0], [4])
    with pytest.raises(ValueError, match=r"cotangent must be float64 of shape \(2, 1\)"):
        launcher.adjoint_parameters(np.zeros((2, 2)), np.zeros(2), [0], [0], np.zeros((2, 3)))


# ---- profile ------------------------------------------------------------------------------
def test_profile_counts_one_launch_per_call_on_the_emulation(emulation):
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    kwargs = dict(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
    )
    net = emulation.build(EstimatorQNN, **kwargs)
    inputs = np.random.default_rng(1).uniform(0, np.pi, (6, 3))
    weights = np.linspace(0, 1, ansatz.num_parameters)
    net.backward(inputs, weights)  # build the kernels outside the profile
    net.forward(inputs, weights)
    net.vjp(inputs, weights, np.ones((6, 1)))
    with gpuqnn.profile() as prof:
        net.forward(inputs, weights)
        net.backward(inputs, weights)
        net.vjp(inputs, weights, np.ones((6, 1)))
    forward, backward, vjp = prof.calls
    assert [c.call for c in prof.calls] == ["forward", "backward", "vjp"]
    assert {c.runner for c in prof.calls} == {"fused CUDA kernels"}
    assert (backward.method, vjp.method, forward.method) == ("adjoint", "adjoint", None)
    assert [c.launches for c in prof.calls] == [1, 1, 1]
    # forward: the output and its copy to the host; backward: the result, the kernel's
    # output, the sink's slice, add and store, the chunk's slice, the copy; vjp: the sums' two
    # arrays, the output, the slices, the per-sample add and store, the weights' sum and the
    # total, two copies
    assert [c.host_ops for c in prof.calls] == [2, 7, 14]
    assert all(c.compile_seconds == 0 for c in prof.calls)
    assert all(c.host_to_device_bytes == 0 for c in prof.calls)  # numpy is the emulated device
    outputs = 6 * 8  # float64 (6, 1) outputs, (6, 1, 3) and (6, 1, 6) gradients
    assert [c.device_to_host_bytes for c in prof.calls] == [
        outputs,
        3 * outputs + 6 * outputs,
        3 * outputs + 6 * 8,
    ]

    # parameter shift evaluates the angle table on the host: its elementwise calls count
    shifted = emulation.build(EstimatorQNN, **kwargs, gradient_method="parameter_shift")
    shifted.backward(inputs, weights)
    with gpuqnn.profile() as host_angles:
        shifted.backward(inputs, weights)
    assert host_angles.calls[0].launches == 1 and host_angles.calls[0].host_ops > 16

    # the per-op kernels: all angles from one launch of the generated angle kernel
    emulation("per_op")
    emulation.move(net)
    net.forward(inputs, weights)
    with gpuqnn.profile() as per_op:
        out = net.forward(inputs, weights)
    (launcher,) = emulation.runners
    assert per_op.calls[0].runner == "per-op CUDA kernels"
    assert per_op.calls[0].launches == 1 + len(launcher._workspace.launches)
    # the angles, the three input copies, the output, its copy to the host
    assert per_op.calls[0].host_ops == 6
    np.testing.assert_allclose(out, EstimatorQNN(**kwargs).forward(inputs, weights), atol=1e-10)
    emulation("auto")


def test_profile_records_compile_seconds_and_only_inside_its_block(emulation):
    qc, x, w = _nonaffine_circuit()
    net = emulation.build(EstimatorQNN, circuit=qc, input_params=x, weight_params=w)
    inputs, weights = _data()
    with gpuqnn.profile() as prof:
        net.forward(inputs, weights)  # the first call builds the kernel
    net.forward(inputs, weights)
    assert len(prof.calls) == 1 and prof.calls[0].compile_seconds > 0
    assert "fused CUDA kernels" in prof.table()
    assert prof.calls[0].as_dict()["launches"] == 1


def test_profile_follows_worker_threads_and_stays_per_thread():
    """The block engine's chunks run on worker threads: their counts reach the caller's
    record; another thread's calls are not recorded."""
    qc, x, w = _nonaffine_circuit()
    net = EstimatorQNN(circuit=qc, input_params=x, weight_params=w, max_memory=300_000)
    inputs = np.random.default_rng(0).uniform(-1, 1, (4000, 2))
    other = threading.Thread(target=net.forward, args=(inputs[:10], [0.1, 0.2]))
    with gpuqnn.profile() as prof:
        other.start()
        net.forward(inputs, [0.1, 0.2])
        other.join()
    (record,) = prof.calls
    chunks = -(-4000 // simulator_of(net).executor.sizing(1, "", 4000).chunk)
    assert record.batch == 4000 and record.device == "cpu" and record.launches == 0
    assert record.host_ops > chunks  # every chunk's angle table counted, on whatever thread


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_parameter_kernels_pass_the_strict_emulation(kernels, dtype):
    """Snapshot phases, random thread order, same-byte writes and partial warp collectives:
    the kernels that read parameter rows (the angle phase writes the derivative table beside
    the warp cells) agree with the plain emulation."""
    qc, x, w = _nonaffine_circuit()
    sim = simulator_of(EstimatorQNN(circuit=qc, input_params=x, weight_params=w, dtype=dtype))
    kp = encode_tables(sim.program, sim.readout)
    columns = [0, 1, 2, 3]
    slots = sim.differentiated_slots(columns)
    strict = HostFusedLauncher(kernels, kp, dtype, max_blocks=2, strict=5)
    plain = HostFusedLauncher(kernels, kp, dtype, max_blocks=2)
    inputs, weights = _data(batch=3)
    np.testing.assert_array_equal(
        strict.forward_parameters(inputs, weights), plain.forward_parameters(inputs, weights)
    )
    cotangent = np.ones((3, 1))
    for g in (None, cotangent):
        np.testing.assert_allclose(
            strict.adjoint_parameters(inputs, weights, slots, columns, g),
            plain.adjoint_parameters(inputs, weights, slots, columns, g),
            atol=1e-13,
            rtol=0,
        )
    np.testing.assert_array_equal(
        strict.parameter_angles(inputs, weights), plain.parameter_angles(inputs, weights)
    )


def test_chunks_of_parameter_rows_add_up(emulation):
    """A memory budget that splits the batch: each chunk is one launch on its rows of the
    parameters, and the chunks' derivatives (and the weights' sums of a product) add up."""
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    kwargs = dict(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
    )
    net = emulation.build(EstimatorQNN, **kwargs, max_memory=20_000)
    reference = EstimatorQNN(**kwargs)
    inputs = np.random.default_rng(4).uniform(0, np.pi, (30, 3))
    weights = np.linspace(-1, 1, ansatz.num_parameters)
    with gpuqnn.profile() as prof:
        got = net.backward(inputs, weights)
        product = net.vjp(inputs, weights, np.full((30, 1), 0.5))
    assert prof.calls[0].launches > 1 and prof.calls[0].launches == prof.calls[1].launches
    for a, b in zip(got, reference.backward(inputs, weights), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10)
    for a, b in zip(product, reference.vjp(inputs, weights, np.full((30, 1), 0.5)), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10)

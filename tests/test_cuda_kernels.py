"""The CUDA kernels' logic on the CPU: ``statevector.cuh`` built for the host (``GPUQNN_HOST``),
run through the same launch plans as the CuPy runners, against the NumPy engine.

Programs are generated op by op (every kind, 1-3 targets, 0-3 controls with random control
states, wide diagonals, parity phases) so that each op shape the kernels support is exercised
directly; qiskit circuits drive the network-level checks.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import types

import numpy as np
import pytest
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp, random_unitary

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._compile import Op, OpKind, Program
from gpuqnn._compile.angles import AngleTable
from gpuqnn._cuda import tables
from gpuqnn._cuda.codegen import (
    ADJOINT_PART_SIGNATURE,
    ADJOINT_SIGNATURE,
    FORWARD_PART_SIGNATURE,
    FORWARD_SIGNATURE,
    GeneratedKernel,
)
from gpuqnn._cuda.launchers import Launch, make_launch
from gpuqnn._cuda.source import SIGNATURES, kernel_names, kernel_source
from gpuqnn._cuda.tables import (
    KernelTables,
    encode_tables,
    unsupported_reason,
)
from gpuqnn._internals import simulator_of
from gpuqnn._sim.adjoint import adjoint_gradients
from gpuqnn._sim.backend import select_backend
from gpuqnn._sim.block_circuit import BlockCircuit
from gpuqnn._sim.readout import PauliReadout
from gpuqnn.examples import zz_real_amplitudes

from engines import THREAD_ORDERS, HostFusedLauncher, HostKernels, HostPerOpLauncher
from programs import engine_outputs, make_readout, random_program, random_shifts

pytestmark = pytest.mark.gpu_logic

TOL = {"complex128": 1e-10, "complex64": 1e-6}  # complex64: measured worst 3.8e-7
RUNNERS = {"fused": HostFusedLauncher, "per_op": HostPerOpLauncher}


CASES = [(seed, n) for seed, n in enumerate([1, 3, 4, 6])]


@pytest.mark.parametrize("order", sorted(THREAD_ORDERS))
@pytest.mark.parametrize("threads", [32, 128])
@pytest.mark.parametrize("readout_kind", ["pauli", "direct", "pieces"])
@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
@pytest.mark.parametrize("runner", sorted(RUNNERS))
@pytest.mark.parametrize(("seed", "n"), CASES, ids=[f"n{n}" for _s, n in CASES])
def test_runner_matches_engine(
    kernels: HostKernels,
    seed: int,
    n: int,
    runner: str,
    dtype: str,
    readout_kind: str,
    threads: int,
    order: str,
) -> None:
    """Every (shift block, sample) row equals the engine run on that row's shifted angles, with
    the threads of each phase in either order and in the strict emulation. D = 2**n is below
    the thread count for n <= 4 (idle threads)."""
    program = random_program(seed, n)
    readout = make_readout(readout_kind, n, seed, dtype)
    kp = encode_tables(program, readout)
    rng = np.random.default_rng(seed)
    base = rng.uniform(-np.pi, np.pi, (3, program.angles.num_slots))
    shift_slot, shift_value = random_shifts(rng, program.angles.num_slots, 5)
    ours = RUNNERS[runner](kernels, kp, dtype, threads=threads, **THREAD_ORDERS[order]).run(
        base, shift_slot, shift_value
    )
    reference = engine_outputs(program, readout, dtype, base, shift_slot, shift_value)
    assert ours.shape == (15, readout.num_outputs) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, reference, atol=TOL[dtype], rtol=0)
    assert np.abs(reference).max() > 1e-3  # the comparison is not vacuous


@pytest.mark.parametrize("readout_kind", ["pauli", "pieces"])
@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_rows_span_chunks_and_grid_strides(
    kernels: HostKernels, runner: str, dtype: str, readout_kind: str
) -> None:
    """10 qubits with 32 threads: the Pauli partial kernel splits each row into 2 chunks, the
    probability readout into 32-state pieces; 3 blocks stride over every grid."""
    n = 10
    program = random_program(77, n, num_ops=16)
    readout = make_readout(readout_kind, n, 5, dtype)
    kp = encode_tables(program, readout)
    rng = np.random.default_rng(3)
    base = rng.uniform(-np.pi, np.pi, (2, program.angles.num_slots))
    shift_slot, shift_value = random_shifts(rng, program.angles.num_slots, 3)
    ours = RUNNERS[runner](kernels, kp, dtype, threads=32, max_blocks=3).run(
        base, shift_slot, shift_value
    )
    reference = engine_outputs(program, readout, dtype, base, shift_slot, shift_value)
    np.testing.assert_allclose(ours, reference, atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_thread_order_and_grid_size_do_not_change_results(
    kernels: HostKernels, runner: str
) -> None:
    """Bitwise: the order of a block's threads (a missing barrier would show) and the number
    of blocks (grid-stride loops) leave every output unchanged."""
    program = random_program(5, 5)
    kp = encode_tables(program, make_readout("pauli", 5, 5, "complex128"))
    rng = np.random.default_rng(5)
    base = rng.uniform(-np.pi, np.pi, (4, program.angles.num_slots))
    shift_slot, shift_value = random_shifts(rng, program.angles.num_slots, 3)
    results = [
        RUNNERS[runner](kernels, kp, threads=64, reverse=reverse, max_blocks=blocks).run(
            base, shift_slot, shift_value
        )
        for reverse, blocks in [(False, None), (True, None), (False, 1), (True, 5)]
    ]
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_sample_chunks_give_identical_rows(kernels: HostKernels, runner: str) -> None:
    """The caller may pass sub-ranges of the samples; each chunk's rows equal the full run's
    rows of those samples, bitwise. The per-op runner reuses its buffers for a repeated
    shape (chunks 2 and 3), so stale inputs would show."""
    program = random_program(9, 4)
    kp = encode_tables(program, make_readout("pieces", 4, 9, "complex128"))
    rng = np.random.default_rng(9)
    base = rng.uniform(-np.pi, np.pi, (7, program.angles.num_slots))
    shift_slot, shift_value = random_shifts(rng, program.angles.num_slots, 4)
    run = RUNNERS[runner](kernels, kp, threads=32)
    full = run.run(base, shift_slot, shift_value).reshape(4, 7, -1)
    for start, stop in [(0, 3), (3, 5), (5, 7), (0, 7)]:
        chunk = run.run(base[start:stop], shift_slot, shift_value).reshape(4, stop - start, -1)
        np.testing.assert_array_equal(chunk, full[:, start:stop])


# ---- networks: forward and a whole parameter-shift backward in one launch ---------------------
def _zz_network():
    """ZZ feature map + RealAmplitudes (parity phases, cx, ry), plus a controlled rotation of
    a product of parameters, a phase controlled on |0> and an rzz of a sum."""
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    x, w = list(feature_map.parameters), list(ansatz.parameters)
    qc.crx(w[0] * x[1], 0, 2)
    qc.cp(w[1], 2, 1, ctrl_state=0)
    qc.rzz(x[2] + w[2], 0, 1)
    return qc, x, w


def _parameter_shift(
    kernels: HostKernels, network, params: np.ndarray, columns: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(forward (B, O), gradient (B, O, J)) from ONE fused launch over every shift block."""
    simulator = simulator_of(network)
    program, readout = simulator.program, simulator.readout
    table = program.angles
    slots = [k for k in range(table.num_slots) if table.depends[k, columns].any()]
    shift_slot, shift_value, coeffs = [-1], [0.0], []
    for k in slots:
        for coeff, shift in program.ops[program.slot_ops[k]].shift_rule:
            shift_slot.append(k)
            shift_value.append(shift)
            coeffs.append((k, coeff))
    kp = encode_tables(program, readout)
    base = table.angles(params)
    runner = HostFusedLauncher(kernels, kp, network.dtype, threads=32)
    out = runner.run(base, np.array(shift_slot, np.int32), np.array(shift_value))
    out = out.reshape(len(shift_slot), params.shape[0], -1)
    dslot = np.zeros((params.shape[0], out.shape[2], len(slots)))
    for s, (k, coeff) in enumerate(coeffs, start=1):
        dslot[:, :, slots.index(k)] += coeff * out[s]
    jac = table.jacobian(params, slots, columns)
    return out[0], np.matmul(dslot, jac)


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_estimator_forward_and_backward_from_one_launch(kernels: HostKernels, dtype: str) -> None:
    qc, x, w = _zz_network()
    observables = [SparsePauliOp(["ZZI", "IXY"], [1.0, -0.5]), SparsePauliOp("YIZ", 0.7)]
    qnn = EstimatorQNN(
        circuit=qc,
        observables=observables,
        input_params=x,
        weight_params=w,
        input_gradients=True,
        dtype=dtype,
    )
    rng = np.random.default_rng(21)
    inputs, weights = rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, 6)
    params = np.hstack([inputs, np.tile(weights, (4, 1))])
    forward, grad = _parameter_shift(kernels, qnn, params, list(range(9)))
    input_grad, weight_grad = qnn.backward(inputs, weights)
    tol = 10 * TOL[dtype]
    np.testing.assert_allclose(forward, qnn.forward(inputs, weights), atol=tol, rtol=0)
    np.testing.assert_allclose(grad[:, :, :3], input_grad, atol=tol, rtol=0)
    np.testing.assert_allclose(grad[:, :, 3:], weight_grad, atol=tol, rtol=0)


def test_sampler_forward_and_backward_from_one_launch(kernels: HostKernels) -> None:
    qc, x, w = _zz_network()
    qc.measure_all()
    qnn = SamplerQNN(
        circuit=qc,
        input_params=x,
        weight_params=w,
        interpret=lambda k: bin(k).count("1") % 2,
        output_shape=2,
    )
    rng = np.random.default_rng(22)
    inputs, weights = rng.uniform(-1, 1, (3, 3)), rng.uniform(-1, 1, 6)
    params = np.hstack([inputs, np.tile(weights, (3, 1))])
    forward, grad = _parameter_shift(kernels, qnn, params, list(range(3, 9)))
    np.testing.assert_allclose(forward, qnn.forward(inputs, weights), atol=1e-10, rtol=0)
    np.testing.assert_allclose(grad, qnn.backward(inputs, weights)[1], atol=1e-10, rtol=0)


# ---- what the kernels refuse, and the tables' contract ---------------------------------------
def _program_with(ops: tuple[Op, ...], n: int) -> Program:
    params = [Parameter("a")]
    return Program(n, np.arange(n), ops, AngleTable(params, params), np.zeros(1, np.int64))


def test_unsupported_programs_are_refused() -> None:
    dense4 = Op(OpKind.DENSE, (0, 1, 2, 3), (), 0, random_unitary(16, seed=1).data)
    program = _program_with((dense4,), 4)
    reason = unsupported_reason(program)
    assert reason is not None and "4 targets" in reason
    readout = PauliReadout(
        [SparsePauliOp("ZZZZ")], np.arange(4), 4, select_backend("cpu", "complex128")
    )
    with pytest.raises(ValueError, match="cannot run on the CUDA kernels: op 0"):
        encode_tables(program, readout)
    big = Program(31, np.arange(31), (), AngleTable([], []), np.zeros(0, np.int64))
    assert "31 qubits" in unsupported_reason(big)
    diag5 = Op(OpKind.DIAG, (0, 1, 2, 3, 4), (), 0, np.exp(1j * np.arange(32.0)))
    assert unsupported_reason(_program_with((diag5,), 5)) is None


@pytest.mark.parametrize(
    ("n", "dtype", "fits"),
    [
        (13, "complex128", True),
        (14, "complex128", False),
        (14, "complex64", True),
        (15, "complex64", False),
    ],
)
def test_fused_shared_memory_limit(n: int, dtype: str, fits: bool) -> None:
    """About 13 qubits fit 227 KiB of shared memory in complex128, one more in complex64."""
    ops = tuple(
        Op(OpKind.DENSE, (q,), (), 0, np.array([[1, 1], [1, -1]]) / np.sqrt(2)) for q in range(n)
    )
    readout = PauliReadout([SparsePauliOp("Z" * n)], np.arange(n), n, select_backend("cpu", dtype))
    kp = encode_tables(_program_with(ops, n), readout)
    assert kp.fits_fused(dtype) is fits
    itemsize = np.dtype(dtype).itemsize
    # the state, the one slot's angle, half-angle and full-angle (cos, sin), each segment
    # 16-byte aligned, then the Pauli readout's scratch (one double per thread)
    tables = 16 * (-(-itemsize // 2 // 16)) + 2 * 16 * (-(-itemsize // 16))
    expected = (1 << n) * itemsize + tables + 8 * kp.fused_threads()
    assert kp.fused_shared_bytes(dtype) == expected
    if not fits:
        with pytest.raises(ValueError, match="shared memory"):
            HostFusedLauncher(None, kp, dtype)


def test_tables_mirror_the_kernel_source() -> None:
    """program.py's constants equal the enums of statevector.cuh, and plan.SIGNATURES the
    parameter lists of its kernels (a mismatch would pass the host build on x86-64 for
    int/long long, but break CUDA's argument layout)."""
    import re  # noqa: PLC0415

    source = kernel_source()
    enums = dict(re.findall(r"\b(GQ_[A-Z_0-9]+) = (\d+)", source))
    expected = {
        "GQ_HEADER": tables.HEADER,
        "GQ_H_QUBITS": tables.H_QUBITS,
        "GQ_H_NUM_OPS": tables.H_NUM_OPS,
        "GQ_H_OPS": tables.H_OPS,
        "GQ_H_READOUT": tables.H_READOUT,
        "GQ_H_OUTPUTS": tables.H_OUTPUTS,
        "GQ_H_ITEMS": tables.H_ITEMS,
        "GQ_H_TABLES": tables.H_TABLES,
        "GQ_OP_FIELDS": tables.OP_FIELDS,
        "GQ_F_KIND": tables.F_KIND,
        "GQ_F_TARGETS": tables.F_TARGETS,
        "GQ_F_SLOT": tables.F_SLOT,
        "GQ_F_CVAL": tables.F_CVAL,
        "GQ_F_NPOS": tables.F_NPOS,
        "GQ_F_POS": tables.F_POS,
        "GQ_F_TGT": tables.F_TGT,
        "GQ_F_DATA": tables.F_DATA,
        "GQ_F_SRC": tables.F_SRC,
        "GQ_F_OFF": tables.F_OFF,
        "GQ_PAULI": tables.READOUT_PAULI,
        "GQ_PROB_DIRECT": tables.READOUT_PROB_DIRECT,
        "GQ_PROB_PIECES": tables.READOUT_PROB_PIECES,
        # every kind but a noise channel (the kernels refuse programs with one)
        **{f"GQ_{kind.name}": int(kind) for kind in OpKind if kind is not OpKind.CHANNEL},
    }
    assert {name: int(enums[name]) for name in expected} == expected
    assert "GQ_CHANNEL" not in enums
    assert f"#define GQ_MAX_THREADS {tables.MAX_THREADS}" in source
    assert f"#define GQ_MAX_GROUP_TARGETS {tables.MAX_GROUP_TARGETS}" in source
    for kernel, kinds in SIGNATURES.items():
        macro = f"GQ_{kernel[3:].upper()}_PARAMS"
        body = re.search(rf"#define {macro}\(T\)(.*?)\n(?!\s)", source, re.S).group(1)
        params = [p.strip() for p in body.replace("\\\n", " ").split(",")]
        found = tuple(
            "ptr"
            if "*" in p
            else "i64"
            if p.startswith("long long")
            else "i32"
            if p.startswith("int ")
            else p
            for p in params
        )
        assert found == kinds, kernel
        assert re.search(rf"GQ_KERNEL\({kernel}, {macro},", source), kernel


def test_bad_inputs_are_refused(kernels: HostKernels) -> None:
    program = random_program(1, 3)
    kp = encode_tables(program, make_readout("pauli", 3, 1, "complex128"))
    runner = HostPerOpLauncher(kernels, kp)
    k = program.angles.num_slots
    good = (np.zeros((2, k)), np.array([-1], np.int32), np.zeros(1))
    runner.run(*good)
    with pytest.raises(ValueError, match=rf"base_angles must have shape \(B, {k}\)"):
        runner.run(np.zeros((2, k + 1)), *good[1:])
    with pytest.raises(ValueError, match="base_angles must be float64"):
        runner.run(np.zeros((2, k), np.float32), *good[1:])
    with pytest.raises(ValueError, match="shift_slot must be int32"):
        runner.run(good[0], np.array([-1]), good[2])
    with pytest.raises(ValueError, match="shift_value must have the shape of shift_slot"):
        runner.run(good[0], good[1], np.zeros(2))
    with pytest.raises(ValueError, match=rf"slot in \[0, {k}\)"):
        runner.run(good[0], np.array([k], np.int32), good[2])
    with pytest.raises(ValueError, match="threads must be a power of two"):
        HostFusedLauncher(kernels, kp, threads=48)
    with pytest.raises(ValueError, match="dtype must be complex64 or complex128"):
        HostFusedLauncher(kernels, kp, "float64")
    with pytest.raises(TypeError, match="tables must be a KernelTables"):
        HostFusedLauncher(kernels, program)
    assert isinstance(kp, KernelTables)
    empty = runner.run(np.zeros((0, k)), *good[1:])
    assert empty.shape == (0, 3)


def test_host_build_detects_shared_memory_overflow(kernels: HostKernels) -> None:
    """A launch that gives the fused kernel less shared memory than the row needs fails
    loudly instead of corrupting memory."""
    program = random_program(2, 4)
    kp = encode_tables(program, make_readout("pauli", 4, 2, "complex128"))
    runner = HostFusedLauncher(kernels, kp, threads=32)
    launches = []
    runner._execute_generated = lambda kernel, launch: launches.append((kernel, launch))
    runner.run(np.zeros((1, program.angles.num_slots)), np.array([-1], np.int32), np.zeros(1))
    kernel, launch = launches[0]
    kernels.specialised(kernel).execute(launch)
    assert np.isfinite(launch.args[-1]).all()
    short = Launch(launch.kernel, 1, 32, launch.shared - 64, launch.args)
    with pytest.raises(RuntimeError, match="wrote past its dynamic shared memory"):
        kernels.specialised(kernel).execute(short)
    with pytest.raises(TypeError, match="gq_apply takes 7 arguments, got 1"):
        make_launch("gq_apply", 1, 32, 0, launch.args[-1])


def test_importing_the_kernels_does_not_import_cupy() -> None:
    code = (
        "import sys, gpuqnn, gpuqnn._cuda, gpuqnn._cuda.host; "
        "assert 'cupy' not in sys.modules, 'cupy imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- the CuPy runners' control flow, on a stand-in for CuPy backed by the host build ---------
class _FakeStream:
    def __init__(self, cupy: _FakeCupy, non_blocking: bool = False) -> None:
        self.cupy, self.capture = cupy, None

    def __enter__(self) -> _FakeStream:
        self.previous, self.cupy.current = self.cupy.current, self
        return self

    def __exit__(self, *exc) -> None:
        self.cupy.current = self.previous

    def record(self) -> str:
        return "event"

    def wait_event(self, event: str) -> None:
        assert event == "event"

    def begin_capture(self) -> None:
        self.capture = []

    def end_capture(self) -> _FakeGraph:
        graph, self.capture = _FakeGraph(self.capture), None
        self.cupy.captures += 1
        return graph


class _FakeGraph:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def launch(self, stream: _FakeStream) -> None:
        for kernel, call in self.calls:
            kernel.run(*call)


class _FakeKernel:
    def __init__(self, cupy: _FakeCupy, name: str) -> None:
        self.cupy, self.name = cupy, name
        self.max_dynamic_shared_size_bytes = 48 * 1024

    def __call__(self, grid, block, args, shared_mem=0) -> None:
        assert shared_mem <= max(self.max_dynamic_shared_size_bytes, 48 * 1024)
        stream = self.cupy.current
        if stream is not None and stream.capture is not None:
            stream.capture.append((self, (grid, block, args, shared_mem)))
        else:
            self.run(grid, block, args, shared_mem)

    def run(self, grid, block, args, shared_mem) -> None:
        kernel, suffix = self.name.rsplit("_", 1)
        real = {"f32": "float", "f64": "double"}[suffix]
        self.cupy.launches += 1
        self.cupy.kernels.execute(Launch(kernel, grid[0], block[0], shared_mem, tuple(args)), real)


class _FakeCupy(types.ModuleType):
    """Just the parts of CuPy that launch.py uses; arrays are NumPy arrays."""

    ndarray = np.ndarray

    def __init__(self, kernels: HostKernels) -> None:
        super().__init__("cupy")
        self.kernels, self.current, self.launches, self.captures = kernels, None, 0, 0
        self.modules: list[dict] = []
        self.compiled: list[tuple] = []
        fake = self

        class RawModule:
            def __init__(self, code: str, options: tuple) -> None:
                assert "GPUQNN_HOST" in code and "-std=c++17" in options
                self.names = set(kernel_names())
                fake.modules.append({"names": self.names})

            def compile(self, log_stream=None) -> None:
                fake.compiled.append(("module", None, None))

            def get_function(self, name: str) -> _FakeKernel:
                assert name in self.names
                return _FakeKernel(fake, name)

        runtime = types.SimpleNamespace(
            cudaDevAttrMultiProcessorCount=16,
            cudaDevAttrMaxSharedMemoryPerBlockOptin=97,
            deviceGetAttribute=lambda attr, dev: {16: 2, 97: 227 * 1024}[attr],
        )

        class Device:
            def __init__(self, index: int = 0) -> None:
                self.id = index

            def __enter__(self) -> Device:
                return self

            def __exit__(self, *exc) -> None:
                return None

        class RawKernel:
            """A generated kernel (codegen.py), built for the host on first call."""

            def __init__(self, code: str, name: str, options: tuple) -> None:
                assert "-std=c++17" in options
                signature = {
                    "gqs_forward": FORWARD_SIGNATURE,
                    "gqs_adjoint": ADJOINT_SIGNATURE,
                    "gqs_forward_part": FORWARD_PART_SIGNATURE,
                    "gqs_adjoint_part": ADJOINT_PART_SIGNATURE,
                }
                key = hashlib.sha256(code.encode()).hexdigest()[:24]  # codegen's: built once
                self.kernel = GeneratedKernel(code, name, 0, 0, signature[name], key, 0)
                self.options = options
                self.attributes = {"shared_size_bytes": 0}
                self.max_dynamic_shared_size_bytes = 48 * 1024
                fake.modules.append({"names": {name}})

            def compile(self, log_stream=None) -> None:
                """CuPy compiles and caches; the stand-in records what was asked."""
                fake.compiled.append((self.kernel.name, self.kernel.key, self.options))

            def __call__(self, grid, block, args, shared_mem=0) -> None:
                assert shared_mem <= max(self.max_dynamic_shared_size_bytes, 48 * 1024)
                fake.launches += 1
                launch = Launch(self.kernel.name, grid[0], block[0], shared_mem, tuple(args))
                fake.kernels.specialised(self.kernel).execute(launch)

        null = _FakeStream(self)
        self.RawModule = RawModule
        self.RawKernel = RawKernel
        self.cuda = types.SimpleNamespace(
            Device=Device,
            runtime=runtime,
            Stream=lambda non_blocking=False: _FakeStream(fake),
            get_current_stream=lambda: fake.current or null,
        )

    def asarray(self, array, dtype=None):
        return np.asarray(array, dtype=dtype)

    def ascontiguousarray(self, array):
        return np.ascontiguousarray(array)

    def empty(self, shape, dtype):
        return np.full(shape, -12345 if np.dtype(dtype).kind == "i" else np.nan, dtype=dtype)

    def asnumpy(self, array):
        return np.asarray(array)


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_cupy_runners_control_flow(
    kernels: HostKernels, monkeypatch: pytest.MonkeyPatch, dtype: str
) -> None:
    """FusedLauncher and PerOpLauncher (launch.py) on a stand-in CuPy whose kernels run on the host
    build: one launch for the fused path; for the per-op path a direct first run, a graph
    captured on the second call of a shape and replayed (with the new inputs) after that, and a
    fresh workspace and graph for a new shape."""
    fake = _FakeCupy(kernels)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    from gpuqnn._cuda.cupy_launchers import FusedLauncher, PerOpLauncher, shared_memory_limit  # noqa: PLC0415

    assert shared_memory_limit() == 227 * 1024

    program = random_program(31, 9)
    readout = make_readout("pauli", 9, 31, dtype)
    kp = encode_tables(program, readout)
    rng = np.random.default_rng(31)
    slot, value = random_shifts(rng, program.angles.num_slots, 3)

    fused = FusedLauncher(kp, dtype, threads=64)
    base = rng.uniform(-np.pi, np.pi, (2, program.angles.num_slots))
    np.testing.assert_allclose(
        fused.run(base, slot, value),
        engine_outputs(program, readout, dtype, base, slot, value),
        atol=TOL[dtype],
        rtol=0,
    )
    assert fake.launches == 1 and len(fake.modules) == 1
    slots = list(range(0, program.angles.num_slots, 2))
    np.testing.assert_allclose(
        fused.adjoint(base, slots),
        adjoint_gradients(
            BlockCircuit(program, readout.backend),
            readout,
            base.astype(readout.backend.real_dtype),
            slots,
            False,
        ),
        atol=10 * TOL[dtype],
        rtol=0,
    )
    assert fake.launches == 2 and len(fake.modules) == 2

    per_op = PerOpLauncher(kp, dtype, threads=64)
    per_call = 4 + kp.num_ops  # init, the angle factors, the ops, the two readout kernels
    for call, batch in enumerate([2, 2, 2, 3, 3, 3]):
        base = rng.uniform(-np.pi, np.pi, (batch, program.angles.num_slots))
        before = fake.launches
        out = per_op.run(base, slot, value)
        np.testing.assert_allclose(
            out, engine_outputs(program, readout, dtype, base, slot, value), atol=TOL[dtype], rtol=0
        )
        assert fake.launches - before == per_call
        assert fake.captures == (0, 1, 1, 1, 2, 2)[call]
    big = FusedLauncher(
        encode_tables(random_program(3, 13, 4), make_readout("pauli", 13, 3, dtype)), dtype
    )
    assert big.forward_kernel.shared > 48 * 1024
    out = big.run(np.zeros((1, big.tables.num_slots)), np.array([-1], np.int32), np.zeros(1))
    assert np.isfinite(out).all()


def test_fused_runner_copies_a_shift_plan_to_the_device_once(kernels: HostKernels) -> None:
    """The parameter-shift tables of a plan are copied once (a copy from pageable host memory
    synchronises the stream); later chunks with the same plan copy only their angles."""
    program = random_program(5, 3)
    runner = HostFusedLauncher(
        kernels, encode_tables(program, make_readout("pauli", 3, 5, "complex128"))
    )
    copies = []
    to_device = runner._to_device
    runner._to_device = lambda array: (copies.append(array.dtype), to_device(array))[1]
    rng = np.random.default_rng(5)
    slot, value = random_shifts(rng, program.angles.num_slots, 4)
    base = rng.uniform(-1, 1, (3, program.angles.num_slots))
    first = runner.run(base, slot, value)
    before = len(copies)
    second = runner.run(base, slot.copy(), value.copy())
    assert copies[before:] == [np.dtype(np.float64)]  # the angles only
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(
        first,
        engine_outputs(
            program, make_readout("pauli", 3, 5, "complex128"), "complex128", base, slot, value
        ),
        atol=1e-10,
    )


def test_a_failed_graph_capture_raises_the_launchs_error(
    kernels: HostKernels, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 18, item 9: when a launch fails while the per-op launches are captured, CUDA then
    fails ``end_capture`` too (the capture is invalidated); the caller gets the launch's error,
    the capture's is logged, not raised instead. A later call captures anew."""
    fake = _FakeCupy(kernels)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    from gpuqnn._cuda.cupy_launchers import PerOpLauncher  # noqa: PLC0415

    program = random_program(7, 3)
    readout = make_readout("pauli", 3, 7, "complex128")
    per_op = PerOpLauncher(encode_tables(program, readout), "complex128", threads=32)
    base = np.random.default_rng(7).uniform(-1, 1, (2, program.angles.num_slots))
    unshifted = (np.array([-1], np.int32), np.zeros(1))
    expected = engine_outputs(program, readout, "complex128", base, *unshifted)
    np.testing.assert_allclose(per_op.run(base, *unshifted), expected, atol=1e-10, rtol=0)

    class LaunchError(RuntimeError):
        pass

    def failing_launch(launch) -> None:
        raise LaunchError(f"cudaErrorIllegalAddress in {launch.kernel}")

    def invalidated() -> None:
        raise RuntimeError(
            "cudaErrorStreamCaptureInvalidated: operation failed due to a previous error"
        )

    execute = per_op._execute
    monkeypatch.setattr(per_op, "_execute", failing_launch)
    monkeypatch.setattr(per_op._stream, "end_capture", invalidated)
    with (
        caplog.at_level("WARNING", logger="gpuqnn._cuda.cupy_launchers"),
        pytest.raises(LaunchError, match="cudaErrorIllegalAddress in gq_init"),
    ):
        per_op.run(base, *unshifted)  # the second call of the shape captures
    (record,) = [r for r in caplog.records if r.name == "gpuqnn._cuda.cupy_launchers"]
    assert "LaunchError: cudaErrorIllegalAddress" in record.getMessage()
    assert "cudaErrorStreamCaptureInvalidated" in record.getMessage()
    assert fake.captures == 0
    monkeypatch.setattr(per_op, "_execute", execute)
    monkeypatch.delattr(per_op._stream, "end_capture")
    np.testing.assert_allclose(per_op.run(base, *unshifted), expected, atol=1e-10, rtol=0)
    assert fake.captures == 1


def test_per_op_precompile_builds_the_module_once(
    kernels: HostKernels, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18, item 8: the per-op launcher's precompile compiles its one module (CuPy's
    RawModule, on first ``get_function``) and then nothing; a run after it compiles nothing."""
    fake = _FakeCupy(kernels)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    from gpuqnn._cuda.cupy_launchers import PerOpLauncher  # noqa: PLC0415

    program = random_program(4, 2)
    per_op = PerOpLauncher(
        encode_tables(program, make_readout("pauli", 2, 4, "complex64")), "complex64"
    )
    assert per_op.precompile() == 1 and len(fake.modules) == 1
    assert per_op.precompile() == 0
    base = np.zeros((1, program.angles.num_slots))
    per_op.run(base, np.array([-1], np.int32), np.zeros(1))
    assert len(fake.modules) == 1

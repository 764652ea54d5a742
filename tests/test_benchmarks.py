"""The benchmarks' building blocks: the PennyLane translation against qiskit's Statevector, the
VJP contraction, the bandwidth bound's row count, the tables and targets, the memory check, the
plots, and the GPU script's plan, dry run and clean skip without a device. Speed is never
asserted: these check that the benchmarks measure what they say."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp, Statevector

from benchmarks import bench_gpu
from benchmarks.bandwidth import (
    EvolveCall,
    copy_bandwidth,
    engine_traffic,
    recorded_evolve,
    shift_bound,
    traffic,
)
from benchmarks.implementations import Unsupported, Variant
from benchmarks.measure import (
    Row,
    Settings,
    Timing,
    bench_workload,
    contract,
    max_abs_diff,
    vjp_cotangent,
)
from benchmarks.memory_check import memory_table, traced_peak
from benchmarks.peers import PEERS, Peer, backprop_sample_cap, qiskit_ml_peer
from benchmarks.report import Target, main_table, ratio_target, targets_table
from benchmarks.workloads import WORKLOADS, QNNSpec, Workload, zz_estimator
from gpuqnn._internals import simulator_of

from engines import native_built


def expression_circuit() -> tuple[QuantumCircuit, ParameterVector, ParameterVector]:
    """Every gate the translation knows, with sums, products, powers and functions of the
    parameters as angles."""
    x, w = ParameterVector("x", 2), ParameterVector("w", 3)
    qc = QuantumCircuit(3)
    for name in ("h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx"):
        getattr(qc, name)(0 if name in "hxyz" else 1)
    qc.p((np.pi - x[0]) * (np.pi - x[1]), 0)
    qc.rx(2 * x[0] + w[0], 1)
    qc.ry(w[1] ** 2, 2)
    qc.rz(x[1].sin() + w[2].exp() / 3, 0)
    qc.u(w[0], x[1] * w[1], 0.3, 2)
    qc.cx(0, 1)
    qc.cy(1, 2)
    qc.cz(2, 0)
    qc.swap(0, 2)
    qc.ccx(0, 1, 2)
    qc.rxx(x[0].cos(), 0, 1)
    qc.ryy(w[2] - x[1], 1, 2)
    qc.rzz(x[0] * w[0], 0, 2)
    qc.crx(w[1], 0, 1)
    qc.cry(x[1], 2, 0)
    qc.crz(w[2], 1, 2)
    qc.cp(x[0] + 1, 2, 1)
    qc.barrier()
    return qc, x, w


def bound_values(
    qc: QuantumCircuit, x: ParameterVector, w: ParameterVector, xs: np.ndarray, ws: np.ndarray
) -> Statevector:
    values = dict(zip(list(x) + list(w), [*xs, *ws], strict=True))
    return Statevector(qc.assign_parameters(values))


def test_pennylane_translation_matches_qiskit_statevector() -> None:
    pytest.importorskip("pennylane")
    import pennylane as qml
    from pennylane import numpy as pnp

    from benchmarks.peers.pennylane import quantum_function, stack_outputs

    qc, x, w = expression_circuit()
    observable = SparsePauliOp.from_list([("ZXI", 0.7), ("IYY", -0.4), ("ZZZ", 1.1)])
    rng = np.random.default_rng(5)
    inputs, weights = rng.uniform(0, 2 * np.pi, (3, 2)), rng.uniform(0, 2 * np.pi, 3)
    device = qml.device("default.qubit", wires=3)
    estimator = QNNSpec("estimator", qc, tuple(x), tuple(w), observables=(observable,))
    sampler = QNNSpec("sampler", qc, tuple(x), tuple(w))
    values = stack_outputs(
        qml.QNode(quantum_function(estimator, pnp), device)(inputs, weights), pnp, 1
    )
    probs = stack_outputs(
        qml.QNode(quantum_function(sampler, pnp), device)(inputs, weights), pnp, 8
    )
    for b in range(3):
        state = bound_values(qc, x, w, inputs[b], weights)
        assert values[b, 0] == pytest.approx(state.expectation_value(observable).real, abs=1e-12)
        np.testing.assert_allclose(probs[b], state.probabilities(), atol=1e-12)


def test_pennylane_translation_names_what_it_cannot_translate() -> None:
    pytest.importorskip("pennylane")
    from benchmarks.peers.pennylane import compile_expression, translate_gates

    qc = QuantumCircuit(2)
    qc.ecr(0, 1)
    with pytest.raises(ValueError, match="'ecr'"):
        translate_gates(QNNSpec("estimator", qc, (), ()), np)
    import sympy

    with pytest.raises(ValueError, match="sinh"):
        compile_expression(sympy.sinh(sympy.Symbol("t")), np)
    with pytest.raises(ValueError, match="not real"):
        compile_expression(1j, np)


def test_contract_gives_the_vjp_of_per_sample_jacobians() -> None:
    rng = np.random.default_rng(0)
    jx, jw = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 5))
    cot = vjp_cotangent((4, 2))
    vx, vw = contract((jx, jw))
    np.testing.assert_allclose(vx, np.einsum("bo,boi->bi", cot, jx))
    np.testing.assert_allclose(vw, np.einsum("bo,bop->p", cot, jw))
    assert contract((None, jw))[0] is None
    assert not cot.flags.writeable and np.all((cot >= 0.5) & (cot < 1.5))
    assert max_abs_diff((None, vw), (None, vw + 1e-3)) == pytest.approx(1e-3)
    assert max_abs_diff((None, vw), (vx, vw)) == np.inf


def test_pennylane_backprop_peer_agrees_through_the_bench_loop(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("pennylane")
    workload = Workload("zz3", lambda: zz_estimator(3), batch=4, ref_batch=2)
    peers = [PEERS["pennylane-backprop"], PEERS["qiskit-ml"]]
    rows = bench_workload(
        workload,
        [Variant.parse("auto/c128"), Variant.parse("shift/c64")],
        peers,
        Settings(batch=4, repeat=1),
    )
    out = capsys.readouterr().out
    assert all(row.agrees for row in rows), out
    assert "pennylane-backprop (VJP)" in out and "MISMATCH" not in out
    assert rows[0].cells["shift/c64"] != "="  # another dtype: its forward is timed
    assert rows[1].cells["qiskit-ml"].measured == 2
    assert rows[1].cells["pennylane-backprop"].measured == 4


def test_lightning_peer_skips_samplers_and_agrees_on_estimators(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("pennylane_lightning")
    sampler = next(w for w in WORKLOADS if w.name == "tutorial-sampler")
    rows = bench_workload(
        sampler,
        [Variant.parse("auto/c128")],
        [PEERS["lightning-adjoint"]],
        Settings(batch=2, repeat=1),
    )
    assert rows[0].cells["lightning-adjoint"] == "n/a"
    assert "expectation values only" in capsys.readouterr().out
    estimator = Workload("zz2", lambda: zz_estimator(2), batch=10, ref_batch=10)
    rows = bench_workload(
        estimator,
        [Variant.parse("auto/c128")],
        [PEERS["lightning-adjoint"]],
        Settings(batch=10, repeat=1),
    )  # 10 samples: two chunks of 8
    assert all(row.agrees for row in rows), capsys.readouterr().out


def test_peer_sample_policies() -> None:
    spec = zz_estimator(4)
    workload = Workload("w", lambda: spec, batch=64, ref_batch=16)
    scaled = Peer("s", qiskit_ml_peer, scaled=True)
    assert scaled.samples(spec, workload, 64) == 16
    assert scaled.samples(spec, workload, 64, ref_batch=4) == 4
    assert scaled.samples(spec, workload, 8) == 8
    assert Peer("f", qiskit_ml_peer, scaled=False).samples(spec, workload, 64) is None
    capped = Peer("c", qiskit_ml_peer, scaled=False, sample_cap=lambda s: 10)
    assert capped.samples(spec, workload, 64) == 10
    assert backprop_sample_cap(zz_estimator(14)) < 64 < backprop_sample_cap(zz_estimator(8))


def test_variants_parse_and_report_kernel_failures() -> None:
    variant = Variant.parse("shift/c64")
    assert (variant.gradient_method, variant.dtype) == ("parameter_shift", "complex64")
    assert variant.same_forward(Variant.parse("auto/c64"))
    assert not variant.same_forward(Variant.parse("auto/c128"))
    with pytest.raises(ValueError, match="METHOD/DTYPE"):
        Variant.parse("backprop/c128")
    numpy_ = Variant.parse("auto/c128/numpy")
    assert numpy_.engine == "numpy" and not numpy_.same_forward(Variant.parse("auto/c128"))
    assert numpy_.build(zz_estimator(2)).network.engine == "block engine"
    with pytest.raises(ValueError, match="ENGINE"):
        Variant.parse("auto/c128/gpu")
    fused_cpu = Variant("fused", kernels="fused")  # no effect on the CPU: builds
    assert fused_cpu.build(zz_estimator(2)).network.device == "cpu"
    with pytest.raises(Unsupported):
        Variant("bad", kernels="bogus").build(zz_estimator(2))


def test_traffic_counts_base_and_branched_rows_per_block() -> None:
    # 3 blocks; 2 samples; 1 branch after block 0, 2 after block 1
    counted = traffic(3, 4, 16, [EvolveCall(2, {0: 1, 1: 2})])
    assert counted.row_blocks == 2 + 4 + 8
    assert counted.bytes == 2 * 14 * 4 * 16
    assert counted.state_bytes == 8 * 4 * 16 and counted.calls == 1


def test_recorded_evolve_matches_the_parameter_shift_rows() -> None:
    spec = zz_estimator(3)
    network = Variant.parse("shift/c128/numpy").build(spec).network  # the block engine's model
    inputs, weights = spec.random_data(5, 0)
    native = Variant.parse("shift/c128/native").build(spec).network
    with pytest.raises(ValueError, match="block engine's passes.*native CPU engine"):
        shift_bound(native, inputs, weights, input_gradients=True)
    engine = simulator_of(network).circuit
    with recorded_evolve(network) as calls:
        network.backward(inputs, weights)
    assert "evolve" not in vars(engine)  # the method is restored
    assert sum(c.samples for c in calls) == 5
    slots = len(simulator_of(network).differentiated_slots(range(3, 3 + 12)))
    assert all(sum(c.branches.values()) == 2 * slots for c in calls)  # two terms per slot
    counted = engine_traffic(network, calls)
    blocks = len(engine.blocks)
    assert 5 * blocks < counted.row_blocks < 5 * blocks * (1 + 2 * slots)
    bound = shift_bound(network, inputs, weights, input_gradients=True)
    assert bound.traffic.row_blocks > counted.row_blocks and bound.seconds > 0
    assert copy_bandwidth(1 << 16, threads=2, min_seconds=0.001, trials=1) > 0


def test_main_table_marks_scaled_skipped_and_same_cells() -> None:
    rows = [
        Row(
            "w",
            "forward",
            8,
            {"auto/c128": Timing(0.01, 8), "shift/c128": "=", "p1": Timing(0.5, 2), "p2": "n/a"},
        ),
        Row(
            "w",
            "backward",
            8,
            {
                "auto/c128": Timing(0.02, 8),
                "shift/c128": Timing(0.04, 8),
                "p1": Timing(1.0, 2),
                "p2": Timing(0.1, 8),
            },
            agrees=False,
        ),
    ]
    table = main_table(rows, ["auto/c128", "shift/c128"], ["p1", "p2"], {"p2": "(VJP)"})
    lines = table.splitlines()
    assert "gpuqnn auto/c128 s" in lines[0] and "p2 (VJP)" in lines[0]
    assert "0.5 [2]" in lines[2] and "n/a" in lines[2] and " = " in lines[2]
    assert "p1" in lines[2] and "50x" in lines[2]
    assert "w (MISMATCH)" in lines[3] and "p2" in lines[3] and "5x" in lines[3]
    met = ratio_target(rows, "w", "backward", "auto/c128", ["p1", "p2"], 5, 8)
    assert met.met and "p2" in met.measured
    assert ratio_target(rows, "w", "backward", "auto/c128", ["p2"], 6, 8).met is False
    assert ratio_target(rows, "w", "backward", "auto/c128", ["p2"], 6, 256).met is None
    table = targets_table([met, Target("t", "x", None)])
    assert "met" in table and "not measured" in table


def test_memory_check_pieces() -> None:
    def allocate() -> np.ndarray:
        scratch = np.ones(1 << 20)  # 8 MiB, freed on return
        return scratch[:1000].copy()

    peak, returned = traced_peak(allocate)
    assert returned == 8000 and 8 << 20 <= peak < 9 << 20
    assert not tracemalloc.is_tracing()
    figures = {
        "samples": 10,
        "num_qubits": 8,
        "max_memory": 1 << 20,
        "gradient_method": "adjoint",
        "rss_before": 1 << 20,
        "rss_peak": 2 << 20,
        "passes": [
            {"name": "forward", "seconds": 0.1, "peak_bytes": 2 << 20, "returned_bytes": 80}
        ],
    }
    table = memory_table(figures)
    assert "| NO " in table and "2.0 MiB" in table


def test_plots_are_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    from benchmarks.implementations import Options
    from benchmarks.plots import write_plots

    variants = [Variant.parse("auto/c128"), Variant.parse("shift/c128/numpy")]
    paths = write_plots(tmp_path, variants, [PEERS["qiskit-ml"]], Options(), quick=True, repeat=1)
    assert [p.name for p in paths] == ["time_vs_batch.png", "time_vs_qubits.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    out = capsys.readouterr().out
    assert "qiskit-ml (scaled" not in out  # the tables use short names
    assert "bound of shift/c128/numpy" in out and "*" in out


def test_gpu_benchmark_skips_cleanly_without_a_device(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_gpu, "gpu_unavailable", lambda: "no driver")
    assert bench_gpu.main([]) == 0
    assert "GPU benchmark skipped" in capsys.readouterr().out


def test_gpu_plan_prints_without_a_device(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_gpu, "gpu_unavailable", lambda: "no driver")
    assert bench_gpu.main(["--plan", "--peers"]) == 0
    out = capsys.readouterr().out
    assert "plan zz8-estimator at batch 4096" in out and "plan zz16-estimator" in out
    assert "skipped" not in out.split("(no CUDA")[0]


def test_quick_dry_run_leaves_out_the_16_qubit_reference(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_gpu.main(["--device", "cpu", "--quick", "--plan", "--peers"]) == 0
    out = capsys.readouterr().out
    assert "skip zz16-estimator in the quick dry run" in out
    assert "plan zz12-estimator" in out and "plan zz16-estimator" not in out


def test_gpu_benchmark_plan_and_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    variants = bench_gpu.gpu_variants(device="cpu")
    assert [v.name for v in variants][:3] == ["gpu-auto", "fused-shift", "per-op-shift"]
    assert {v.device for v in variants} == {"cpu"}
    assert {v.device for v in bench_gpu.gpu_variants()} == {"gpu", "cpu"}
    assert bench_gpu.main(["--device", "cpu", "--plan", "--peers"]) == 0
    out = capsys.readouterr().out
    assert "plan zz8-estimator at batch 4096" in out and "kernels fused" in out
    assert (
        bench_gpu.main(
            [
                "--device",
                "cpu",
                "--quick",
                "--repeat",
                "1",
                "--peers",
                "--workloads",
                "zz8-estimator",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "DRY RUN" in out and "| zz8-estimator" in out and "MISMATCH" not in out
    assert "under 50 ms" in out


def test_tensorcircuit_translation_matches_qiskit_statevector() -> None:
    pytest.importorskip("tensorcircuit")
    pytest.importorskip("cotengra")
    from benchmarks.peers.jax_common import jax_x64
    from benchmarks.peers.tensorcircuit import sample_function, tensorcircuit_dtype

    jax = jax_x64()
    import tensorcircuit as tc

    tc.set_backend("jax")
    qc, x, w = expression_circuit()
    observable = SparsePauliOp.from_list([("ZXI", 0.7), ("IYY", -0.4), ("ZZZ", 1.1)])
    rng = np.random.default_rng(5)
    inputs, weights = rng.uniform(0, 2 * np.pi, (3, 2)), rng.uniform(0, 2 * np.pi, 3)
    estimator = QNNSpec("estimator", qc, tuple(x), tuple(w), observables=(observable,))
    sampler = QNNSpec("sampler", qc, tuple(x), tuple(w))
    with tensorcircuit_dtype("complex128"):
        values = jax.vmap(sample_function(estimator), in_axes=(0, None))(inputs, weights)
        probs = jax.vmap(sample_function(sampler), in_axes=(0, None))(inputs, weights)
    assert jax.config.jax_enable_x64  # the dtype switch leaves 64-bit mode on
    for b in range(3):
        state = bound_values(qc, x, w, inputs[b], weights)
        assert values[b, 0] == pytest.approx(state.expectation_value(observable).real, abs=1e-12)
        np.testing.assert_allclose(probs[b], state.probabilities(), atol=1e-12)


def test_tensorcircuit_translation_names_what_it_cannot_translate() -> None:
    pytest.importorskip("tensorcircuit")
    pytest.importorskip("cotengra")
    from qiskit.circuit import Parameter

    from benchmarks.peers.tensorcircuit import translate_gates

    qc = QuantumCircuit(2)
    qc.ecr(0, 1)  # no parameters: applied as its qiskit matrix
    assert translate_gates(QNNSpec("estimator", qc, (), ()))[0].method == "unitary"
    qc.rzx(Parameter("t"), 0, 1)
    with pytest.raises(ValueError, match="'rzx'"):
        translate_gates(QNNSpec("estimator", qc, (), ()))


def test_jax_peers_agree_through_the_bench_loop(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorcircuit")
    pytest.importorskip("cotengra")
    pytest.importorskip("pennylane")
    workload = Workload("zz2", lambda: zz_estimator(2), batch=4, ref_batch=4)
    names = ("tensorcircuit-jax", "tensorcircuit-jax-c64", "pennylane-jax")
    rows = bench_workload(
        workload,
        [Variant.parse("auto/c128")],
        [PEERS[n] for n in names],
        Settings(batch=4, repeat=1),
    )
    out = capsys.readouterr().out
    assert all(row.agrees for row in rows), out
    assert "pennylane-jax (VJP)" in out and "MISMATCH" not in out
    assert "compile zz2: tensorcircuit-jax (trace + XLA compile" in out


def test_train_smoke_runs_and_skips_missing_peers() -> None:
    import importlib.util
    import subprocess
    import sys

    from benchmarks.bench_train import TRAIN_PEERS

    # a subprocess: --threads pins the process's CPU affinity and torch's threads
    peers = list(TRAIN_PEERS)
    if importlib.util.find_spec("jax") is not None:  # compiles take minutes; tested above
        peers = [p for p in peers if "jax" not in p]
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_train", "--quick", "--peers", *peers]
        + ["--workloads", "zz8-estimator", "zz8-sampler-probs"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    for peer in peers:  # timed, or skipped with a line
        assert f"{peer} step s" in out or f"skip peer {peer}" in out
    assert "threads: 1 for every side" in out
    row = next(line for line in out.splitlines() if line.startswith("| zz8-sampler-probs "))
    assert [c.strip() for c in row.split("|")[2:4]] == ["8", "256"]
    assert "vs its network's Jacobians contracted with the cotangent" in out
    assert "MISMATCH" not in out and "Targets (issue 13)" in out


def test_train_step_pieces() -> None:
    from benchmarks.bench_train import ConnectorStep, TrainRow, agreement, train_table

    spec = zz_estimator(3)
    inputs, weights = spec.random_data(5, 0)
    step = ConnectorStep(spec)
    input_grads, weight_grads = step.backward(inputs, weights, True)
    expected = contract(step.network.backward(inputs, weights))
    np.testing.assert_allclose(input_grads, expected[0], atol=1e-12)
    np.testing.assert_allclose(weight_grads, expected[1], atol=1e-12)
    assert step.forward(inputs, weights).shape == (5, 1)
    big = np.full(3, 100.0)
    assert agreement(big + 1e-7, big, 1e-8)[0]  # relative to the largest value above 1
    assert not agreement(np.ones(3) + 1e-7, np.ones(3), 1e-8)[0]
    row = TrainRow("w", 8, 2, step={"gpuqnn": 0.1, "gpuqnn c64": 0.05, "p": 0.5}, forward=0.05)
    row.compile["p"] = 3.0
    row.skipped["q"] = "no"
    table = train_table([row], ["p", "q"])
    cells = [c.strip() for c in table.splitlines()[2].split("|")[1:-1]]
    assert cells == [
        *("w", "8", "2", "0.1", "0.05", "2x", "0.05"),
        *("0.5", "3.0", "n/a", "n/a", "p", "5x", "10x"),
    ]
    from benchmarks.bench_train import targets_lines  # noqa: PLC0415

    assert targets_lines([row], ["p"]) == [
        ["w (batch 8): step >= 5x p", "10x", "met"],
        ["w (batch 8): step <= 4x forward", "2x", "met"],
    ]


def test_gpu_model_counts_shared_traffic_and_is_labelled_a_model() -> None:
    """The GPU time model (benchmarks/gpu_model.py): each uncontrolled pass over a row moves
    every amplitude in and out of shared memory; complex64 moves half the bytes of complex128;
    every report says it is a model."""
    from qiskit import QuantumCircuit  # noqa: PLC0415
    from qiskit.circuit import Parameter  # noqa: PLC0415

    from benchmarks.gpu_model import forward_row, model_report  # noqa: PLC0415
    from gpuqnn import EstimatorQNN  # noqa: PLC0415
    from gpuqnn._internals import simulator_of  # noqa: PLC0415

    theta = Parameter("t")
    qc = QuantumCircuit(3)
    qc.h([0, 1, 2])
    qc.ry(theta, 0)
    qc.cx(0, 1)
    program = simulator_of(EstimatorQNN(circuit=qc, weight_params=[theta])).program
    row = forward_row(program, 16)
    # three passes, h(0), ry(0), then h(1) cx(0, 1) h(2) multiplied into one dense op, each
    # moving all 8 amplitudes of 16 bytes in and out of shared memory
    assert row.shared_bytes == 3 * 2 * 8 * 16 and row.barriers == 3
    wide, narrow = model_report("complex128"), model_report("complex64")
    assert "MODEL" in wide["label"] and "not measured" in wide["label"]
    for a, b in zip(wide["targets"], narrow["targets"], strict=True):
        assert a["shared_bytes_per_row"] == 2 * b["shared_bytes_per_row"]
        assert 0 < b["model_ms"] <= a["model_ms"]


def test_tutorial_benchmark_smoke() -> None:
    """The tutorial benchmark (issue 19) at tiny sizes: both parts print, statistics agree."""
    from benchmarks.bench_tutorial import QUICK, report  # noqa: PLC0415

    lines: list[str] = []
    report(QUICK, lines.append)
    text = "\n".join(lines)
    assert "| estimator output 0" in text and "| sampler, 2 qubits" in text
    assert "statistics agree: True" in text


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_every_benchmark_script_runs_as_a_file() -> None:
    """``python benchmarks/<script>.py`` (the old form, issue 19) works as ``python -m
    benchmarks.<script>`` does: every script with a main imports the path shim first, and
    bench_gpu's ``--plan`` runs as a file from another directory."""
    scripts = [p for p in BENCHMARKS.glob("*.py") if '__name__ == "__main__"' in p.read_text()]
    assert len(scripts) >= 8
    for script in scripts:
        text = script.read_text()
        assert 'if __package__ in (None, ""):' in text, f"{script.name} has no path shim"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_gpu.py"), "--plan", "--quick"],
        cwd=BENCHMARKS.parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "plan zz" in done.stdout


def test_compare_trees_reads_every_gpuqnn_column_of_bench_qnn() -> None:
    from benchmarks.compare_trees import parse_table  # noqa: PLC0415

    table = """| workload | pass | batch | gpuqnn auto/c128 s | adjoint/c128 | fastest peer |
| --- | --- | ---: | ---: | ---: | --- |
| zz8-estimator | forward | 256 | 0.004999 | = | - |
| zz8-estimator | backward | 256 | 0.01197 | 0.0113 | - |"""
    assert parse_table(table) == {
        ("zz8-estimator", "forward", "auto/c128"): 0.004999,
        ("zz8-estimator", "backward", "auto/c128"): 0.01197,
        ("zz8-estimator", "backward", "adjoint/c128"): 0.0113,
    }


def test_native_benchmark_counts_flops_and_compares_both_engines() -> None:
    """bench_native's flop count of a circuit counted by hand, and its table on a tiny case
    (the native engine's check against the NumPy engine runs inside)."""
    from qiskit.circuit import Parameter  # noqa: PLC0415

    import gpuqnn  # noqa: PLC0415
    from benchmarks import bench_native  # noqa: PLC0415

    if not native_built():
        pytest.skip("the native engine is not built")
    qc = QuantumCircuit(2)
    a, b = Parameter("a"), Parameter("b")
    qc.ry(a, 0)
    qc.rz(b, 1)
    network = gpuqnn.EstimatorQNN(
        circuit=qc, observables=SparsePauliOp("ZZ"), weight_params=[a, b], engine="native"
    )
    # two rotations on 4 amplitudes (real, imaginary coefficients: 8 flops each), one Z term
    assert bench_native.flops_per_row(network) == 2 * 4 * 8 + 4 * 4 * 1
    rows = bench_native.run(1, quick=True, peak=16.0, cases=(("zz2", 2, 4),))
    assert [row[3] for row in rows] == list(bench_native.PASSES) * 2
    assert all(float(row[4]) > 0 and float(row[5]) > 0 for row in rows)

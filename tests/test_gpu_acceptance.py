"""The GPU acceptance script (``benchmarks/gpu_acceptance.py``): its CPU dry run end to end, its
stage harness (failures recorded, later stages still run, the deadline), its parsers, and the
kernel stage's CuPy path on a stand-in CuPy backed by the kernels' host build."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks import gpu_acceptance
from benchmarks.gpu_acceptance import TOLERANCE, kernel_stage, pytest_summary, sizes_for
from benchmarks.harness import Harness, Skip, Stage, StageContext

pytestmark = pytest.mark.gpu_logic

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["environment", "timings", "compile", "kernels", "profile", "sanitizer", "pytest"]


@pytest.mark.slow
def test_dry_run_end_to_end(tmp_path: Path) -> None:
    """``--device cpu`` runs every stage that needs no GPU, passes, and says why it skipped
    the others: the whole command in a child process (slow: its kernel cases build about a
    dozen generated kernels for the host; CI runs :func:`test_dry_run_stages_in_process`)."""
    out = tmp_path / "report.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "benchmarks.gpu_acceptance", "--device", "cpu"]
    command += ["--out", str(out), "--budget-s", "150", "--skip", "profile"]
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DRY RUN" in result.stdout
    report = json.loads(out.read_text())
    stages = {s["name"]: s for s in report["stages"]}
    assert [s["name"] for s in report["stages"]] == STAGES
    assert report["dry_run"] is True and report["summary"]["exit_status"] == 0
    assert all(s["status"] in ("ok", "skipped") for s in stages.values()), stages
    for name in ("environment", "timings", "compile", "kernels"):
        assert stages[name]["status"] == "ok", stages[name]
    assert stages["profile"]["reason"] == "skipped with --skip"  # test_profile_stage runs it
    for name in ("pytest", "sanitizer"):
        assert stages[name]["status"] == "skipped"
        assert "dry run" in stages[name]["reason"] and "no GPU" in stages[name]["reason"]

    kernels = stages["kernels"]["details"]
    assert "host build" in kernels["runners"]
    cases = kernels["cases"]
    assert {c["path"] for c in cases} == {
        "fused-forward",
        "fused-adjoint-jacobian",
        "fused-adjoint-vjp",
        "per-op-forward",
    }
    assert {c["dtype"] for c in cases} == set(TOLERANCE)
    for case in cases:
        assert case["status"] == "passed", case
        error = case["max_abs_error"]
        assert isinstance(error, float) and math.isfinite(error), case
        assert error <= TOLERANCE[case["dtype"]] == case["tolerance"], case
        assert case["reference_max_abs"] > 1e-3, case
    # complex64 kernels against the complex128 reference: a real comparison, not 0 == 0
    assert max(c["max_abs_error"] for c in cases if c["dtype"] == "complex64") > 0

    compiled = stages["compile"]["details"]["kernels"]
    assert len(compiled) == 12 and all(k["source_bytes"] > 0 for k in compiled if k["fits"])
    timings = stages["timings"]["details"]
    assert "DRY RUN" in timings["label"]
    assert all(t["verdict"] == "not evaluated" for t in timings["targets"])
    model = timings["model"]
    assert model["status"] in ("ok", "skipped") and (model["status"] == "ok" or model["reason"])


SMALL_CASES = dict(
    fused_forward=((3, "pauli", 5),), fused_adjoint=((5, "pauli", 7),), per_op=((2, "direct"),)
)
"""The kernel cases of the fast tests, in complex128 only. Their forward kernel and adjoint
Jacobian kernel are those ``test_fused_runner_copies_a_shift_plan_to_the_device_once`` and
``test_outputs_beyond_the_first_recompute_or_restore_the_final_state[final-kept]`` launch (the
same programs, readouts and slots), so a whole-suite session builds them for the host once; the
VJP kernel is built here (and launched again by the stand-in CuPy test)."""


def _small_zz(qubits: int, dtype: str = "complex128"):
    """A 3- and a 4-qubit ZZ estimator's tables in place of the 8- and 12-qubit workloads'."""
    return _ZZ_TABLES[0](3 if qubits == 8 else 4, dtype)


_ZZ_TABLES = [gpu_acceptance.zz_kernel_tables]


def test_dry_run_stages_in_process(
    tmp_path: Path, kernels, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dry run's stages in this process, as ``main`` runs them, on small sizes: every
    stage that needs no GPU runs and passes, the others say why they skipped, the report is on
    disk; the kernel cases run on the session's host build (complex128 only), the compile stage
    generates every kernel of two small ZZ circuits, the timings run ``bench_gpu`` on the
    8-qubit workload without peers."""
    monkeypatch.setattr(gpu_acceptance, "DTYPES", ("complex128",))
    monkeypatch.setattr(gpu_acceptance.gi, "HostKernels", lambda directory: kernels)
    monkeypatch.setattr(gpu_acceptance, "zz_kernel_tables", _small_zz)
    timing = ("--workloads", "zz8-estimator", "--peers", "--device", "cpu", "--quick")
    sizes = replace(
        sizes_for("cpu", quick=True),
        compile_kinds={},
        kernel_samples=2,
        timing_args=(*timing, "--repeat", "1"),
        **SMALL_CASES,
    )
    out = tmp_path / "report.json"
    harness = Harness(gpu_acceptance.stages(sizes), out, 300, {"dry_run": True})
    report = harness.run()
    assert report == json.loads(out.read_text())
    stages = {s["name"]: s for s in report["stages"]}
    assert [s["name"] for s in report["stages"]] == STAGES
    assert harness.exit_status == 0, stages
    for name in ("environment", "timings", "compile", "kernels"):
        assert stages[name]["status"] == "ok", stages[name]
    for name in ("pytest", "sanitizer"):
        assert stages[name]["status"] == "skipped"
        assert "dry run" in stages[name]["reason"] and "no GPU" in stages[name]["reason"]

    kernels_stage = stages["kernels"]["details"]
    assert "host build" in kernels_stage["runners"]
    cases = kernels_stage["cases"]
    assert sorted((c["path"], c["dtype"]) for c in cases) == [
        ("fused-adjoint-jacobian", "complex128"),
        ("fused-adjoint-vjp", "complex128"),
        ("fused-forward", "complex128"),
        ("per-op-forward", "complex128"),
    ]
    for case in cases:
        assert case["status"] == "passed", case
        assert case["max_abs_error"] <= TOLERANCE["complex128"] == case["tolerance"], case
        assert case["reference_max_abs"] > 1e-3, case

    compiled = stages["compile"]["details"]["kernels"]
    assert len(compiled) == 6 and all(k["fits"] and k["source_bytes"] > 0 for k in compiled)
    assert all(k["nvrtc"] == "not compiled in this run's sizes" for k in compiled)
    timings = stages["timings"]["details"]
    assert "DRY RUN" in timings["label"] and timings["rows"]
    assert all(row["agrees"] for row in timings["rows"])
    assert all(t["verdict"] == "not evaluated" for t in timings["targets"])
    assert timings["model"]["status"] in ("ok", "skipped")


def test_precompile_runs_after_the_environment_on_a_gpu_only() -> None:
    """Issue 18, item 4: the headline (timings) comes right after the environment, and after
    the threaded precompile where it is asked for; ``pytest -m gpu`` is last."""
    names = [s.name for s in gpu_acceptance.stages(sizes_for("cuda", True), precompile=True)]
    assert names == ["environment", "precompile", *STAGES[1:]]
    assert [s.name for s in gpu_acceptance.stages(sizes_for("cpu", True))] == STAGES


def _stage(name: str, run, estimate: float = 1.0, precheck=None) -> Stage:
    return Stage(name, f"the {name} stage", run, estimate, precheck)


def test_a_failing_stage_is_recorded_and_later_stages_still_run(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    seen: list[str] = []

    def boom(ctx: StageContext) -> dict:
        raise ValueError("kernel exploded")

    def check_fails(ctx: StageContext) -> dict:
        seen.append("check")
        ctx.fail("error 3e-2 above 1e-9")
        return {"max_abs_error": 3e-2}

    def skips(ctx: StageContext) -> dict:
        raise Skip("compute-sanitizer is not on PATH")

    def fine(ctx: StageContext) -> dict:
        # the report on disk already has the earlier stages' outcomes and this one running
        on_disk = {s["name"]: s["status"] for s in json.loads(out.read_text())["stages"]}
        seen.append("fine")
        ctx.summary = "all good"
        return {"on_disk": on_disk}

    runner = Harness(
        [
            _stage("boom", boom),
            _stage("check", check_fails),
            _stage("precheck", fine, precheck=lambda: "no GPU"),
            _stage("skips", skips),
            _stage("fine", fine),
        ],
        out,
        budget_s=60,
    )
    report = runner.run()
    assert report == json.loads(out.read_text())
    assert runner.exit_status == 1 and report["summary"]["exit_status"] == 1
    stages = {s["name"]: s for s in report["stages"]}
    assert stages["boom"]["status"] == "failed"
    assert stages["boom"]["error"]["type"] == "ValueError"
    assert stages["boom"]["error"]["message"] == "kernel exploded"
    assert "raise ValueError" in stages["boom"]["error"]["traceback_tail"]
    assert stages["check"]["status"] == "failed"
    assert stages["check"]["failures"] == ["error 3e-2 above 1e-9"]
    assert stages["check"]["details"] == {"max_abs_error": 3e-2}
    assert stages["precheck"]["status"] == "skipped" and stages["precheck"]["reason"] == "no GPU"
    assert stages["skips"]["status"] == "skipped"
    assert stages["skips"]["reason"] == "compute-sanitizer is not on PATH"
    assert stages["fine"]["status"] == "ok" and stages["fine"]["summary"] == "all good"
    assert stages["fine"]["details"]["on_disk"] == {
        "boom": "failed",
        "check": "failed",
        "precheck": "skipped",
        "skips": "skipped",
        "fine": "running",
    }
    assert seen == ["check", "fine"]
    assert report["summary"] == {"ok": 1, "failed": 2, "skipped": 2, "exit_status": 1}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_stages_past_the_deadline_or_too_long_for_it_are_skipped(tmp_path: Path) -> None:
    clock = FakeClock()
    ran: list[str] = []
    deadlines: dict[str, float] = {}

    def slow(ctx: StageContext) -> dict:
        ran.append("slow")
        deadlines["slow"] = ctx.time_left()
        clock.now += 70.0
        return {}

    def quick(ctx: StageContext) -> dict:
        ran.append("quick")
        deadlines["quick"] = ctx.time_left()
        clock.now += 1.0
        return {}

    def never(ctx: StageContext) -> dict:
        ran.append("never")
        return {}

    runner = Harness(
        [
            _stage("slow", slow, estimate=10.0),
            _stage("too-long", never, estimate=40.0),
            _stage("quick", quick, estimate=5.0),
            _stage("late", lambda ctx: {}, estimate=0.0),
            _stage("no-gpu", never, estimate=500.0, precheck=lambda: "no GPU"),
        ],
        tmp_path / "report.json",
        budget_s=100.0,
        clock=clock,
    )
    report = runner.run()
    stages = {s["name"]: s for s in report["stages"]}
    assert ran == ["slow", "quick"]
    # "slow" may use the budget less what the later runnable stages estimate (40 + 5 + 0)
    assert deadlines["slow"] == pytest.approx(100.0 - 45.0)
    assert stages["slow"]["status"] == "ok" and stages["slow"]["seconds"] == pytest.approx(70.0)
    assert stages["too-long"]["status"] == "skipped"
    assert "estimated 40 s do not fit the 30 s left" in stages["too-long"]["reason"]
    assert stages["quick"]["status"] == "ok" and deadlines["quick"] == pytest.approx(30.0)
    assert clock.now == 1000.0 + 71.0
    assert stages["no-gpu"]["reason"] == "no GPU"  # a precheck's reason comes first
    assert stages["late"]["status"] == "ok"  # 29 s left and an estimate of 0: it runs

    def overruns(ctx: StageContext) -> dict:
        clock.now = 200.0
        return {}

    clock.now = 0.0
    late = Harness(
        [_stage("past", overruns), _stage("after", never)],
        tmp_path / "late.json",
        budget_s=100.0,
        clock=clock,
    ).run()
    assert late["stages"][1]["status"] == "skipped"
    assert "past the deadline" in late["stages"][1]["reason"]
    assert late["summary"]["exit_status"] == 0


def test_pytest_summary_is_parsed() -> None:
    lines = [
        "....s",
        "SKIPPED [1] tests/test_gpu.py:9: no device",
        "= 5 passed, 1 skipped in 9.12s =",
    ]
    assert pytest_summary(lines) == "5 passed, 1 skipped in 9.12s"
    assert pytest_summary(["no tests ran in 0.01s"]) == "no tests ran in 0.01s"


def _stand_in_cupy(kernels, monkeypatch: pytest.MonkeyPatch):
    stand_in = getattr(pytest.importorskip("test_cuda_kernels"), "_FakeCupy", None)
    if stand_in is None:
        pytest.skip("tests/test_cuda_kernels.py no longer has its stand-in CuPy, _FakeCupy")
    fake_cupy = stand_in(kernels)

    class Device(fake_cupy.cuda.Device):
        def synchronize(self) -> None:
            return None

    fake_cupy.cuda.Device = Device
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setattr(gpu_acceptance, "DTYPES", ("complex128",))
    return fake_cupy


def test_kernel_stage_on_a_stand_in_cupy(kernels, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU run's kernel stage (CuPy's FusedLauncher and PerOpLauncher) on the stand-in CuPy of
    the kernel tests, whose launches run on the host build (the kernels of the fast dry run's
    cases, so built once per session)."""
    _stand_in_cupy(kernels, monkeypatch)
    cases = dict(SMALL_CASES, fused_forward=(*SMALL_CASES["fused_forward"], (14, "pieces")))
    sizes = replace(sizes_for("cuda", quick=True), kernel_samples=2, **cases)
    context = StageContext(time.monotonic() + 300)
    details = kernel_stage(sizes)(context)
    assert context.failures == []
    assert details["runners"].startswith("CuPy FusedLauncher and PerOpLauncher")
    statuses = {(c["path"], c["qubits"], c["dtype"]): c["status"] for c in details["cases"]}
    assert statuses.pop(("fused-forward", 14, "complex128")) == "n/a"  # beyond shared memory
    assert set(statuses.values()) == {"passed"} and len(statuses) == 4


def test_precompile_stage_compiles_every_kernel_once_through_cupy(
    kernels, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18, item 4: the precompile stage hands every kernel the timings and the kernel
    cases launch (chains included) to CuPy's ``RawKernel(...).compile()`` once, with the
    launchers' options, and the per-op module to ``RawModule(...).compile()``; with no time
    left it compiles nothing and says so."""
    fake_cupy = _stand_in_cupy(kernels, monkeypatch)
    monkeypatch.setattr(gpu_acceptance, "zz_kernel_slot_sets", _small_slot_sets)
    sizes = replace(sizes_for("cuda", quick=True), **SMALL_CASES)
    expected = gpu_acceptance.needed_kernels(sizes, gpu_acceptance.shared_limit(sizes))
    context = StageContext(time.monotonic() + 300)
    details = gpu_acceptance.precompile_stage(sizes)(context)
    assert context.failures == []
    keys = sorted(key for name, key, _options in fake_cupy.compiled if name != "module")
    assert keys == sorted(k.key for _label, k in expected) and len(set(keys)) == len(keys)
    assert [c for c in fake_cupy.compiled if c[0] == "module"] == [("module", None, None)]
    assert {options for _n, _k, options in fake_cupy.compiled if options} == {("-std=c++17",)}
    assert all(r["status"] == "ok" for r in details["kernels"])
    labels = [r["kernel"] for r in details["kernels"]]
    assert any("case fused-adjoint-vjp 5 pauli complex128" in label for label in labels)
    assert any("zz12" in label for label in labels)
    fake_cupy.compiled.clear()
    late = StageContext(time.monotonic() - 1)
    details = gpu_acceptance.precompile_stage(sizes)(late)
    assert [c[0] for c in fake_cupy.compiled] == ["module"]
    assert {r["status"] for r in details["kernels"]} == {"not compiled: the stage's time ran out"}


def _small_slot_sets(qubits: int, dtype: str = "complex128"):
    return _SLOT_SETS[0](3 if qubits == 8 else 4, dtype)


_SLOT_SETS = [gpu_acceptance.zz_kernel_slot_sets]


class _Distribution:
    """A stand-in for an installed distribution: what ``cupy_distributions`` reads."""

    def __init__(self, name: str, version: str) -> None:
        self.metadata = {"Name": name}
        self.version = version


def _installed(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    others = [_Distribution("numpy", "2.3.0"), _Distribution("cupyx-extras", "1.0")]
    dists = others + [_Distribution(name, "14.2.0") for name in names]
    monkeypatch.setattr(gpu_acceptance, "installed_distributions", lambda: iter(dists))


def test_two_cupy_distributions_fail_the_environment_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 3 of issue 18: cupy-cuda12x beside cupy-cuda13x (the old test extra on a CUDA 12
    install) fails the environment stage, naming both and what to do; one CuPy, or none, passes
    that check (names compared as pip normalises them)."""
    _installed(monkeypatch, "cupy-cuda12x", "cupy_cuda13x")
    ctx = StageContext(deadline=time.monotonic() + 60)
    details = gpu_acceptance.environment_stage("cpu")(ctx)
    assert details["cupy_distributions"] == ["cupy-cuda12x 14.2.0", "cupy-cuda13x 14.2.0"]
    assert len(ctx.failures) == 1, ctx.failures
    assert ctx.failures[0].startswith("2 CuPy distributions are installed (cupy-cuda12x 14.2.0")
    assert "pip uninstall cupy-cuda12x cupy-cuda13x" in ctx.failures[0]
    for names in (("cupy-cuda13x",), ("CuPy",), ()):
        _installed(monkeypatch, *names)
        ctx = StageContext(deadline=time.monotonic() + 60)
        assert len(gpu_acceptance.check_one_cupy(ctx)) == len(names)
        assert ctx.failures == []


def test_profile_stage_counts_a_fused_backward() -> None:
    """The profile stage on the host build, on a 3-qubit zz estimator (zz8 and zz12 compile
    for minutes on the host): one launch, a few host array calls, the engine's derivatives;
    a record over the targets fails it."""
    ctx = StageContext(deadline=time.monotonic() + 600)
    details = gpu_acceptance.profile_stage(sizes_for("cpu", True), qubits=(3,))(ctx)
    assert ctx.failures == [], ctx.failures
    (case,) = details["cases"]
    assert case["workload"] == "zz3-estimator" and case["runner"] == "fused CUDA kernels"
    assert case["launches_per_backward"] == 1 and 0 < case["host_ops_per_backward"] <= 16
    assert case["max_abs_error"] < 1e-9 and case["method"] == "adjoint"
    assert "1 launches" in ctx.summary
    over = case | {"launches_per_backward": 3, "host_ops_per_backward": 40}
    assert len(gpu_acceptance.backward_profile.failures(over)) == 2

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


def test_dry_run_end_to_end(tmp_path: Path) -> None:
    """``--device cpu`` runs every stage that needs no GPU, passes, and says why it skipped
    the others."""
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


def test_kernel_stage_on_a_stand_in_cupy(kernels, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU run's kernel stage (CuPy's FusedLauncher and PerOpLauncher) on the stand-in CuPy of
    the kernel tests, whose launches run on the host build."""
    stand_in = getattr(pytest.importorskip("test_cuda_kernels"), "_FakeCupy", None)
    if stand_in is None:
        pytest.skip("tests/test_cuda_kernels.py no longer has its stand-in CuPy, _FakeCupy")
    fake_cupy = stand_in(kernels)

    class Device(fake_cupy.cuda.Device):
        def synchronize(self) -> None:
            return None

    fake_cupy.cuda.Device = Device
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    sizes = replace(
        sizes_for("cuda", quick=True),
        fused_forward=((3, "pauli"), (14, "pieces")),
        fused_adjoint=((4, "pieces"),),
        per_op=((5, "direct"),),
        kernel_samples=2,
    )
    context = StageContext(time.monotonic() + 300)
    details = kernel_stage(sizes)(context)
    assert context.failures == []
    assert details["runners"].startswith("CuPy FusedLauncher and PerOpLauncher")
    statuses = {(c["path"], c["qubits"], c["dtype"]): c["status"] for c in details["cases"]}
    assert statuses.pop(("fused-forward", 14, "complex128")) == "n/a"  # beyond shared memory
    assert set(statuses.values()) == {"passed"} and len(statuses) == 9


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

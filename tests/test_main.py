"""The main job and the benchmark script run and agree with qiskit-machine-learning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gpuqnn.__main__ import main


def test_main_job_agrees_with_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--batch", "16"]) == 0
    out = capsys.readouterr().out
    assert "all results agree" in out
    assert "0.29700940" in out  # the tutorial's EstimatorQNN forward value
    assert "speed-up" in out


def test_main_job_reports_missing_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--device", "gpu", "--batch", "0"]) == 2
    assert "gpu" in capsys.readouterr().err.lower()


def test_benchmark_smoke() -> None:
    script = Path(__file__).parents[1] / "benchmarks" / "bench_qnn.py"
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--workloads", "tutorial-estimator",
         "tutorial-sampler", "--repeat", "1", "--ref-batch", "2"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "| tutorial-sampler" in result.stdout
    assert "backward+input_grads" in result.stdout
    assert "OK" in result.stdout and "MISMATCH" not in result.stdout

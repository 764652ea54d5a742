"""benchmarks/bench_scale.py: the quick run on the CPU, the GPU plan and its efficiency column.
Speed is never asserted."""

from __future__ import annotations

import argparse
import re

import pytest

from benchmarks import bench_scale

# under pytest-xdist these tests share one worker: each starts processes of its own (torchrun
# ranks, Ray actors), and two such groups at once on a 2-core runner would starve each other
pytestmark = pytest.mark.xdist_group("processes")


def test_quick_run_measures_one_process_against_two_ddp_ranks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    for name, value in bench_scale.THREAD_ENV.items():  # main sets them; restored afterwards
        monkeypatch.setenv(name, value)
    assert bench_scale.main(["--quick", "--no-ray"]) == 0
    out = capsys.readouterr().out
    assert "OMP_NUM_THREADS': '1'" in out
    rows = {}
    for line in out.splitlines():
        match = re.match(r"(train 1 proc|train DDP x2|infer 1 proc)\s+4\s+(\d+)\s+([\d.]+)", line)
        if match:
            rows[match.group(1)] = float(match.group(2)), float(match.group(3))
            assert "cores 1, torch 1, OMP 1" in line  # every side's threads fixed and printed
    assert set(rows) == {"train 1 proc", "train DDP x2", "infer 1 proc"}
    assert all(rate > 0 and cpu > 0 for rate, cpu in rows.values())


def _args(**changes: object) -> argparse.Namespace:
    args = bench_scale.parse_args([])
    for name, value in changes.items():
        setattr(args, name, value)
    return args


def test_gpu_plan_gives_one_device_per_worker_and_an_efficiency_column() -> None:
    sides = bench_scale.plan(_args(gpus=3))
    names = [s.name for s in sides]
    assert names == [
        "train DDP x1 GPU",
        "train DDP x2 GPU",
        "train DDP x3 GPU",
        "infer proc x1 GPU",
        "infer Ray x1 GPU",
        "infer Ray x2 GPU",
        "infer Ray x3 GPU",
    ]
    assert sides[2].devices == ("cuda:0", "cuda:1", "cuda:2")
    assert all(s.cores is None for s in sides)
    results = {
        (s.name, 8): bench_scale.Result(
            samples_per_s=100.0 * s.workers * (0.9 if s.workers > 1 else 1)
        )
        for s in sides
    }
    text = bench_scale.table(sides, results, [8], gpus=True)
    line = next(row for row in text.splitlines() if row.startswith("train DDP x3 GPU"))
    assert "2.70x" in line and "90%" in line
    dry = bench_scale.plan(_args(gpus=2, device="cpu", no_ray=True))
    assert {d for s in dry for d in s.devices} == {"cpu"}


def test_cpu_plan_pins_every_worker_to_one_core() -> None:
    sides = bench_scale.plan(_args(no_ray=False))
    by_name = {s.name: s for s in sides}
    assert by_name["train DDP x2"].workers == 2
    assert all(len(c) == 1 for c in by_name["train DDP x2"].cores)
    assert all(len(c) == 1 for c in by_name["infer Ray x2"].cores)
    assert len(by_name["train 1 proc x2 threads"].cores[0]) in (1, 2)  # 2 where 2 cores exist

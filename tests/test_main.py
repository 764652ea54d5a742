"""The main job and the benchmark script run and agree with qiskit-machine-learning."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpuqnn._cli.main import main
from gpuqnn._progress import ProgressBar

QUICK = ["--batch", "16", "--epochs", "4", "--samples", "16", "--qubits", "2"]


def test_main_job_agrees_with_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(QUICK) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert out.splitlines()[1].startswith("device: cpu (NumPy), complex128")
    assert "all results agree" in out
    assert "0.29700940" in out  # the tutorial's EstimatorQNN forward value
    assert "speed-up" in out
    # the training run: losses, accuracy, and one epoch against qiskit-machine-learning
    training = out.split("training: NeuralNetworkClassifier")[1]
    match = re.search(r"loss (\d\.\d+) -> (\d\.\d+) over (\d+) epochs", training)
    assert match and float(match.group(2)) < float(match.group(1))
    same = re.search(r"same loss to (\S+)", training)
    assert same and float(same.group(1)) < 1e-9
    assert "qiskit-ml" in training
    # progress bars go to stderr, not into the results
    assert "gpuqnn     [" in captured.err and "[#" not in out


def test_main_job_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--device", "--dtype", "--batch", "--qubits", "--epochs", "--samples"):
        assert option in help_text
    for bad in (["--qubits", "1"], ["--batch", "-1"], ["--dtype", "float32"]):
        with pytest.raises(SystemExit) as exit_info:
            main(bad)
        assert exit_info.value.code == 2
    assert (
        main(
            [
                "--batch",
                "0",
                "--epochs",
                "2",
                "--samples",
                "8",
                "--qubits",
                "3",
                "--dtype",
                "complex64",
                "--no-reference",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "complex64" in out and "qiskit-ml" not in out.split("training:")[1]
    assert "speed-up" not in out


def test_no_reference_leaves_the_reference_columns_out(capsys) -> None:
    """--no-reference times gpuqnn alone: the table has no qiskit-ml or speed-up columns
    (they were nan and nanx)."""
    assert main(["--batch", "8", "--epochs", "0", "--no-reference"]) == 0
    timing = capsys.readouterr().out.split("forward + backward (with input gradients)")[1]
    lines = timing.strip().splitlines()[1:]
    assert lines[0].split() == ["network", "gpuqnn", "s"]
    assert len(lines) == 5
    for line in lines[1:]:
        assert "nan" not in line and not line.rstrip().endswith("x")
        float(line.split()[-1])  # gpuqnn's seconds end the row


@pytest.mark.parametrize(
    "argv",
    [
        ["--qubits", "30", "--batch", "0", "--no-reference"],
        ["--qubits", "20"],
        ["--qubits", "1"],
    ],
)
def test_main_job_refuses_widths_it_cannot_time_before_any_work(argv, capsys) -> None:
    """A one-line error (argparse's usage and error lines), no traceback, nothing run."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--qubits" in errors[0] and "16" in errors[0]


def test_main_job_help_states_the_qubit_limit(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "2 to 16" in " ".join(capsys.readouterr().out.split())


def test_every_network_is_compared_and_printed_after_a_mismatch(monkeypatch, capsys) -> None:
    """One network disagreeing (here both SamplerQNNs, the second and third network) must not
    stop the comparison of the others: all four are printed, and the job fails."""
    import gpuqnn._cli.main as main_module  # noqa: PLC0415

    class WrongSampler(main_module.SamplerQNN):
        def _forward(self, input_data, weights):
            return super()._forward(input_data, weights) + 0.01

    monkeypatch.setattr(main_module, "SamplerQNN", WrongSampler)
    assert main(["--batch", "0", "--epochs", "0"]) == 1
    out = capsys.readouterr().out
    for example in main_module.tutorial_examples():
        assert out.count(example.title + "\n") == 1
    assert "MISMATCH" in out
    tables = out.split("observables [Y, Z]\n")[1]
    assert "forward" in tables and "d/d weights" in tables  # the last network's rows too


def test_reference_epoch_shows_progress_per_chunk(capsys) -> None:
    assert main(["--batch", "0", "--epochs", "2", "--samples", "20", "--qubits", "2"]) == 0
    err = capsys.readouterr().err
    assert "20/20 samples" in err


def test_training_bar_counts_the_epochs_the_summary_reports(capsys) -> None:
    """The bar counts objective evaluations, as the summary does: 4 L-BFGS-B iterations take 6
    evaluations here, and the bar stopped at 4/4 with an older loss."""
    assert main(["--batch", "0", "--epochs", "4", "--samples", "16", "--qubits", "2"]) == 0
    captured = capsys.readouterr()
    bar = re.search(r"gpuqnn +\[#+\] (\d+)/(\d+) .* loss (\d\.\d+)", captured.err)
    summary = re.search(
        r"-> (\d\.\d+) over (\d+) epochs \(full-batch evaluations, in (\d+) L-BFGS-B iterations",
        captured.out,
    )
    assert bar and summary
    assert bar.group(1) == bar.group(2) == summary.group(2)  # a full bar of the same epochs
    assert bar.group(3) == summary.group(1)  # ending at the same loss
    assert int(summary.group(2)) > int(summary.group(3)) == 4  # a case where they differ


def test_progress_bar_grows_past_a_rough_total() -> None:
    log = io.StringIO()
    with ProgressBar(2, "work", log) as bar:
        for _ in range(3):
            bar.update(grow=True)
        bar.update()  # without grow, the count stops at the total
    assert "] 3/3" in log.getvalue()


def test_main_job_reports_missing_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--device", "gpu", "--batch", "0"]) == 2
    assert "gpu" in capsys.readouterr().err.lower()


def test_console_script_entry_point() -> None:
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    scripts = pyproject.split("[project.scripts]")[1].split("[")[0]
    assert 'gpuqnn = "gpuqnn._cli.main:main"' in scripts


def test_progress_bar_only_draws_live_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    log, terminal = io.StringIO(), Terminal()
    for stream in (log, terminal):
        with ProgressBar(3, "work", stream) as bar:
            for _ in range(3):
                bar.update(note="step")
    assert log.getvalue().count("\n") == 1 and "\r" not in log.getvalue()
    assert "[" + "#" * 24 + "] 3/3" in log.getvalue()
    assert terminal.getvalue().count("\r") == 5  # first draw, three updates, the close


def test_benchmark_smoke() -> None:
    root = Path(__file__).parents[1]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_qnn",
            "--quick",
            "--workloads",
            "tutorial-estimator",
            "tutorial-sampler",
            "--repeat",
            "1",
            "--ref-batch",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "| tutorial-sampler" in out
    assert "backward+input_grads" in out
    assert "OK" in out and "MISMATCH" not in out
    assert "gpuqnn auto/c128 s" in out and "shift/c128" in out and "qiskit-ml" in out
    assert "Targets (issue 5)" in out
    for peer in ("pennylane-backprop", "lightning-adjoint"):  # timed, or skipped with a line
        assert f"| {peer}" in out.split("\n| workload")[1].splitlines()[0] or (
            f"skip peer {peer}" in out
        )

"""Every ```python block of the README runs as written (so the documentation never rots)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.DOTALL | re.MULTILINE)


def test_readme_has_snippets_for_each_feature() -> None:
    text = "\n".join(BLOCKS)
    for needle in (
        "from gpuqnn import EstimatorQNN",
        "TorchConnector(",
        "sampler=Sampler()",
        "Estimator(default_precision",
        "EstimatorGradient()",
        "callback=callback",  # progress of long fits through qiskit-machine-learning's callback
        "gpuqnn.profile()",  # where the time goes
    ):
        assert needle in text


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_snippet_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    if "torch" in BLOCKS[index]:
        pytest.importorskip("torch")
    if "qiskit_aer" in BLOCKS[index]:
        pytest.importorskip("qiskit_aer")
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})  # noqa: S102
    capsys.readouterr()


def test_ci_runs_the_readme_test_command_and_pins_only_there() -> None:
    """.ci/run is the README's test command; the exact torch pin lives in the CI constraint
    file, users get a range from the extras."""
    root = README.parent
    readme = README.read_text()
    command = re.search(r"this is what CI runs.*?```bash\n(.*?)\n```", readme, re.DOTALL)
    assert command is not None
    ci_lines = (root / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == command.group(1).strip()
    assert "-c .ci/constraints.txt" in ci_lines[-1]
    constraints = (root / ".ci" / "constraints.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", constraints, re.MULTILINE)
    pyproject = (root / "pyproject.toml").read_text()
    assert not re.search(r'"torch==', pyproject), "an exact torch pin in the package extras"
    assert '"torch>=2.2"' in pyproject

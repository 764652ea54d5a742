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
    ):
        assert needle in text


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_snippet_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    if "torch" in BLOCKS[index]:
        pytest.importorskip("torch")
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {})  # noqa: S102
    capsys.readouterr()

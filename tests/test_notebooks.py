"""The notebooks run top to bottom (sizes cut down by GPUQNN_NOTEBOOK_QUICK=1) and are stored
with the outputs of one such run, plots included, so that a reader sees them. Their own cells
assert their results (e.g. the tutorial's printed numbers); the run test clears the stored
outputs first and does not depend on them."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


MAX_BYTES = 300_000
"""Stored outputs keep a notebook file under this size (the PNG plots are most of it)."""


def test_notebooks_are_numbered_and_stored_with_outputs_of_a_run() -> None:
    """Executed once top to bottom (execution counts 1, 2, ...), every code cell with its
    outputs, the plots of 02, 03 and 04 inline, no errors or stderr, no volatile metadata
    (nbclient's execution timestamps), and small."""
    assert [path.name[:2] for path in NOTEBOOKS] == ["01", "02", "03", "04"]
    for path in NOTEBOOKS:
        assert path.stat().st_size < MAX_BYTES, path.name
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), path.name
        outputs = [output for cell in code for output in cell.outputs]
        assert outputs, path.name
        for cell in code:
            assert "execution" not in cell.metadata, path.name
        for output in outputs:
            assert output.output_type != "error", path.name
            assert output.get("name") != "stderr", path.name
        images = [output for output in outputs if "image/png" in output.get("data", {})]
        assert images or path.name.startswith("01"), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if path.name.startswith("02"):
        pytest.importorskip("torch")
    monkeypatch.setenv("GPUQNN_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:  # the stored outputs play no part in the run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on failure
    text = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "Error" not in text

"""Execute the notebooks once with ``GPUQNN_NOTEBOOK_QUICK=1`` and store them with their outputs.

Run from the repository root (``python notebooks/store_outputs.py``, with the ``notebooks``
extra installed). nbclient's execution timestamps are dropped, so that a re-run changes only
what the notebooks print and plot.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).parents[1]


def main() -> None:
    os.environ["GPUQNN_NOTEBOOK_QUICK"] = "1"
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # PNGs inline
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        nbclient.NotebookClient(
            notebook,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(ROOT)}},
        ).execute()
        for cell in notebook.cells:
            cell.metadata.pop("execution", None)  # nbclient's timestamps
        nbformat.validate(notebook)
        nbformat.write(notebook, path)
        seconds = time.perf_counter() - start
        print(f"{path.name}: {seconds:.1f} s, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()

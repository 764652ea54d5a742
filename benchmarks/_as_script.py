"""Imported first by a benchmark run as a file (``python benchmarks/bench_gpu.py``), which
puts only ``benchmarks/`` on ``sys.path``: this adds the repository root, so that the script's
``from benchmarks import ...`` works as under ``python -m benchmarks.bench_gpu``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

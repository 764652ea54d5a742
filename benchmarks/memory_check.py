"""Peak memory of 100,000 samples under ``max_memory`` (``bench_qnn --memory``; README,
"Memory"), in a fresh process (``python -m benchmarks.memory_check``) so that its peak RSS
(``VmHWM``, which starts afresh at ``exec``) is this measurement's; each pass runs once for its
time and once under ``tracemalloc``."""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    import _as_script  # type: ignore[import-not-found]  # noqa: F401

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.implementations import Variant
from benchmarks.report import render
from benchmarks.workloads import zz_estimator

_ROOT = Path(__file__).resolve().parents[1]

SAMPLES = 100_000
MAX_MEMORY = 256 << 20


def traced_peak(run: Callable[[], Any]) -> tuple[int, int]:
    """(peak bytes beyond the memory held before, minus the returned arrays; those arrays'
    bytes) of one call of ``run``."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = run()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    arrays = result if isinstance(result, tuple) else (result,)
    returned = sum(a.nbytes for a in arrays if a is not None)
    return peak - returned, returned


def peak_rss() -> int:
    """Peak resident set size of this process's memory image, bytes (see the module doc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(samples: int, max_memory: int, num_qubits: int = 8) -> dict[str, Any]:
    """Time and trace the forward and backward+input_grads passes; also the process's peak
    RSS before and after them."""
    spec = zz_estimator(num_qubits)
    network = Variant("auto/c128").build(spec, max_memory=max_memory).network
    inputs, weights = spec.random_data(samples, seed=7)
    network.input_gradients = True
    network.forward(inputs[:8], weights)  # warm-up: compile and first-touch small buffers
    network.backward(inputs[:8], weights)
    rss_before = peak_rss()
    passes = []
    for name, call in (
        ("forward", lambda: network.forward(inputs, weights)),
        ("backward+input_grads", lambda: network.backward(inputs, weights)),
    ):
        start = time.perf_counter()
        call()
        seconds = time.perf_counter() - start
        peak, returned = traced_peak(call)
        passes.append(
            {"name": name, "seconds": seconds, "peak_bytes": peak, "returned_bytes": returned}
        )
    return {
        "samples": samples,
        "num_qubits": num_qubits,
        "max_memory": max_memory,
        "gradient_method": network.resolved_gradient_method(),
        "rss_before": rss_before,
        "rss_peak": peak_rss(),
        "passes": passes,
    }


def run_in_subprocess(samples: int = SAMPLES, max_memory: int = MAX_MEMORY) -> dict[str, Any]:
    """:func:`measure` in a fresh Python process; returns its figures."""
    command = [sys.executable, "-m", "benchmarks.memory_check", "--samples", str(samples)]
    command += ["--max-memory", str(max_memory)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=_ROOT)
    return json.loads(result.stdout)


def mib(nbytes: float) -> str:
    """Bytes in MiB, one decimal."""
    return f"{nbytes / (1 << 20):.1f}"


def memory_table(figures: dict[str, Any]) -> str:
    """The figures as a markdown table, one row per pass."""
    limit = figures["max_memory"]
    rows = [
        [p["name"], f"{figures['samples']:,}", f"{p['seconds']:.3g}", mib(p["peak_bytes"])]
        + [mib(p["returned_bytes"]), mib(limit), "yes" if p["peak_bytes"] <= limit else "NO"]
        for p in figures["passes"]
    ]
    header = ["pass", "samples", "seconds", "traced peak MiB", "returned MiB", "max_memory MiB"]
    table = render([*header, "within"], rows, numeric=[1, 2, 3, 4, 5])
    return (
        f"{table}\n\nProcess peak RSS {mib(figures['rss_peak'])} MiB "
        f"(after imports and warm-up: {mib(figures['rss_before'])} MiB); "
        f"{figures['num_qubits']}-qubit estimator, gradient method "
        f"{figures['gradient_method']}."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the figures as JSON (for :func:`run_in_subprocess`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--max-memory", type=int, default=MAX_MEMORY)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.samples, args.max_memory)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

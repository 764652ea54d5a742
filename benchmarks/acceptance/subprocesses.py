"""Stages 5 and 7, each a child process: ``pytest -m gpu``, and compute-sanitizer's memcheck and
racecheck over a tiny launch of the fused forward and adjoint kernels and the per-op kernels
(:func:`sanitizer_case`, run in the child)."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import numpy as np

from benchmarks.acceptance.environment import REPO_ROOT, child_env, find_tool
from benchmarks.acceptance.runner import Skip, StageContext

OUTPUT_TAIL = 40
"""Lines of a child's output kept in the report."""

SANITIZER_TOOLS = ("memcheck", "racecheck")
SANITIZER_EXIT = 86
"""compute-sanitizer's exit status when it found an error (``--error-exitcode``)."""
CASE_DONE = "gpuqnn sanitizer case done"
"""The line the sanitizer's child prints once :func:`sanitizer_case` returned."""


def run_child(command: list[str], timeout: float) -> dict[str, Any]:
    """Run ``command`` in the checkout with this checkout first on ``PYTHONPATH``: return
    code (None after a timeout), seconds and the output's tail."""
    try:
        result = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        returncode, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as exc:
        returncode = None
        output = _text(exc.stdout) + _text(exc.stderr)
    lines = output.strip().splitlines()
    return {
        "command": " ".join(command),
        "returncode": returncode,
        "timeout_s": round(timeout, 1),
        "output_tail": "\n".join(lines[-OUTPUT_TAIL:]),
        "lines": lines,
    }


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


_PYTEST_SUMMARY = re.compile(r"\b\d+ (passed|failed|skipped|errors?|deselected|xfailed)\b")


def pytest_summary(lines: list[str]) -> str:
    """pytest's final summary line (``3 passed, 1 skipped in 9.1s``), or ``""``."""
    for line in reversed(lines):
        if _PYTEST_SUMMARY.search(line) or "no tests ran" in line:
            return line.strip("= ").strip()
    return ""


def pytest_stage():
    """Stage 5: ``pytest -m gpu -q`` in a child process, for the time the stage has."""

    def run(ctx: StageContext) -> dict[str, Any]:
        timeout = max(10.0, ctx.time_left())
        command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
        result = run_child(command, timeout)
        summary = pytest_summary(result.pop("lines"))
        result["summary"] = summary
        ctx.summary = summary or "no summary line"
        if result["returncode"] is None:
            ctx.fail(f"timed out after {timeout:.0f} s (the stage's share of --budget-s)")
        elif result["returncode"] != 0:
            ctx.fail(f"pytest exited {result['returncode']}: {summary}")
        elif " passed" not in f" {summary}":
            ctx.fail(f"no gpu test passed ({summary}): does conftest see the device?")
        return result

    return run


def sanitizer_reason(device_reason: str | None) -> str | None:
    """Why stage 7 cannot run: no GPU, or no compute-sanitizer."""
    if device_reason is not None:
        return device_reason
    if find_tool("compute-sanitizer") is None:
        return "compute-sanitizer is not on PATH (nor in /usr/local/cuda/bin)"
    return None


def sanitizer_stage():
    """Stage 7: :func:`sanitizer_case` under compute-sanitizer's memcheck, then racecheck."""

    def run(ctx: StageContext) -> dict[str, Any]:
        sanitizer = find_tool("compute-sanitizer")
        if sanitizer is None:
            raise Skip("compute-sanitizer is not on PATH (nor in /usr/local/cuda/bin)")
        code = (
            "from benchmarks.acceptance.subprocesses import CASE_DONE, sanitizer_case; "
            "sanitizer_case(); print(CASE_DONE)"
        )
        details: dict[str, Any] = {"sanitizer": sanitizer}
        for index, tool in enumerate(SANITIZER_TOOLS):
            timeout = max(10.0, ctx.time_left() / (len(SANITIZER_TOOLS) - index))
            command = [sanitizer, "--tool", tool, "--error-exitcode", str(SANITIZER_EXIT)]
            command += [sys.executable, "-c", code]
            result = run_child(command, timeout)
            lines = result.pop("lines")
            result["summary"] = [line for line in lines if "SUMMARY" in line]
            result["case_completed"] = any(CASE_DONE in line for line in lines)
            details[tool] = result
            if result["returncode"] != 0 or not result["case_completed"]:
                ctx.fail(
                    f"{tool}: exit {result['returncode']}, "
                    f"{'; '.join(result['summary']) or 'no summary'}"
                    + ("" if result["case_completed"] else "; the case did not finish")
                )
        ctx.summary = "; ".join(
            f"{tool} {'; '.join(details[tool]['summary']) or details[tool]['returncode']}"
            for tool in SANITIZER_TOOLS
        )
        return details

    return run


def sanitizer_case() -> None:
    """A tiny launch of every kind, for compute-sanitizer (run in the child): a 3-qubit
    estimator's fused forward with shifts, fused adjoint (Jacobian and VJP) and per-op forward,
    in both dtypes."""
    import cupy  # noqa: PLC0415 - only with a GPU

    import gpuqnn  # noqa: PLC0415
    from gpuqnn._cuda.cupy_launchers import FusedLauncher, PerOpLauncher  # noqa: PLC0415
    from gpuqnn._cuda.tables import encode_tables  # noqa: PLC0415
    from gpuqnn._internals import simulator_of  # noqa: PLC0415
    from gpuqnn.examples import zz_real_amplitudes  # noqa: PLC0415

    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    network = gpuqnn.EstimatorQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        device="cpu",
    )
    simulator = simulator_of(network)
    kp = encode_tables(simulator.program, simulator.readout)
    rng = np.random.default_rng(7)
    params = rng.uniform(-np.pi, np.pi, (2, qc.num_parameters))
    base = np.ascontiguousarray(simulator.program.angles.angles(params), dtype=np.float64)
    slots = list(range(kp.num_slots))
    shift_slot = np.array([-1, 0, kp.num_slots - 1], dtype=np.int32)
    shift_value = np.array([0.0, np.pi / 2, -np.pi / 2])
    cotangent = np.ones((2, kp.num_outputs))
    for dtype in ("complex128", "complex64"):
        fused = FusedLauncher(kp, dtype)
        fused.run(base, shift_slot, shift_value)
        fused.adjoint(base, slots)
        fused.adjoint(base, slots, cotangent)
        PerOpLauncher(kp, dtype).run(base, shift_slot, shift_value)
    cupy.cuda.Device().synchronize()

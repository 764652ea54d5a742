"""Stage 1 (environment and limits) and the probes the other stages share: whether a CUDA device
answers, where the repository and the CUDA tools are."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.acceptance.runner import StageContext

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout the script runs from (its ``gpuqnn`` is the one imported)."""

CUDA_HOME_BIN = Path("/usr/local/cuda/bin")
"""Where a CUDA toolkit usually keeps nvcc and compute-sanitizer when they are not on PATH."""


def child_env() -> dict[str, str]:
    """The environment for child Python processes: this checkout first on ``PYTHONPATH``, so
    they import the same ``gpuqnn`` and ``benchmarks`` as the script."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def find_tool(name: str) -> str | None:
    """``name`` on PATH, else in ``/usr/local/cuda/bin``, else None."""
    found = shutil.which(name)
    if found is None and (CUDA_HOME_BIN / name).is_file():
        found = str(CUDA_HOME_BIN / name)
    return found


@functools.cache
def cuda_unavailable(device: str) -> str | None:
    """Why the run has no CUDA device: ``--device cpu``, or CuPy / a device missing; None when
    a CUDA device answers."""
    if device == "cpu":
        return "dry run on the CPU (--device cpu): no GPU"
    from gpuqnn._sim.backend import load_cupy  # noqa: PLC0415 - documented internal API

    cupy, reason = load_cupy(None)
    return None if cupy is not None else f"no CUDA device answers ({reason})"


def run_command(command: list[str], timeout: float = 30.0) -> dict[str, Any]:
    """Return code and output of a short command (or why it could not run)."""
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"returncode": result.returncode, "output": (result.stdout + result.stderr).strip()}


def module_version(name: str) -> str:
    """The version of importable module ``name``, or why it is not importable."""
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return f"not importable ({type(exc).__name__}: {exc})"
    return str(getattr(module, "__version__", "unknown version"))


def distribution_version(name: str) -> str:
    """The installed version of distribution ``name`` (without importing it), or why not."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def first_installed(*names: str) -> str:
    """``name version`` of the first of ``names`` installed, or ``not installed``."""
    for name in names:
        version = distribution_version(name)
        if version != "not installed":
            return f"{name} {version}"
    return "not installed"


def git_state() -> dict[str, Any]:
    """The checkout's commit and whether it has uncommitted changes."""
    head = run_command(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"])
    status = run_command(["git", "-C", str(REPO_ROOT), "status", "--porcelain"])
    if "output" not in head or head.get("returncode"):
        return {"error": head.get("error") or head.get("output")}
    return {"commit": head["output"], "dirty": bool(status.get("output"))}


def cuda_version_text(value: int) -> str:
    """CUDA's integer version (12080) as text (``12.8``)."""
    return f"{value // 1000}.{value % 1000 // 10}"


def cupy_device_facts(cupy: Any) -> dict[str, Any]:
    """Driver and runtime versions, device 0's name, compute capability, SMs, shared memory
    opt-in and memory, each as CuPy reports it (an entry that fails holds its error)."""
    runtime = cupy.cuda.runtime
    probes = {
        "driver_version": lambda: cuda_version_text(runtime.driverGetVersion()),
        "runtime_version": lambda: cuda_version_text(runtime.runtimeGetVersion()),
        "device_count": runtime.getDeviceCount,
        "device_name": lambda: _text(runtime.getDeviceProperties(0)["name"]),
        "compute_capability": lambda: "{major}.{minor}".format(**runtime.getDeviceProperties(0)),
        "sm_count": lambda: runtime.deviceGetAttribute(runtime.cudaDevAttrMultiProcessorCount, 0),
        "shared_memory_per_block_optin": lambda: runtime.deviceGetAttribute(
            runtime.cudaDevAttrMaxSharedMemoryPerBlockOptin, 0
        ),
        "memory_free_total_bytes": lambda: list(runtime.memGetInfo()),
    }
    facts: dict[str, Any] = {}
    for name, probe in probes.items():
        try:
            facts[name] = probe()
        except Exception as exc:  # one missing fact must not hide the others
            facts[name] = f"unavailable ({type(exc).__name__}: {exc})"
    return facts


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvrtc_version() -> str:
    """The NVRTC library's version as CuPy loads it (no device needed), or why not."""
    try:
        from cupy.cuda import nvrtc  # noqa: PLC0415 - optional

        return ".".join(str(v) for v in nvrtc.getVersion())
    except Exception as exc:  # CuPy or the NVRTC library missing
        return f"unavailable ({type(exc).__name__}: {exc})"


def torch_facts() -> dict[str, Any]:
    """torch's version and whether it sees a CUDA device."""
    if importlib.util.find_spec("torch") is None:
        return {"version": "not installed"}
    try:
        import torch  # noqa: PLC0415 - optional
    except Exception as exc:
        return {"version": f"not importable ({type(exc).__name__}: {exc})"}
    facts: dict[str, Any] = {"version": torch.__version__, "cuda": torch.version.cuda}
    facts["cuda_available"] = bool(torch.cuda.is_available())
    if facts["cuda_available"]:
        facts["device_name"] = torch.cuda.get_device_name(0)
    return facts


def tool_facts() -> dict[str, Any]:
    """nvidia-smi's output, and where nvcc, compute-sanitizer and g++ are (with versions)."""
    facts: dict[str, Any] = {}
    smi = find_tool("nvidia-smi")
    facts["nvidia_smi"] = run_command([smi]) if smi else "not found"
    for name, flag in (("nvcc", "--version"), ("compute-sanitizer", "--version"), ("g++", "-v")):
        path = find_tool(name)
        if path is None:
            facts[name] = "not found (not on PATH nor in /usr/local/cuda/bin)"
            continue
        result = run_command([path, flag])
        lines = result.get("output", result.get("error", "")).splitlines()
        release = [line for line in lines if "release" in line] or lines[-1:] or [""]
        facts[name] = {"path": path, "version": release[0].strip()}
    return facts


def environment_stage(device: str):
    """Stage 1: versions, CUDA facts and tools; fails when ``device`` is ``cuda`` and no CUDA
    device answers (every GPU stage would be skipped)."""

    def run(ctx: StageContext) -> dict[str, Any]:
        import gpuqnn  # noqa: PLC0415

        details: dict[str, Any] = {
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "gpuqnn": {"path": str(Path(gpuqnn.__file__).parent), **git_state()},
            "numpy": module_version("numpy"),
            "qiskit": module_version("qiskit"),
            "qiskit_machine_learning": distribution_version("qiskit-machine-learning"),
            "qiskit_aer": first_installed("qiskit-aer", "qiskit-aer-gpu"),
            "pennylane": distribution_version("pennylane"),
            "torch": torch_facts(),
            "cupy": module_version("cupy"),
            "nvrtc": nvrtc_version(),
            "tools": tool_facts(),
        }
        reason = cuda_unavailable("cuda")
        details["cuda_device"] = reason or "answers"
        if reason is None:
            import cupy  # noqa: PLC0415 - it answered above

            details["cuda"] = cupy_device_facts(cupy)
            ctx.summary = (
                f"{details['cuda'].get('device_name')}, driver "
                f"{details['cuda'].get('driver_version')}, CuPy {details['cupy']}"
            )
        elif device == "cuda":
            ctx.fail(f"--device cuda, but {reason}")
        else:
            ctx.summary = f"no GPU: {reason}"
        return details

    return run

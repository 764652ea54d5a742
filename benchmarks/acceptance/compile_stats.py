"""Stage 2: the generated kernels of the GPU workloads (``zz_estimator(n)``: forward, adjoint
Jacobian, adjoint VJP, in both dtypes): source size, threads, shared memory, and the registers
and spills ptxas reports for sm_90 (H100/H200).

Compilers: nvcc (``-cubin -Xptxas -v``) where it is on PATH or in ``/usr/local/cuda/bin``, and
NVRTC through ``gpuqnn._cuda.nvrtc`` (``compile_cubin``; ``kernel_resources`` reads nvcc's
report too) where NVRTC loads; the GPU path compiles with NVRTC at run time, so where both are
at hand both are recorded. Compiles run in parallel, one per core (NVRTC releases the GIL).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.acceptance.environment import find_tool, run_command
from benchmarks.acceptance.plan import Plan
from benchmarks.acceptance.runner import StageContext
from benchmarks.workloads import zz_kernel_tables
from gpuqnn._cuda.nvrtc import compile_cubin, kernel_resources

ARCH = "sm_90"
"""The architecture the statistics are for (H100/H200)."""

DTYPES = ("complex128", "complex64")


@dataclass(frozen=True)
class KernelSource:
    """One generated kernel of a workload (None where it does not fit shared memory)."""

    workload: str
    qubits: int
    dtype: str
    kind: str
    kernel: Any  # gpuqnn._cuda.codegen.GeneratedKernel | None
    seconds: float

    def record(self) -> dict[str, Any]:
        """Its statistics (without the source)."""
        base = {
            "workload": self.workload,
            "qubits": self.qubits,
            "dtype": self.dtype,
            "kernel": self.kind,
            "generate_s": round(self.seconds, 4),
        }
        if self.kernel is None:
            return {**base, "fits": False}
        return {
            **base,
            "fits": True,
            "source_bytes": len(self.kernel.source.encode()),
            "source_lines": self.kernel.source.count("\n"),
            "threads": self.kernel.threads,
            "shared_bytes": self.kernel.shared,
            "passes": self.kernel.passes,
            "keeps_final": self.kernel.keeps_final,
        }


def generate_kernels(qubits: int, dtype: str, shared_limit: int) -> list[KernelSource]:
    """The forward kernel and the adjoint kernels (Jacobian, VJP) of ``zz_estimator(qubits)``."""
    from gpuqnn._cuda.codegen import generate_adjoint, generate_forward  # noqa: PLC0415

    kp, slots = zz_kernel_tables(qubits, dtype)
    makers: dict[str, Callable[[], Any]] = {
        "forward": lambda: generate_forward(kp, dtype),
        "adjoint-jacobian": lambda: generate_adjoint(kp, dtype, slots, False, shared_limit),
        "adjoint-vjp": lambda: generate_adjoint(kp, dtype, slots, True, shared_limit),
    }
    sources = []
    for kind, make in makers.items():
        start = time.perf_counter()
        kernel = make()
        sources.append(
            KernelSource(
                f"zz{qubits}-estimator", qubits, dtype, kind, kernel, time.perf_counter() - start
            )
        )
    return sources


class Nvcc:
    """nvcc ``-cubin -arch=sm_90 -Xptxas -v``."""

    key = "nvcc"

    def __init__(self, path: str) -> None:
        self.path = path
        lines = run_command([path, "--version"]).get("output", "").splitlines()
        release = [line for line in lines if "release" in line] or lines[-1:] or ["?"]
        self.name = f"nvcc ({release[0].strip()})"

    def compile(self, source: str, workdir: Path, timeout: float) -> dict[str, Any]:
        """Resources of ``source``'s kernels, or a ``skipped`` record after ``timeout``.

        Raises:
            RuntimeError: nvcc failed (with its error output).
        """
        from gpuqnn._cuda.source import COMPILE_OPTIONS  # noqa: PLC0415

        fd, name = tempfile.mkstemp(suffix=".cu", dir=workdir)
        with os.fdopen(fd, "w") as handle:
            handle.write(source)
        command = [self.path, "-cubin", f"-arch={ARCH}", *COMPILE_OPTIONS, "-Xptxas", "-v"]
        command += ["-o", f"{name}.cubin", "-x", "cu", name]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"status": "skipped", "reason": f"ran past the stage's time ({timeout:.0f} s)"}
        if result.returncode != 0:
            raise RuntimeError(f"nvcc exited {result.returncode}:\n{result.stderr[-3000:]}")
        resources = kernel_resources(result.stdout + result.stderr)
        return {"status": "ok", "resources": {k: asdict(v) for k, v in resources.items()}}


class Nvrtc:
    """NVRTC through ``gpuqnn._cuda.nvrtc.compile_cubin(source, arch)``."""

    key = "nvrtc"

    def __init__(self, version: str) -> None:
        self.name = f"NVRTC {version} (gpuqnn._cuda.nvrtc)"

    def compile(self, source: str, workdir: Path, timeout: float) -> dict[str, Any]:
        """Resources of ``source``'s kernels (NVRTC cannot be stopped: ``timeout`` unused)."""
        del workdir, timeout
        result = compile_cubin(source, ARCH)
        return {"status": "ok", "resources": {k: asdict(v) for k, v in result.resources.items()}}


def compilers() -> tuple[list[Any], dict[str, str]]:
    """The compilers at hand, and why each missing one is missing."""
    found: list[Any] = []
    missing: dict[str, str] = {}
    nvcc = find_tool("nvcc")
    if nvcc is None:
        missing["nvcc"] = "not on PATH nor in /usr/local/cuda/bin"
    else:
        found.append(Nvcc(nvcc))
    try:
        from cupy.cuda import nvrtc as library  # noqa: PLC0415 - optional

        version = ".".join(str(v) for v in library.getVersion())
    except Exception as exc:  # CuPy or the NVRTC library missing
        missing["nvrtc"] = f"NVRTC does not load ({type(exc).__name__}: {exc})"
    else:
        found.append(Nvrtc(version))
    return found, missing


def compile_stage(plan: Plan, shared_limit: Callable[[], int]):
    """Stage 2: every kernel generated; those of ``plan.compile_kinds`` compiled by every
    compiler at hand."""

    def run(ctx: StageContext) -> dict[str, Any]:
        limit = shared_limit()
        sources = [
            source
            for qubits in plan.compile_qubits
            for dtype in DTYPES
            for source in generate_kernels(qubits, dtype, limit)
        ]
        tools, missing = compilers()
        records = [source.record() for source in sources]
        jobs = []
        for record, source in zip(records, sources, strict=True):
            if source.kernel is None:
                continue
            record["compile"] = {}
            for tool in tools:
                if source.kind in plan.compile_kinds.get(source.qubits, ()):
                    jobs.append((record, source, tool))
                else:
                    record["compile"][tool.key] = {"status": "skipped", "reason": _why_not(plan)}
        _compile_all(jobs, ctx)
        ctx.summary = _summary(records, tools)
        return {
            "arch": ARCH,
            "compilers": {tool.key: tool.name for tool in tools},
            "compilers_missing": missing,
            "shared_limit_bytes": limit,
            "kernels": records,
        }

    return run


def _why_not(plan: Plan) -> str:
    if plan.dry_run:
        return "not compiled in the dry run (nvcc takes 10-30 s per adjoint kernel on 2 cores)"
    return "not compiled with --quick"


def _compile_all(jobs: list[tuple[dict, KernelSource, Any]], ctx: StageContext) -> None:
    """Run the compile jobs, one per core; a job that would start past the stage's deadline
    is skipped, one that fails fails the stage."""
    if not jobs:
        return
    deadline = time.monotonic() + ctx.time_left()
    with tempfile.TemporaryDirectory(prefix="gpuqnn-compile-") as workdir:

        def job(item: tuple[dict, KernelSource, Any]) -> dict[str, Any]:
            _record, source, tool = item
            left = deadline - time.monotonic()
            if left <= 0:
                return {"status": "skipped", "reason": "the stage's time ran out first"}
            start = time.perf_counter()
            try:
                result = tool.compile(source.kernel.source, Path(workdir), left)
            except Exception as exc:
                return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            return {**result, "seconds": round(time.perf_counter() - start, 3)}

        workers = max(1, min(len(jobs), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(job, jobs))
    for (record, source, tool), result in zip(jobs, results, strict=True):
        record["compile"][tool.key] = result
        if result["status"] == "failed":
            ctx.fail(
                f"{tool.key}: {source.workload} {source.kind} {source.dtype}: "
                f"{result['error'][:300]}"
            )


def _spills(resources: dict[str, int]) -> bool:
    return bool(resources.get("spill_stores", 0) or resources.get("spill_loads", 0))


def _summary(records: list[dict], tools: list[Any]) -> str:
    text = f"{len(records)} kernels generated"
    if not tools:
        return text + "; no compiler at hand (no registers or spills)"
    for tool in tools:
        done = [
            r["compile"][tool.key]
            for r in records
            if r.get("compile", {}).get(tool.key, {}).get("status") == "ok"
        ]
        spills = sum(any(map(_spills, c["resources"].values())) for c in done)
        registers = [k["registers"] for c in done for k in c["resources"].values()]
        text += f"; {tool.key}: {len(done)} compiled"
        if registers:
            text += f", {min(registers)}-{max(registers)} registers, {spills} spilling"
    return text

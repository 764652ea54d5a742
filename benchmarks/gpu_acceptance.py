"""The GPU acceptance run: one command on a new CUDA machine checks and times the GPU path end
to end and writes one JSON report. Stages (README, "The GPU acceptance run"): ``environment``,
``precompile`` (``--precompile``, the default on a GPU: every kernel of the run through CuPy's
``RawKernel(...).compile()`` on all cores, into the cache every later stage loads from),
``timings`` (``bench_gpu``'s own functions and tables, the targets, the model: the headline,
early), ``compile`` (statistics), ``kernels`` (against the NumPy engine), ``profile`` (launches
and host array calls per fused backward), ``sanitizer``, ``pytest`` (``pytest -m gpu``, last),
run by :mod:`benchmarks.harness` under ``--budget-s``. ``--device cpu`` is a dry run on the CPU.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    import _as_script  # type: ignore[import-not-found]  # noqa: F401

import argparse
import concurrent.futures
import contextlib
import functools
import importlib
import importlib.util
import io
import itertools
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):  # run as a file: import this checkout's packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks import backward_profile, bench_gpu, gpu_model  # noqa: E402
from benchmarks import internals as gi  # noqa: E402
from benchmarks.cli import main_table_text  # noqa: E402
from benchmarks.harness import Harness, Skip, Stage, StageContext, error_record  # noqa: E402
from benchmarks.report import VERDICTS, Target, ratio_target, seconds_target  # noqa: E402
from benchmarks.workloads import (  # noqa: E402
    GPU_WORKLOADS,
    by_name,
    zz_kernel_slot_sets,
    zz_kernel_tables,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CUDA_HOME_BIN = Path("/usr/local/cuda/bin")
DEFAULT_BUDGET_S = 480.0  # 8 minutes; the stages estimate 490 s with precompile, most finish early
PRECOMPILE_ESTIMATE_S = 60.0
"""The precompile stage's time (its deadline: kernels not started by then compile when first
launched). A MODEL, not a measurement on a GPU: the full run's kernels (37 generated kernels,
5.8 MB of source, the largest 359 kB, plus the per-op module) took NVRTC about 30-80 kB of
source per second on one core of our CPU machine (``benchmarks/nvrtc_passes.py``: 148 kB in
4.3 s, 235 kB in 7.2-9.1 s, 124 kB in 1.6 s; the same NVRTC and options CuPy uses), so about
200 s in all, which 16 cores (the H100 machine's) compile in about 15-25 s, bounded below by the
largest kernel's 12 s. The timing table is then written after environment (10 s) +
precompile (at most 60 s) + timings (150 s, bench_gpu's peers included): about 4 minutes, within
8 on a cold H100 with room for a CPU twice as slow. Without ``--precompile`` the timings stage
compiles its own 9 kernels (1.1 MB, about 35 s on one core) when first launched."""
DTYPES = ("complex128", "complex64")
TOLERANCE = {"complex128": 1e-9, "complex64": 5e-4}
"""Largest absolute error accepted against the complex128 NumPy reference, per kernel dtype."""
MIN_REFERENCE = 1e-3
"""A kernel case whose reference outputs all stay below this checks nothing: it fails."""
ARCH = "sm_90"  # the compile statistics' architecture (H100/H200)
ALL_KERNELS = ("forward", "adjoint-jacobian", "adjoint-vjp")
OUTPUT_TAIL = 40  # lines of a child process's output kept in the report
DRY_RUN_LABEL = (
    "DRY RUN on the CPU: gpuqnn's NumPy engine and CPU peers at tiny batches; these are not GPU "
    "figures and no target is evaluated"
)
MODEL_LABEL = (
    "MODEL, not a measurement: expected GPU times from the generated kernels' shared-memory "
    "traffic and instruction counts (benchmarks/gpu_model.py)"
)
TARGET_PASS = "backward+input_grads"
TARGETS = (("zz8-estimator", 4096, "seconds", 2e-3), ("zz8-estimator", 4096, "qiskit-aer-gpu", 20))
TARGETS += (("zz8-estimator", 4096, "pennylane-backprop", 5),)
TARGETS += (("zz12-estimator", 1024, "seconds", 0.02),)
"""(workload, batch, what, limit) on :data:`TARGET_PASS`: seconds under a limit, or at least a
ratio over a peer."""
NO_SANITIZER = "compute-sanitizer is not on PATH (nor in /usr/local/cuda/bin)"

KernelCases = tuple[tuple[int, str] | tuple[int, str, int], ...]
"""(qubits, readout) or (qubits, readout, seed); readouts as ``tests/programs``'
``make_readout`` names them (``pauli``, ``direct``, ``pieces``)."""


@dataclass(frozen=True)
class Sizes:
    """What one run does: the kernels compiled per qubit count, the kernel cases, samples per
    case, ``bench_gpu``'s command line and each stage's estimated seconds."""

    device: str
    quick: bool
    compile_kinds: dict[int, tuple[str, ...]]
    fused_forward: KernelCases
    fused_adjoint: KernelCases
    per_op: KernelCases
    kernel_samples: int
    timing_args: tuple[str, ...]
    estimates: dict[str, float]

    @property
    def dry_run(self) -> bool:
        """Whether this is the CPU dry run (no GPU figures)."""
        return self.device == "cpu"


TIMED_DTYPE = "complex128"  # bench_gpu's default --dtype
TIMED = ("--workloads", "zz8-estimator", "zz12-estimator", "--peers")
TIMED += ("qiskit-aer-gpu", "pennylane-backprop", "--ref-batch", "64")
CASES: dict[tuple[str, bool], tuple[KernelCases, KernelCases, KernelCases]] = {
    ("cpu", True): (((3, "pauli"),), ((4, "pieces"),), ((6, "direct"),)),
    ("cpu", False): (
        ((1, "pauli"), (3, "direct"), (6, "pieces")),
        ((3, "pauli"), (6, "pieces")),
        ((2, "direct"), (5, "pieces"), (8, "pauli")),
    ),
    ("cuda", True): (
        ((3, "pauli"), (8, "pieces"), (13, "direct")),
        ((4, "pauli"), (10, "pieces")),
        ((6, "direct"), (16, "pieces")),
    ),
    ("cuda", False): (
        ((1, "pauli"), (4, "direct"), (7, "pieces"), (10, "pauli"), (12, "pieces")),
        ((2, "pauli"), (5, "direct"), (8, "pieces"), (11, "pauli"), (13, "pieces", 4)),
        ((3, "direct"), (8, "pieces"), (12, "direct"), (16, "pieces"), (18, "pieces")),
    ),
}
"""(device, quick) -> the fused forward, fused adjoint and per-op kernel cases."""


def sizes_for(device: str, quick: bool) -> Sizes:
    """The sizes of a run on ``device`` (``"cuda"`` or ``"cpu"``)."""
    estimates = dict(environment=10, timings=150, compile=60, kernels=90, profile=60)
    estimates |= dict(sanitizer=60, pytest=60)
    estimates["precompile"] = PRECOMPILE_ESTIMATE_S
    kinds = {8: ALL_KERNELS} if quick else {8: ALL_KERNELS, 12: ALL_KERNELS}
    samples, repeat = (3, "2") if quick else (5, "5")
    timing_args = (*TIMED, "--repeat", repeat)
    if device == "cpu":  # about a minute on two slow cores: the host build runs thread by thread
        kinds, samples = {8: ("forward",)}, 2
        timing_args = (*TIMED, "--device", "cpu", "--quick", "--repeat", "1")
        estimates |= dict(timings=40, compile=15, kernels=30, profile=90, sanitizer=0)
    elif quick:
        estimates |= dict(timings=100, compile=30, kernels=40)
    return Sizes(device, quick, kinds, *CASES[device, quick], samples, timing_args, estimates)


# ---- probes the stages share ---------------------------------------------------------------
def find_tool(name: str) -> str | None:
    """``name`` on PATH, else in ``/usr/local/cuda/bin``, else None."""
    found = shutil.which(name)
    fallback = CUDA_HOME_BIN / name
    return str(fallback) if found is None and fallback.is_file() else found


@functools.cache
def cuda_unavailable(device: str) -> str | None:
    """Why the run has no CUDA device, or None when one answers."""
    if device == "cpu":
        return "dry run on the CPU (--device cpu): no GPU"
    cupy, reason = gi.load_cupy(None)
    return None if cupy is not None else f"no CUDA device answers ({reason})"


def run_child(command: list[str], timeout: float) -> dict[str, Any]:
    """Run ``command`` in the checkout (first on ``PYTHONPATH``): return code (None after a
    timeout), the output's tail and its lines."""
    path = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    try:
        result = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": path},
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        code, raw = result.returncode, result.stdout + result.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        code, raw = None, getattr(exc, "stdout", None) or str(exc).encode()
    lines = raw.decode(errors="replace").strip().splitlines()
    tail = "\n".join(lines[-OUTPUT_TAIL:])
    return {"command": " ".join(command), "returncode": code, "output_tail": tail, "lines": lines}


def probe(function: Callable[[], Any]) -> Any:
    """``function()``, or why it failed (one missing fact must not hide the others)."""
    try:
        return function()
    except Exception as exc:
        return f"unavailable ({type(exc).__name__}: {exc})"


def nvrtc_version() -> str:
    """The NVRTC library's version as CuPy loads it (no device needed)."""
    from cupy.cuda import nvrtc

    return ".".join(str(v) for v in nvrtc.getVersion())


# ---- 1. environment ------------------------------------------------------------------------
def version(name: str) -> str:
    """The installed version of distribution ``name``, or ``not installed``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


_CUPY_DISTRIBUTION = re.compile(r"cupy(-cuda\w+)?")
installed_distributions = metadata.distributions
"""Every installed distribution (tests put a stand-in list here)."""


def cupy_distributions() -> list[str]:
    """The installed CuPy distributions (``cupy``, ``cupy-cuda12x``, ``cupy-cuda13x``, ...) as
    ``name version``, one per name, sorted. More than one is a broken install: every one unpacks
    into the same ``cupy/`` package, so the files of one replace the other's, and CuPy only
    warns."""
    found: dict[str, str] = {}
    for dist in installed_distributions():
        name = re.sub(r"[-_.]+", "-", str(dist.metadata["Name"] or "")).lower()
        if _CUPY_DISTRIBUTION.fullmatch(name):
            found.setdefault(name, f"{name} {dist.version}")
    return sorted(found.values())


def check_one_cupy(ctx: StageContext) -> list[str]:
    """:func:`cupy_distributions`, failing the stage, with what to do, when there are several."""
    cupys = cupy_distributions()
    if len(cupys) > 1:
        ctx.fail(
            f"{len(cupys)} CuPy distributions are installed ({', '.join(cupys)}): they share one "
            "cupy/ package, so which CUDA build loads is undefined. Uninstall all of them "
            "(pip uninstall " + " ".join(c.split()[0] for c in cupys) + ") and install one "
            "CUDA extra, .[cuda12] or .[cuda13] (docs/gpu-machine.md)"
        )
    return cupys


def cuda_facts(cupy: Any) -> dict[str, Any]:
    """Driver and runtime versions and device 0's facts, as CuPy reports them."""
    rt = cupy.cuda.runtime
    attribute = functools.partial(rt.deviceGetAttribute, device=0)

    def props(key: str) -> Any:
        value = rt.getDeviceProperties(0)[key]
        return value.decode() if isinstance(value, bytes) else value

    probes = {
        "driver_version": rt.driverGetVersion,
        "runtime_version": rt.runtimeGetVersion,
        "device_count": rt.getDeviceCount,
        "device_name": lambda: props("name"),
        "compute_capability": lambda: f"{props('major')}.{props('minor')}",
        "sm_count": lambda: attribute(rt.cudaDevAttrMultiProcessorCount),
        "shared_memory_per_block_optin": lambda: attribute(
            rt.cudaDevAttrMaxSharedMemoryPerBlockOptin
        ),
        "memory_free_total_bytes": lambda: list(rt.memGetInfo()),
    }
    facts = {name: probe(function) for name, function in probes.items()}
    for key in ("driver_version", "runtime_version"):  # 12040 -> "12.4"
        if isinstance(facts[key], int):
            facts[key] = f"{facts[key] // 1000}.{facts[key] % 1000 // 10}"
    return facts


def torch_facts() -> dict[str, Any]:
    """torch's version and whether it sees a CUDA device."""
    if importlib.util.find_spec("torch") is None:
        return {"version": "not installed"}
    import torch

    facts = {"version": torch.__version__, "cuda": torch.version.cuda}
    facts["cuda_available"] = bool(torch.cuda.is_available())
    if facts["cuda_available"]:
        facts["device_name"] = torch.cuda.get_device_name(0)
    return facts


def tool_facts() -> dict[str, Any]:
    """nvidia-smi's output, and where nvcc, compute-sanitizer and g++ are (with versions)."""
    smi = find_tool("nvidia-smi")
    facts: dict[str, Any] = {
        "nvidia_smi": run_child([smi], 30)["output_tail"] if smi else "not found"
    }
    for name, flag in (("nvcc", "--version"), ("compute-sanitizer", "--version"), ("g++", "-v")):
        path = find_tool(name)
        if path is None:
            facts[name] = "not found (not on PATH nor in /usr/local/cuda/bin)"
            continue
        lines = run_child([path, flag], 30)["lines"]
        release = [line for line in lines if "release" in line] or lines[-1:] or [""]
        facts[name] = {"path": path, "version": release[0].strip()}
    return facts


def environment_stage(device: str) -> Callable[[StageContext], dict[str, Any]]:
    """Versions, CUDA facts and tools; fails when ``device`` is ``cuda`` and no CUDA device
    answers (every GPU stage would be skipped)."""

    def run(ctx: StageContext) -> dict[str, Any]:
        import gpuqnn

        git = ["git", "-C", str(REPO_ROOT)]
        head = run_child([*git, "rev-parse", "HEAD"], 30)
        packages = ("numpy", "qiskit", "qiskit-machine-learning", "pennylane")
        details: dict[str, Any] = {
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "gpuqnn": {
                "path": str(Path(gpuqnn.__file__).parent),
                "commit": head["output_tail"] if head["returncode"] == 0 else None,
                "dirty": bool(run_child([*git, "status", "--porcelain"], 30)["lines"]),
            },
            **{name: version(name) for name in packages},
            "qiskit_aer": [f"{n} {version(n)}" for n in ("qiskit-aer", "qiskit-aer-gpu")],
            "torch": torch_facts(),
            "cupy": probe(lambda: importlib.import_module("cupy").__version__),
            "cupy_distributions": check_one_cupy(ctx),
            "nvrtc": probe(nvrtc_version),
            "tools": tool_facts(),
        }
        reason = cuda_unavailable("cuda")
        details["cuda_device"] = reason or "answers"
        if reason is None:
            cuda = details["cuda"] = cuda_facts(importlib.import_module("cupy"))
            ctx.summary = f"{cuda['device_name']}, driver {cuda['driver_version']}, "
            ctx.summary += f"CuPy {details['cupy']}"
        elif device == "cuda":
            ctx.fail(f"--device cuda, but {reason}")
        else:
            ctx.summary = f"no GPU: {reason}"
        return details

    return run


# ---- 2. timings ----------------------------------------------------------------------------
def timings_stage(sizes: Sizes) -> Callable[[StageContext], dict[str, Any]]:
    """The GPU benchmark's table through ``bench_gpu``'s own functions, the acceptance targets
    on its rows, and the model. A disagreeing implementation fails the stage."""

    def run(ctx: StageContext) -> dict[str, Any]:
        args = bench_gpu.parse_args(list(sizes.timing_args))
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            rows, variants, peers = bench_gpu.measure(args, by_name(GPU_WORKLOADS, args.workloads))
        headline = variants[0].name
        targets = [
            {"target": t.target, "value": t.measured, "verdict": VERDICTS[t.met]}
            for t in bench_gpu.gpu_targets(rows, headline, args.peers)
            + acceptance_targets(rows, headline)
        ]
        for target in targets if sizes.dry_run else ():
            target.update(verdict="not evaluated", reason="dry run on the CPU")
        if not all(row.agrees for row in rows):
            ctx.fail("an implementation disagreed with the headline (see the MISMATCH lines)")
        met = sum(t["verdict"] == "met" for t in targets)
        ctx.summary = f"{len(rows)} rows; targets met {met}/{len(targets)}"
        if sizes.dry_run:
            ctx.summary = f"DRY RUN (CPU, not GPU figures): {ctx.summary}"
        return {
            "label": DRY_RUN_LABEL if sizes.dry_run else "measured on the GPU",
            "bench_gpu": ["python -m benchmarks.bench_gpu", *sizes.timing_args],
            "lines": output.getvalue().splitlines(),
            "table": main_table_text(rows, variants, peers).splitlines(),
            "rows": [
                {"workload": r.workload, "pass": r.pass_name, "batch": r.batch, "agrees": r.agrees}
                | {name: r.seconds(name) or str(cell) for name, cell in r.cells.items()}
                for r in rows
            ],
            "targets": targets,
            "model": model_part(ctx),
        }

    return run


def acceptance_targets(rows: Sequence[Any], headline: str) -> list[Target]:
    """Each of :data:`TARGETS` on this run's rows."""
    return [
        seconds_target(rows, workload, TARGET_PASS, headline, limit, batch)
        if what == "seconds"
        else ratio_target(rows, workload, TARGET_PASS, headline, [what], limit, batch)
        for workload, batch, what, limit in TARGETS
    ]


def model_part(ctx: StageContext) -> dict[str, Any]:
    """``benchmarks.gpu_model.model_report()`` for both dtypes, labelled a model."""
    try:
        report = {dtype: gpu_model.model_report(dtype) for dtype in DTYPES}
        return {"status": "ok", "label": MODEL_LABEL, "report": report}
    except Exception as exc:
        ctx.fail(f"gpu_model.model_report() raised {type(exc).__name__}: {exc}")
        return {"status": "failed", "label": MODEL_LABEL, "error": error_record(exc)}


# ---- precompile (before the timings, with --precompile) ------------------------------------
def needed_kernels(sizes: Sizes, limit: int) -> list[tuple[str, Any]]:
    """(label, generated kernel) of every kernel the timings and the kernel cases launch, once
    each (by source): the ZZ workloads' forward chains and adjoint chains (with and without
    input gradients, complex128 as ``bench_gpu`` runs them), then each fused kernel case's."""
    found: dict[str, tuple[str, Any]] = {}

    def add(label: str, chain: Any) -> None:
        for kernel in chain or ():
            part = "" if kernel.span is None else f" passes {kernel.span[0]}-{kernel.span[1]}"
            found.setdefault(kernel.key, (f"{label} {kernel.name}{part}", kernel))

    for qubits in (8, 12):
        kp, slot_sets = zz_kernel_slot_sets(qubits, TIMED_DTYPE)
        add(f"zz{qubits} {TIMED_DTYPE} forward", gi.forward_chain(kp, TIMED_DTYPE))
        # the networks' kernels: angles and chain rule from the parameter rows (the base-angle
        # ones above serve parameter shift)
        code = gi.angle_code(kp.program.angles)
        total = kp.program.angles.num_parameters
        columns = {"inputs+weights": range(total), "weights": range(qubits, total)}
        add(f"zz{qubits} {TIMED_DTYPE} forward", (gi.generate_forward(kp, TIMED_DTYPE, code=code),))
        for name, slots in slot_sets.items():
            chain = gi.adjoint_chain(kp, TIMED_DTYPE, slots, False, limit)
            add(f"zz{qubits} {TIMED_DTYPE} adjoint ({name})", chain)
            for vjp in (False, True):
                kernel = gi.generate_adjoint(
                    kp, TIMED_DTYPE, slots, vjp, limit, code=code, columns=columns[name]
                )
                add(f"zz{qubits} {TIMED_DTYPE} {'vjp' if vjp else 'adjoint'} ({name})", (kernel,))
    helpers = kernel_test_helpers()
    for case in kernel_cases(sizes):
        if case["path"] == "per-op-forward":
            continue
        qubits, seed, dtype = case["qubits"], case["seed"], case["dtype"]
        program = helpers.random_program(seed, qubits, max(24, 3 * qubits))
        kp = gi.encode_tables(program, helpers.make_readout(case["readout"], qubits, seed, dtype))
        if not kp.fits_fused(dtype, limit):
            continue
        label = f"case {case['path']} {qubits} {case['readout']} {dtype}"
        if case["path"] == "fused-forward":
            add(label, gi.forward_chain(kp, dtype))
        else:
            slots = list(range(program.angles.num_slots))
            add(label, gi.adjoint_chain(kp, dtype, slots, case["path"].endswith("vjp"), limit))
    return list(found.values())


def precompile_stage(sizes: Sizes) -> Callable[[StageContext], dict[str, Any]]:
    """Compile every kernel of :func:`needed_kernels` and the per-op module through CuPy's own
    ``RawKernel(...).compile()`` / ``RawModule(...).compile()``, on as many threads as there
    are cores (NVRTC releases the GIL), so that the later stages load them from CuPy's disk
    cache instead of compiling one after the other. Kernels that would start past the stage's
    time are left to compile when first launched."""

    def run(ctx: StageContext) -> dict[str, Any]:
        import cupy

        device, limit = int(cupy.cuda.Device().id), shared_limit(sizes)
        kernels = needed_kernels(sizes, limit)
        workers = max(1, os.cpu_count() or 1)

        def build(item: tuple[str, Any]) -> dict[str, Any]:
            label, kernel = item
            record: dict[str, Any] = {"kernel": label, "passes": kernel.passes}
            if ctx.time_left() <= 0:
                return {**record, "status": "not compiled: the stage's time ran out"}
            start = time.perf_counter()
            try:
                with cupy.cuda.Device(device):
                    cupy.RawKernel(kernel.source, kernel.name, options=gi.COMPILE_OPTIONS).compile()
            except Exception as exc:
                record.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            else:
                record["status"] = "ok"
            record["seconds"] = round(time.perf_counter() - start, 3)
            return record

        start = time.perf_counter()
        module = cupy.RawModule(code=gi.kernel_source(), options=gi.COMPILE_OPTIONS)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            per_op = pool.submit(module.compile)
            records = list(pool.map(build, kernels))
            per_op.result()
        wall = time.perf_counter() - start
        for record in records:
            if record["status"] == "failed":
                ctx.fail(f"{record['kernel']}: {record['error'][:300]}")
        done = [r for r in records if r["status"] == "ok"]
        nvrtc_s = sum(r["seconds"] for r in done)
        ctx.summary = f"{len(done)}/{len(records)} kernels and the per-op module in {wall:.0f} s"
        ctx.summary += f" on {workers} threads ({nvrtc_s:.0f} s of compiling)"
        return {
            "how": "cupy.RawKernel(source, name, options).compile() per kernel, "
            "RawModule(statevector.cuh).compile(), in a thread pool; CuPy's disk cache "
            "($CUPY_CACHE_DIR) serves the later stages",
            "threads": workers,
            "wall_s": round(wall, 3),
            "compile_s": round(nvrtc_s, 3),
            "kernels": records,
        }

    return run


# ---- 3. compile ----------------------------------------------------------------------------
def compile_stage(sizes: Sizes) -> Callable[[StageContext], dict[str, Any]]:
    """Every kernel of the 8- and 12-qubit workloads generated (a chain of kernels above the cap
    on passes per kernel); those of ``sizes.compile_kinds`` compiled: on a GPU through CuPy's
    ``RawKernel(...).compile()`` (its cache: what ``--precompile`` or the timings built loads)
    with registers and local memory from the kernel's attributes; without one, with NVRTC for
    sm_90 and ptxas's report."""

    def run(ctx: StageContext) -> dict[str, Any]:
        limit, nvrtc = shared_limit(sizes), probe(nvrtc_version)
        on_gpu = not sizes.dry_run and cuda_unavailable(sizes.device) is None
        records, compiled = [], []
        for qubits, dtype, kind in itertools.product((8, 12), DTYPES, ALL_KERNELS):
            kp, slots = zz_kernel_tables(qubits, dtype)
            start = time.perf_counter()
            # the kernels the networks run: angles and chain rule from the parameter rows
            code = gi.angle_code(kp.program.angles)
            columns = range(kp.program.angles.num_parameters)
            chain = (
                (gi.generate_forward(kp, dtype, code=code),)
                if kind == "forward"
                else (
                    gi.generate_adjoint(
                        kp, dtype, slots, kind == "adjoint-vjp", limit, code=code, columns=columns
                    ),
                )
            )
            record = {"workload": f"zz{qubits}-estimator", "dtype": dtype, "kernel": kind}
            record.update(generate_s=time.perf_counter() - start, fits=chain is not None)
            records.append(record)
            if chain is None:
                continue
            record.update(parts=len(chain), passes=chain[0].passes, threads=chain[0].threads)
            record.update(source_bytes=sum(len(k.source.encode()) for k in chain))
            record.update(shared_bytes=max(k.shared for k in chain))
            record.update(source_lines=sum(k.source.count("\n") for k in chain))
            record.update(keeps_final=any(k.keeps_final for k in chain))
            if kind not in sizes.compile_kinds.get(qubits, ()):
                record["nvrtc"] = "not compiled in this run's sizes"
            elif nvrtc.startswith("unavailable"):
                record["nvrtc"] = f"NVRTC does not load: {nvrtc}"
            elif ctx.time_left() <= 0:
                record["nvrtc"] = "the stage's time ran out first"
            else:
                measure = cupy_resources if on_gpu else nvrtc_resources
                record["nvrtc"] = measure(chain, ctx, record)
                compiled += list(record["nvrtc"].get("resources", {}).values())
        registers = [k["registers"] for k in compiled]
        spills = sum(
            bool(k.get("spill_stores") or k.get("spill_loads") or k.get("local_bytes"))
            for k in compiled
        )
        ctx.summary = f"{len(records)} kernels generated, {len(compiled)} compiled"
        ctx.summary += " (CuPy RawKernel)" if on_gpu else " (NVRTC, sm_90)"
        if registers:
            ctx.summary += f", {min(registers)}-{max(registers)} registers, {spills} spilling"
        return {
            "arch": "the device's" if on_gpu else ARCH,
            "compiled_by": "cupy.RawKernel(...).compile()" if on_gpu else "NVRTC (compile_cubin)",
            "nvrtc": nvrtc,
            "options": list(gi.runtime_options(ARCH)),
            "shared_limit_bytes": limit,
            "kernels": records,
        }

    return run


def _part_name(kernel: Any) -> str:
    """A kernel's name, with its passes where it is a part of a chain."""
    if kernel.span is None:
        return str(kernel.name)
    return f"{kernel.name}[{kernel.span[0]}:{kernel.span[1]}]"


def nvrtc_resources(chain: Sequence[Any], ctx: StageContext, record: dict) -> dict:
    """Registers and spills of a chain's kernels, compiled with NVRTC with the options CuPy
    builds them with at run time (``RUNTIME_OPTIONS``; a failed compile fails the stage)."""
    start, resources = time.perf_counter(), {}
    for kernel in chain:
        try:
            result = gi.compile_cubin(kernel.source, ARCH, gi.RUNTIME_OPTIONS)
        except Exception as exc:
            what = f"{record['workload']} {record['kernel']} {record['dtype']}"
            ctx.fail(f"NVRTC: {what}: {exc}"[:400])
            return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        for name, found in result.resources.items():
            resources[_part_name(kernel) if name == kernel.name else name] = asdict(found)
    return {
        "status": "ok",
        "seconds": round(time.perf_counter() - start, 3),
        "resources": resources,
    }


def cupy_resources(chain: Sequence[Any], ctx: StageContext, record: dict) -> dict:
    """Registers, local memory (spills live there) and static shared memory of a chain's
    kernels, compiled through CuPy's ``RawKernel(...).compile()`` (its disk cache)."""
    import cupy

    start, resources = time.perf_counter(), {}
    for kernel in chain:
        try:
            function = cupy.RawKernel(kernel.source, kernel.name, options=gi.COMPILE_OPTIONS)
            function.compile()
            attributes = function.attributes
        except Exception as exc:
            what = f"{record['workload']} {record['kernel']} {record['dtype']}"
            ctx.fail(f"CuPy RawKernel: {what}: {exc}"[:400])
            return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        resources[_part_name(kernel)] = {
            "registers": int(attributes["num_regs"]),
            "local_bytes": int(attributes["local_size_bytes"]),
            "shared_static": int(attributes["shared_size_bytes"]),
        }
    return {
        "status": "ok",
        "seconds": round(time.perf_counter() - start, 3),
        "resources": resources,
    }


def shared_limit(sizes: Sizes) -> int:
    """The device's opt-in shared memory per block, or without one the H100/H200's."""
    if sizes.dry_run or cuda_unavailable(sizes.device) is not None:
        return gi.DEFAULT_SHARED_LIMIT
    return gi.shared_memory_limit()


# ---- 4. kernels ----------------------------------------------------------------------------
def kernel_test_helpers() -> ModuleType:
    """``tests/programs.py`` as a module: the kernel tests' random programs, readouts, shifts
    and NumPy references, so that the run checks the op shapes they do."""
    path = REPO_ROOT / "tests" / "programs.py"
    spec = importlib.util.spec_from_file_location("_gpuqnn_acceptance_kernel_cases", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the kernel stage uses its random programs")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Launchers:
    """The fused and per-op kernel launchers of one run: CuPy's, or the host build's."""

    name: str
    shared_limit: int
    fused: Callable[[Any, str], Any]
    per_op: Callable[[Any, str], Any]
    to_host: Callable[[Any], np.ndarray]


def launchers(sizes: Sizes, directory: str) -> Launchers:
    """The host build of the kernels (g++ ``-DGPUQNN_HOST``) in the dry run, else CuPy's."""
    if sizes.dry_run:
        host, limit = gi.HostKernels(directory), gi.DEFAULT_SHARED_LIMIT
        return Launchers(
            "host build of the kernels (g++ -DGPUQNN_HOST): HostFusedLauncher, HostPerOpLauncher, "
            f"shared memory limit {limit} bytes (H100/H200)",
            limit,
            lambda kp, dtype: gi.HostFusedLauncher(host, kp, dtype, shared_limit=limit),
            lambda kp, dtype: gi.HostPerOpLauncher(host, kp, dtype),
            np.asarray,
        )
    import cupy

    module, limit = gi.KernelModule(), gi.shared_memory_limit()

    def to_host(array: Any) -> np.ndarray:
        cupy.cuda.Device().synchronize()
        return cupy.asnumpy(array)

    return Launchers(
        f"CuPy FusedLauncher and PerOpLauncher on cuda:{cupy.cuda.Device().id}, shared memory "
        f"limit {limit} bytes",
        limit,
        lambda kp, dtype: gi.FusedLauncher(kp, dtype, shared_limit=limit),
        lambda kp, dtype: gi.PerOpLauncher(kp, dtype, module=module),
        to_host,
    )


def kernel_case(h: ModuleType, run: Launchers, case: dict[str, Any]) -> dict[str, Any]:
    """One case (``path``, ``qubits``, ``readout``, ``dtype``, ``samples``, ``seed``) against
    the complex128 NumPy engine: max abs error, or why it does not apply."""
    path, seed, dtype, qubits = case["path"], case["seed"], case["dtype"], case["qubits"]
    program = h.random_program(seed, qubits, max(24, 3 * qubits))
    reference = h.make_readout(case["readout"], qubits, seed, "complex128")
    kp = gi.encode_tables(program, h.make_readout(case["readout"], qubits, seed, dtype))
    rng = np.random.default_rng(seed)
    base = rng.uniform(-np.pi, np.pi, (case["samples"], program.angles.num_slots))
    if path != "per-op-forward" and not kp.fits_fused(dtype, run.shared_limit):
        need = kp.fused_shared_bytes(dtype)
        why = f"a row needs {need} bytes of shared memory, more than the limit {run.shared_limit}"
        return {"status": "n/a", "reason": why}
    if path.endswith("forward"):
        shift_slot, shift_value = h.random_shifts(rng, base.shape[1], 4)
        launcher = (run.fused if path == "fused-forward" else run.per_op)(kp, dtype)
        got = run.to_host(launcher.run(base, shift_slot, shift_value))
        expected = h.engine_outputs(program, reference, "complex128", base, shift_slot, shift_value)
        return compare(got, expected, dtype)
    slots, vjp = list(range(base.shape[1])), path.endswith("vjp")
    launcher = run.fused(kp, dtype)
    if launcher.adjoint_kernel(slots, vjp) is None:
        why = "a row's state and adjoint state do not fit the shared memory limit"
        return {"status": "n/a", "reason": why}
    cotangent = rng.uniform(0.5, 1.5, (case["samples"], kp.num_outputs)) if vjp else None
    got = run.to_host(launcher.adjoint(base, slots, cotangent))
    circuit = gi.BlockCircuit(program, reference.backend)
    expected = gi.adjoint_gradients(circuit, reference, base, slots, False, cotangent=cotangent)
    return compare(got, np.asarray(expected), dtype)


def compare(got: np.ndarray, expected: np.ndarray, dtype: str) -> dict[str, Any]:
    """``passed`` within :data:`TOLERANCE`, else ``FAILED``; also when the reference is too
    small to check anything."""
    if got.shape != expected.shape:
        return {"status": "FAILED", "reason": f"shape {got.shape}, expected {expected.shape}"}
    finite = np.isfinite(got).all()
    error = float(np.max(np.abs(got - expected), initial=0.0)) if finite else float("inf")
    scale = float(np.max(np.abs(expected), initial=0.0))
    record = {
        "status": "passed" if error <= TOLERANCE[dtype] else "FAILED",
        "max_abs_error": error,
        "tolerance": TOLERANCE[dtype],
        "reference_max_abs": scale,
    }
    if scale < MIN_REFERENCE:
        record.update(
            status="FAILED",
            reason=f"the reference's largest value is {scale:.1e}: "
            "the comparison checks nothing (choose another case)",
        )
    return record


def kernel_cases(sizes: Sizes) -> list[dict[str, Any]]:
    """Every case of ``sizes``, smallest programs first (cut first when time runs out)."""
    groups = [
        ("fused-forward", sizes.fused_forward),
        ("fused-adjoint-jacobian", sizes.fused_adjoint),
    ]
    groups += [("fused-adjoint-vjp", sizes.fused_adjoint), ("per-op-forward", sizes.per_op)]
    cases = [
        {
            "path": path,
            "qubits": entry[0],
            "readout": entry[1],
            "dtype": dtype,
            "samples": sizes.kernel_samples,
            "seed": entry[2]
            if len(entry) > 2
            else 1000 + 17 * entry[0] + ("pauli", "direct", "pieces").index(entry[1]),
        }
        for path, entries in groups
        for entry in entries
        for dtype in DTYPES
    ]
    return sorted(cases, key=lambda c: c["qubits"])


def kernel_stage(sizes: Sizes) -> Callable[[StageContext], dict[str, Any]]:
    """Every kernel case through its launcher, against NumPy; cases that would start past the
    stage's time are listed as ``not run``."""

    def run(ctx: StageContext) -> dict[str, Any]:
        helpers, records = kernel_test_helpers(), []
        with tempfile.TemporaryDirectory(prefix="gpuqnn-host-kernels-") as directory:
            run_with = launchers(sizes, directory)
            for case in kernel_cases(sizes):
                record, start = dict(case), time.perf_counter()
                if ctx.time_left() <= 0:
                    records.append(
                        {**record, "status": "not run", "reason": "the stage's time ran out"}
                    )
                    continue
                try:
                    record.update(kernel_case(helpers, run_with, case))
                except Exception as exc:  # one broken case must not hide the others
                    record.update(status="error", error=f"{type(exc).__name__}: {str(exc)[-4000:]}")
                record["seconds"] = round(time.perf_counter() - start, 3)
                if record["status"] in ("FAILED", "error"):
                    why = record.get("error") or record.get("reason") or record["max_abs_error"]
                    label = " ".join(str(case[k]) for k in ("path", "qubits", "readout", "dtype"))
                    ctx.fail(f"{label}: {str(why)[-300:]}")
                records.append(record)
        worst: dict[str, float] = {}
        for r in records:
            if "max_abs_error" in r:
                worst[r["dtype"]] = max(worst.get(r["dtype"], 0.0), r["max_abs_error"])
        statuses = ("passed", "FAILED", "error", "n/a", "not run")
        counts = {s: sum(r["status"] == s for r in records) for s in statuses}
        ctx.summary = ", ".join(f"{v} {k}" for k, v in counts.items()) + "; worst "
        ctx.summary += ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
        return {
            "runners": run_with.name,
            "reference": "NumPy engine in complex128: BlockCircuit.evolve and the readout for "
            "outputs, adjoint_gradients for derivatives",
            "tolerance": TOLERANCE,
            "max_abs_error": worst,
            "counts": counts,
            "cases": records,
        }

    return run


# ---- 5. profile -------------------------------------------------------------------------------
PROFILE_BATCH = {"cpu": 2, "cuda": 64}
"""Samples of a profiled backward (the counts do not depend on it: one chunk)."""


def profile_stage(
    sizes: Sizes, qubits: Sequence[int] = backward_profile.QUBITS
) -> Callable[[StageContext], dict[str, Any]]:
    """``launches_per_backward`` and ``host_ops_per_backward`` of every fused backward (the zz
    estimators of ``qubits``, 8 and 12, with input gradients) under ``gpuqnn.profile()``, on
    the GPU or on the kernels' host build in the dry run; more than 2 launches or 16 host array
    calls, a runner other than the fused kernels or a wrong derivative fails the stage."""

    def run(ctx: StageContext) -> dict[str, Any]:
        dtypes = ("complex128",) if sizes.dry_run else DTYPES
        batch = PROFILE_BATCH[sizes.device]
        records = backward_profile.profile_all(sizes.device, dtypes, batch, qubits)
        for record in records:
            if "error" in record:
                ctx.fail(f"{record['workload']} {record['dtype']}: {record['error'][-300:]}")
            else:
                for failure in backward_profile.failures(record):
                    ctx.fail(failure)
        counted = [r for r in records if "error" not in r]
        ctx.summary = "; ".join(
            f"{r['workload']} {r['dtype']}: {r['launches_per_backward']} launches, "
            f"{r['host_ops_per_backward']} host array calls"
            for r in counted
        )
        return {
            "label": "counted by gpuqnn.profile() on "
            + ("the kernels' host build (dry run)" if sizes.dry_run else "the GPU"),
            "targets": {
                "launches_per_backward": backward_profile.MAX_LAUNCHES,
                "host_ops_per_backward": backward_profile.MAX_HOST_OPS,
            },
            "cases": records,
        }

    return run


# ---- 6. sanitizer and 7. pytest: child processes -------------------------------------------
CASE_DONE = "gpuqnn sanitizer case done"
SANITIZER_TOOLS = ("memcheck", "racecheck")


def sanitizer_stage(ctx: StageContext) -> dict[str, Any]:
    """:func:`sanitizer_case` in a child under compute-sanitizer's memcheck, then racecheck."""
    sanitizer = find_tool("compute-sanitizer")
    if sanitizer is None:
        raise Skip(NO_SANITIZER)
    code = "from benchmarks.gpu_acceptance import CASE_DONE, sanitizer_case as case; "
    code += "case(); print(CASE_DONE)"
    details: dict[str, Any] = {"sanitizer": sanitizer}
    for index, tool in enumerate(SANITIZER_TOOLS):
        timeout = max(10.0, ctx.time_left() / (len(SANITIZER_TOOLS) - index))
        command = [sanitizer, "--tool", tool, "--error-exitcode", "86", sys.executable, "-c", code]
        result = run_child(command, timeout)
        lines = result.pop("lines")
        result.update(
            summary=[x for x in lines if "SUMMARY" in x], case_completed=CASE_DONE in lines
        )
        details[tool] = result
        if result["returncode"] != 0 or not result["case_completed"]:
            found = "; ".join(result["summary"]) or "no summary"
            done = "" if result["case_completed"] else "; the case did not finish"
            ctx.fail(f"{tool}: exit {result['returncode']}, {found}{done}")
    ctx.summary = "; ".join(
        f"{t} {'; '.join(details[t]['summary']) or details[t]['returncode']}"
        for t in SANITIZER_TOOLS
    )
    return details


def sanitizer_case() -> None:
    """A tiny launch of every kind, for compute-sanitizer (run in the child): a 3-qubit
    ZZ estimator's fused forward with shifts, fused adjoint (Jacobian, VJP), the same from
    parameter rows, the per-op forward and angle kernel, in both dtypes."""
    import cupy

    kp, _ = zz_kernel_tables(3)
    base = np.random.default_rng(7).uniform(-np.pi, np.pi, (2, kp.num_slots))
    slots = list(range(kp.num_slots))
    shift_slot = np.array([-1, 0, kp.num_slots - 1], dtype=np.int32)
    shift_value = np.array([0.0, np.pi / 2, -np.pi / 2])
    parameters = kp.program.angles.num_parameters
    inputs = np.random.default_rng(8).uniform(0, np.pi, (2, 3))
    weights = np.linspace(-1, 1, parameters - 3)
    columns = list(range(parameters))
    for dtype in DTYPES:
        fused = gi.FusedLauncher(kp, dtype)
        fused.run(base, shift_slot, shift_value)
        fused.adjoint(base, slots)
        fused.adjoint(base, slots, np.ones((2, kp.num_outputs)))
        # the kernels networks run: angles and chain rule from the parameter rows
        fused.forward_parameters(inputs, weights)
        fused.adjoint_parameters(inputs, weights, slots, columns)
        fused.adjoint_parameters(inputs, weights, slots, columns, np.ones((2, kp.num_outputs)))
        per_op = gi.PerOpLauncher(kp, dtype)
        per_op.run(base, shift_slot, shift_value)
        per_op.parameter_angles(inputs, weights)
    cupy.cuda.Device().synchronize()


_PYTEST_SUMMARY = re.compile(r"\b\d+ (passed|failed|skipped|errors?|deselected|xfailed)\b")


def pytest_summary(lines: list[str]) -> str:
    """pytest's final summary line (``3 passed, 1 skipped in 9.1s``), or ``""``."""
    for line in reversed(lines):
        if _PYTEST_SUMMARY.search(line) or "no tests ran" in line:
            return line.strip("= ").strip()
    return ""


def pytest_stage(ctx: StageContext) -> dict[str, Any]:
    """``pytest -m gpu -q`` in a child process, for the time the stage has."""
    timeout = max(10.0, ctx.time_left())
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    result = run_child(command, timeout)
    summary = result["summary"] = pytest_summary(result.pop("lines"))
    ctx.summary = summary or "no summary line"
    if result["returncode"] is None:
        ctx.fail(f"timed out after {timeout:.0f} s (the stage's share of --budget-s)")
    elif result["returncode"] != 0:
        ctx.fail(f"pytest exited {result['returncode']}: {summary}")
    elif " passed" not in f" {summary}":
        ctx.fail(f"no gpu test passed ({summary}): does conftest see the device?")
    return result


# ---- the run -------------------------------------------------------------------------------
TITLES = {
    "environment": "versions, CUDA driver and device, tools",
    "precompile": "every kernel of the later stages through CuPy's RawKernel.compile(), threaded",
    "timings": "bench_gpu's table on the 8- and 12-qubit workloads, targets, model",
    "compile": "generated kernels of the 8- and 12-qubit workloads: size, shared memory, registers",
    "kernels": "fused forward, fused adjoint and per-op kernels against NumPy",
    "profile": "launches and host array calls per fused backward (zz8, zz12)",
    "sanitizer": "compute-sanitizer memcheck and racecheck on a 3-qubit launch",
    "pytest": "pytest -m gpu -q",
}


def stages(sizes: Sizes, precompile: bool = False, skip: Sequence[str] = ()) -> list[Stage]:
    """The stages of a run of ``sizes``, in order: the headline (timings) right after the
    environment (and with ``precompile`` the threaded compile of every kernel the run launches),
    ``pytest -m gpu`` last; those in ``skip`` are skipped."""

    def no_cuda() -> str | None:
        return cuda_unavailable(sizes.device)

    def needs_gpu() -> str | None:
        return None if sizes.dry_run else no_cuda()

    def no_sanitizer() -> str | None:
        return no_cuda() or (None if find_tool("compute-sanitizer") else NO_SANITIZER)

    runs: dict[str, tuple[Callable[[StageContext], dict[str, Any]], Any]] = {
        "environment": (environment_stage(sizes.device), None),
    }
    if precompile:
        runs["precompile"] = (precompile_stage(sizes), no_cuda)
    runs |= {
        "timings": (timings_stage(sizes), needs_gpu),
        "compile": (compile_stage(sizes), None),
        "kernels": (kernel_stage(sizes), needs_gpu),
        "profile": (profile_stage(sizes), needs_gpu),
        "sanitizer": (sanitizer_stage, no_sanitizer),
        "pytest": (pytest_stage, no_cuda),
    }
    for name in skip:
        runs[name] = (runs[name][0], lambda: "skipped with --skip")
    return [Stage(n, TITLES[n], run, sizes.estimates[n], check) for n, (run, check) in runs.items()]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stages, write the report; 0, or 1 when a stage failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", choices=["cuda", "cpu"], default="cuda", help="cpu: a dry run without a GPU"
    )
    parser.add_argument("--out", type=Path, default=Path("gpu_acceptance.json"), help="the report")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=DEFAULT_BUDGET_S,
        help=f"seconds until the deadline; later stages are skipped (default {DEFAULT_BUDGET_S:g})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer kernel cases and compiles, fewer repeats"
    )
    parser.add_argument(
        "--precompile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compile every kernel of the run first, on all cores, into CuPy's cache "
        "(default: on with --device cuda; a dry run has no device to compile for)",
    )
    parser.add_argument(
        "--skip", action="append", default=[], choices=sorted(TITLES), help="skip this stage"
    )
    args = parser.parse_args(argv)
    if args.budget_s <= 0:
        parser.error("--budget-s must be positive")
    sizes = sizes_for(args.device, args.quick)
    precompile = args.device == "cuda" if args.precompile is None else args.precompile
    meta = {"script": "benchmarks/gpu_acceptance.py", "device": args.device, "quick": args.quick}
    meta |= {"dry_run": sizes.dry_run, "precompile": precompile}
    if sizes.dry_run:
        meta["label"] = DRY_RUN_LABEL
        print(DRY_RUN_LABEL)
    harness = Harness(
        stages(sizes, precompile, args.skip), args.out, args.budget_s, meta, echo=print
    )
    report = harness.run()
    counts = report["summary"]
    print(
        f"report: {args.out} ({report['elapsed_s']:.0f} s): {counts['ok']} ok, "
        f"{counts['failed']} failed, {counts['skipped']} skipped"
    )
    return harness.exit_status


if __name__ == "__main__":
    sys.exit(main())

"""The GPU acceptance run: one script, run once on a CUDA machine, that checks and measures the
GPU path end to end and writes everything to one JSON report.

Stages, in order (``benchmarks/acceptance/``), each recorded as ``ok``, ``failed`` (with the
error, or the checks that failed) or ``skipped`` (with why), with its seconds and details; the
report is rewritten as each stage starts and ends:

1. ``environment``: Python, NumPy, qiskit, torch and CuPy versions, CUDA driver and runtime,
   the device (name, SMs, shared memory opt-in, free memory), NVRTC, nvidia-smi,
   compute-sanitizer.
2. ``compile``: the 8- and 12-qubit workloads' generated forward and adjoint (Jacobian, VJP)
   kernels in both dtypes: source size, threads, shared memory, registers and spills (nvcc
   ``-Xptxas -v`` for sm_90, else NVRTC through ``gpuqnn._cuda.nvrtc`` where it exists).
3. ``kernels``: the fused forward, fused adjoint (Jacobian, VJP) and per-op kernels on random
   programs (to 14 and 18 qubits), both dtypes, against the NumPy engine (max abs error at
   most 1e-9 in complex128, 5e-4 in complex64).
4. ``networks``: EstimatorQNN and SamplerQNN on the GPU against qiskit-machine-learning's, and
   the TorchConnector with CUDA tensors against the CPU network.
5. ``pytest``: ``pytest -m gpu -q``.
6. ``timings``: the 8-qubit workload at batch 4096 and the 12-qubit one at 1024, forward and
   backward, with qiskit-aer-gpu and PennyLane + torch on the same GPU where installed, and the
   targets; plus ``benchmarks/gpu_model.py``'s model, labelled a model.
7. ``sanitizer``: compute-sanitizer memcheck and racecheck on a 3-qubit launch of each kernel.

A global deadline (``--budget-s``) bounds the run: a stage that would start after it, or whose
estimate does not fit the time left, is skipped; each stage keeps time for the ones after it.
Exit status 1 when a stage failed. ``--device cpu`` is a dry run on the CPU (the kernels' host
build, the NumPy engine, tiny sizes): it checks the script and the kernels' logic, not the GPU.

Usage::

    python -m benchmarks.gpu_acceptance --out report.json          # on the GPU machine
    python benchmarks/gpu_acceptance.py --out report.json           # the same
    python -m benchmarks.gpu_acceptance --device cpu --out dry.json # dry run, about a minute
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout's packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.acceptance.compile_stats import compile_stage  # noqa: E402
from benchmarks.acceptance.environment import (  # noqa: E402
    cuda_unavailable,
    environment_stage,
)
from benchmarks.acceptance.kernels import kernel_stage  # noqa: E402
from benchmarks.acceptance.networks import networks_stage  # noqa: E402
from benchmarks.acceptance.plan import Plan, make_view  # noqa: E402
from benchmarks.acceptance.runner import Stage, StageRunner  # noqa: E402
from benchmarks.acceptance.subprocesses import (  # noqa: E402
    pytest_stage,
    sanitizer_reason,
    sanitizer_stage,
)
from benchmarks.acceptance.timings import DRY_RUN_LABEL, timings_stage  # noqa: E402

DEFAULT_BUDGET_S = 450.0


def shared_limit(plan: Plan) -> int:
    """The shared memory per block the kernels are generated for: the device's opt-in limit,
    or in the dry run the H100/H200's (227 KiB)."""
    from gpuqnn._cuda.tables import DEFAULT_SHARED_LIMIT  # noqa: PLC0415

    if plan.dry_run or cuda_unavailable(plan.device) is not None:
        return DEFAULT_SHARED_LIMIT
    from gpuqnn._cuda.cupy_launchers import shared_memory_limit  # noqa: PLC0415

    return shared_memory_limit()


def stages(plan: Plan) -> list[Stage]:
    """The seven stages of ``plan``, in order."""

    def needs_gpu() -> str | None:
        return cuda_unavailable(plan.device)

    estimate = plan.estimates
    return [
        Stage(
            "environment",
            "versions, CUDA driver and device, tools",
            environment_stage(plan.device),
            estimate["environment"],
        ),
        Stage(
            "compile",
            "generated kernels of the 8- and 12-qubit workloads: size, shared memory, registers",
            compile_stage(plan, lambda: shared_limit(plan)),
            estimate["compile"],
        ),
        Stage(
            "kernels",
            "fused forward, fused adjoint and per-op kernels against NumPy",
            kernel_stage(plan),
            estimate["kernels"],
            None if plan.dry_run else needs_gpu,
        ),
        Stage(
            "networks",
            "EstimatorQNN, SamplerQNN and TorchConnector against qiskit-machine-learning",
            networks_stage(plan),
            estimate["networks"],
            None if plan.dry_run else needs_gpu,
        ),
        Stage("pytest", "pytest -m gpu -q", pytest_stage(), estimate["pytest"], needs_gpu),
        Stage(
            "timings",
            "forward and backward times against the peers and the targets",
            timings_stage(plan),
            estimate["timings"],
            None if plan.dry_run else needs_gpu,
        ),
        Stage(
            "sanitizer",
            "compute-sanitizer memcheck and racecheck on a 3-qubit launch",
            sanitizer_stage(),
            estimate["sanitizer"],
            lambda: sanitizer_reason(needs_gpu()),
        ),
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device",
        choices=["cuda", "cpu"],
        default="cuda",
        help="cuda (default), or cpu for a dry run of the script without a GPU",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("gpu_acceptance.json"), help="the JSON report"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=DEFAULT_BUDGET_S,
        help=f"seconds until the deadline; later stages are skipped (default {DEFAULT_BUDGET_S:g})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer kernel cases and compiles, smaller peers"
    )
    args = parser.parse_args(argv)
    if args.budget_s <= 0:
        parser.error("--budget-s must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stages, write the report; 0, or 1 when a stage failed."""
    args = parse_args(argv)
    plan = make_view(args.device, args.quick)
    meta = {
        "script": "benchmarks/gpu_acceptance.py",
        "device": args.device,
        "quick": args.quick,
        "dry_run": plan.dry_run,
    }
    if plan.dry_run:
        meta["label"] = DRY_RUN_LABEL
        print(DRY_RUN_LABEL)
    runner = StageRunner(stages(plan), args.out, args.budget_s, meta, echo=print)
    report = runner.run()
    summary = report["summary"]
    print(
        f"report: {args.out} ({report['elapsed_s']:.0f} s): {summary['ok']} ok, "
        f"{summary['failed']} failed, {summary['skipped']} skipped"
    )
    return runner.exit_status


if __name__ == "__main__":
    sys.exit(main())

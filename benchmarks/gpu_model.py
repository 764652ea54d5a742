"""A MODEL of the fused kernels' time on an H100/H200 (sm_90) for issue 11's targets, from the
generated kernels' shared-memory bytes, floating-point operations and barriers per row (README,
"A model of the GPU times"). Not a measurement: every figure it gives is labelled a model.

A row costs ``max(bytes / (shared bandwidth x efficiency), flops / FP rate) + barriers x
BARRIER_CYCLES / blocks per SM`` cycles of its SM, the batch spread over every SM, plus
``HOST_OVERHEAD_MS`` per call. Run: ``python -m benchmarks.gpu_model`` (prints JSON)."""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    import _as_script  # type: ignore[import-not-found]  # noqa: F401

import json
from dataclasses import dataclass

import numpy as np

from benchmarks.internals import (
    Op,
    OpKind,
    PhaseRun,
    adjoint_shared_bytes,
    build_passes,
    default_threads,
)
from benchmarks.workloads import zz_kernel_tables

SMS = 132  # multiprocessors of an H100 SXM / H200 (GH100)
CLOCK_HZ = 1.98e9  # boost clock
SHARED_BYTES_PER_CYCLE = 128  # per SM (32 banks of 4 bytes)
SHARED_EFFICIENCY = 0.5  # ASSUMED share of it reached (bank conflicts, address arithmetic)
FP64_PER_CYCLE = 64  # FP64 FMAs per SM per cycle; complex64 kernels run FP32 at twice that
BARRIER_CYCLES = 60  # ASSUMED cost of a __syncthreads() and a pass's loop prologue
SHARED_PER_SM = 228 * 1024
MAX_BLOCKS_PER_SM = 32
HOST_OVERHEAD_MS = 0.3  # ASSUMED host time per call: angles, chain rule, checks, one launch
SINCOS_OPS = 30


@dataclass(frozen=True)
class RowCost:
    """One row's work in one kernel."""

    shared_bytes: float
    fp64_ops: float
    barriers: int


def _touched(op: Op, dim: int) -> float:
    """Amplitudes an op reads and writes in one row."""
    share = dim / 2 ** len(op.controls)
    if op.kind is OpKind.PHASE:
        mask = np.asarray(op.data).real
        return share * float(np.count_nonzero(mask)) / len(mask)
    if op.kind is OpKind.DIAG:
        diag = np.asarray(op.data)
        return share * float(np.count_nonzero(diag != 1)) / len(diag)
    return share


def _fp64(op: Op, dim: int) -> float:
    """FP64 operations of one op on one row."""
    touched = _touched(op, dim)
    k = len(op.targets)
    if op.kind is OpKind.DENSE:
        return touched / 2**k * 4 * 4**k
    if op.kind is OpKind.ROT:
        return touched * 8
    if op.kind in (OpKind.PHASE, OpKind.DIAG):
        return touched * 4
    return 0.0


def pass_costs(passes: list, num_qubits: int, itemsize: int) -> list[tuple[float, float, bool]]:
    """(shared bytes, floating-point ops, parametric) of each forward pass over one row."""
    dim = 1 << num_qubits
    out = []
    for p in passes:
        if isinstance(p, PhaseRun):
            out.append((2.0 * dim * itemsize, dim * (SINCOS_OPS + 4 + len(p.ops)), True))
        else:
            (op,) = p.ops
            out.append((2.0 * _touched(op, dim) * itemsize, _fp64(op, dim), op.slot >= 0))
    return out


def _sweep(costs: list[tuple[float, float, bool]]) -> RowCost:
    return RowCost(sum(c[0] for c in costs), sum(c[1] for c in costs), len(costs))


def forward_row(program, itemsize: int) -> RowCost:
    """A forward sweep of ``program`` over one row."""
    return _sweep(pass_costs(build_passes(program), program.num_qubits, itemsize))


def adjoint_row(kp, itemsize: int) -> RowCost:
    """The fused adjoint kernel of a kernel program over one row (final state kept between
    outputs)."""
    costs = pass_costs(kp.passes, kp.num_qubits, itemsize)
    forward = _sweep(costs)
    back_bytes = sum(2 * b + (b if parametric else 0) for b, _f, parametric in costs)
    back_fp = sum(2 * f + (f / 2 if parametric else 0) for _b, f, parametric in costs)
    lam = 2.0 * kp.dim * itemsize
    outputs = kp.num_outputs
    return RowCost(
        forward.shared_bytes + outputs * (back_bytes + lam),
        forward.fp64_ops + outputs * back_fp,
        forward.barriers + outputs * (len(costs) + 2),
    )


def kernel_ms(row: RowCost, rows: int, shared_per_block: int, itemsize: int = 16) -> dict:
    """Modelled milliseconds of one launch over ``rows`` rows, and the bound that sets it."""
    blocks_per_sm = max(1, min(MAX_BLOCKS_PER_SM, SHARED_PER_SM // max(1, shared_per_block)))
    shared_cycles = row.shared_bytes / (SHARED_BYTES_PER_CYCLE * SHARED_EFFICIENCY)
    fp_cycles = row.fp64_ops / (FP64_PER_CYCLE * (2 if itemsize == 8 else 1))
    barrier_cycles = row.barriers * BARRIER_CYCLES / blocks_per_sm
    per_row = max(shared_cycles, fp_cycles) + barrier_cycles
    cycles = per_row * rows / SMS
    return {
        "kernel_ms": cycles / CLOCK_HZ * 1e3,
        "bound": "shared memory" if shared_cycles >= fp_cycles else "floating point",
        "blocks_per_sm": blocks_per_sm,
        "shared_bytes_per_row": row.shared_bytes,
        "fp64_ops_per_row": row.fp64_ops,
        "barriers_per_row": row.barriers,
    }


def model_report(dtype: str = "complex128") -> dict:
    """The model's times for issue 11's targets on one H100/H200, labelled as a model."""
    itemsize = np.dtype(dtype).itemsize
    targets = []
    for num_qubits, batch, target_ms in ((8, 4096, 2.0), (12, 1024, 20.0)):
        kp, slots = zz_kernel_tables(num_qubits, dtype)
        shared = adjoint_shared_bytes(kp, dtype, len(slots), False, True)
        row = adjoint_row(kp, itemsize)
        kernel = kernel_ms(row, batch, shared, itemsize)
        targets.append(
            {
                "workload": f"zz{num_qubits} backward with input gradients, batch {batch}",
                "dtype": dtype,
                "target_ms": target_ms,
                "model_ms": kernel["kernel_ms"] + HOST_OVERHEAD_MS,
                "passes_per_sweep": len(kp.passes),
                "threads_per_block": default_threads(num_qubits),
                "shared_bytes_per_block": shared,
                **kernel,
            }
        )
    return {
        "label": "MODEL (not measured): H100/H200 sm_90 from shared-memory traffic and FP64 counts",
        "assumptions": {
            "sms": SMS,
            "clock_hz": CLOCK_HZ,
            "shared_bytes_per_cycle": SHARED_BYTES_PER_CYCLE,
            "shared_efficiency": SHARED_EFFICIENCY,
            "fp64_fma_per_cycle": FP64_PER_CYCLE,
            "barrier_cycles": BARRIER_CYCLES,
            "host_overhead_ms": HOST_OVERHEAD_MS,
        },
        "targets": targets,
        "peer_ratios": "not modelled: the 20x qiskit-aer-gpu and 5x PennyLane targets need the "
        "peers measured side by side on the GPU (benchmarks/bench_gpu.py)",
    }


def main() -> None:
    report = {dtype: model_report(dtype) for dtype in ("complex128", "complex64")}
    print(json.dumps(report, indent=2))  # noqa: T201 - a command-line report


if __name__ == "__main__":
    main()

"""Stage 6: gpuqnn's forward and backward times on the GPU workloads, side by side with
qiskit-aer-gpu and PennyLane + torch backprop on the same GPU (the GPU benchmark's peers,
``benchmarks/peers.py``), each checked against gpuqnn before it counts; the targets; and, where
``benchmarks/gpu_model.py``'s model of the expected GPU times (labelled a model).

Timing as in ``bench_gpu.py`` (``benchmarks/measure.py``): a warm-up call, then the best of
several calls, each bracketed by a device synchronisation; peers marked ``scaled`` are measured
on fewer samples and scaled linearly to the batch.
"""

from __future__ import annotations

from typing import Any

from benchmarks import gpu_model
from benchmarks.acceptance.plan import Plan
from benchmarks.acceptance.runner import StageContext, error_record

GPUQNN_PASSES = ("forward", "backward+input_grads")
"""gpuqnn's timed passes. Not the weights-only backward: on the GPU it is one more adjoint
kernel to compile per workload and dtype (10-20 s of NVRTC at 12 qubits) for no target."""
PEER_PASSES = GPUQNN_PASSES
PEERS = {"pennylane-backprop": 20.0, "qiskit-aer-gpu": 60.0}
"""The peers, each with the seconds of the stage's time it needs left to be measured on the
GPU (Aer's parameter-shift gradients of 512 samples take the longest)."""
PEER_REPEAT = 3
"""Full-batch peers: best of this many calls (they take seconds each)."""
COMPLEX64_MIN_SECONDS = 30.0
"""gpuqnn in complex64 (its kernels compile first) is timed only with this much time left."""
SEED = 1234

TARGET_PASS = "backward+input_grads"
TARGETS = (
    # (qubits, batch, what, limit): seconds under a limit, or at least a ratio over a peer
    (8, 4096, "seconds", 2e-3),
    (8, 4096, "qiskit-aer-gpu", 20.0),
    (8, 4096, "pennylane-backprop", 5.0),
    (12, 1024, "seconds", 20e-3),
)
"""The acceptance targets, on the backward pass with input gradients."""

DRY_RUN_LABEL = (
    "DRY RUN on the CPU: gpuqnn's NumPy engine and CPU peers at tiny batches; these are not GPU "
    "figures and no target is evaluated"
)
MODEL_LABEL = (
    "MODEL, not a measurement: expected GPU times from the generated kernels' shared-memory "
    "traffic and instruction counts (benchmarks/gpu_model.py)"
)


def gpuqnn_times(
    spec: Any, plan: Plan, dtype: str, inputs: Any, weights: Any, checker: Any = None
) -> tuple[dict[str, Any], Any]:
    """Seconds of each of :data:`GPUQNN_PASSES` for gpuqnn (``gradient_method="auto"``) and
    the gradient methods ``auto`` took. Without ``checker``, returns a new one holding these
    results (the reference of the peers); with one, each result is checked against it.
    """
    from benchmarks.measure import Checker, resolved_methods, time_pass  # noqa: PLC0415
    from benchmarks.runners import Variant  # noqa: PLC0415

    device = "cpu" if plan.dry_run else "gpu"
    variant = Variant(f"gpuqnn-{dtype}", "auto", dtype, device, "auto")
    runner = variant.build(spec)
    reference = checker
    if reference is None:
        checker = Checker(spec.circuit.name, runner, variant.tolerance())
    times: dict[str, Any] = {"device": runner.describe(), "method": resolved_methods(runner)}
    checks = []
    for name in GPUQNN_PASSES:
        timing, result = time_pass(runner, name, inputs, weights, plan.timing_repeat)
        times[name] = timing.seconds
        if reference is None:
            checker.remember(name, inputs, result)
        else:
            checks.append(checker.check(runner, name, result, inputs, weights, variant.tolerance()))
    if checks:
        times["checks vs complex128"] = checks
    return times, checker


def peer_times(
    name: str, spec: Any, plan: Plan, qubits: int, inputs: Any, weights: Any, checker: Any
) -> dict[str, Any]:
    """One peer's seconds on :data:`PEER_PASSES`, each checked against gpuqnn (or why none)."""
    from benchmarks.measure import time_pass  # noqa: PLC0415
    from benchmarks.peers import PEERS as KNOWN  # noqa: PLC0415
    from benchmarks.runners import Options, Unsupported  # noqa: PLC0415

    peer = KNOWN[name]
    options = Options("cpu" if plan.dry_run else "gpu")
    reason = peer.unavailable(options)
    if reason is not None:
        return {"status": "skipped", "reason": reason}
    try:
        runner = peer.factory(spec, options)
    except Unsupported as exc:
        return {"status": "n/a", "reason": str(exc)}
    scaled_from = peer.samples(spec, None, inputs.shape[0], plan.peer_ref_batch[qubits])
    record: dict[str, Any] = {
        "status": "ok",
        "describe": runner.describe(),
        "backward": "one vector-Jacobian product" if runner.gradients == "vjp" else "Jacobians",
        "checks": [],
    }
    atol = max(checker.atol, peer.atol or 0.0)
    for pass_name in PEER_PASSES:
        repeat = min(plan.timing_repeat, PEER_REPEAT)
        timing, got = time_pass(runner, pass_name, inputs, weights, repeat, scaled_from)
        sample = inputs[: timing.measured]
        record[pass_name] = timing.seconds
        record[f"{pass_name} measured samples"] = timing.measured
        record["checks"].append(checker.check(runner, pass_name, got, sample, weights, atol))
    record["agrees"] = "MISMATCH" not in " ".join(record["checks"])
    return record


def evaluate_targets(workloads: list[dict], dry_run: bool) -> list[dict]:
    """Each target's measured value and verdict (``met``, ``NOT met``, ``not measured``)."""
    by_size = {(w["qubits"], w["batch"]): w for w in workloads}
    targets = []
    for qubits, batch, what, limit in TARGETS:
        if what == "seconds":
            text = f"zz{qubits} {TARGET_PASS} at batch {batch} under {limit * 1e3:g} ms"
        else:
            text = f"zz{qubits} {TARGET_PASS} at batch {batch} at least {limit:g}x {what}"
        target: dict[str, Any] = {"target": text}
        workload = by_size.get((qubits, batch))
        ours = (workload or {}).get("gpuqnn", {}).get("complex128", {}).get(TARGET_PASS)
        theirs = (workload or {}).get("peers", {}).get(what, {}) if what != "seconds" else {}
        if dry_run:
            target.update(verdict="not evaluated", reason="dry run on the CPU")
        elif ours is None:
            target.update(verdict="not measured", reason="gpuqnn was not timed at this batch")
        elif what == "seconds":
            target.update(value=f"{ours * 1e3:.3g} ms", verdict=_verdict(ours < limit))
        elif theirs.get(TARGET_PASS) is None or not theirs.get("agrees", False):
            why = theirs.get("reason") or ("disagreed" if theirs else "not measured")
            target.update(verdict="not measured", reason=f"{what}: {why}")
        else:
            ratio = theirs[TARGET_PASS] / ours
            target.update(value=f"{ratio:.3g}x", verdict=_verdict(ratio >= limit))
        targets.append(target)
    return targets


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def model_part(ctx: StageContext) -> dict[str, Any]:
    """``benchmarks.gpu_model.model_report()`` for both dtypes, labelled a model."""
    try:
        report = {dtype: gpu_model.model_report(dtype) for dtype in ("complex128", "complex64")}
        return {"status": "ok", "label": MODEL_LABEL, "report": report}
    except Exception as exc:
        ctx.fail(f"gpu_model.model_report() raised {type(exc).__name__}: {exc}")
        return {"status": "failed", "label": MODEL_LABEL, "error": error_record(exc)}


def measure_workload(
    qubits: int, batch: int, plan: Plan, ctx: StageContext
) -> tuple[dict[str, Any], Any]:
    """gpuqnn in complex128 on ``zz_estimator(qubits)`` at ``batch``, then each peer the stage
    has time for; returns the record and the checker holding gpuqnn's results."""
    from benchmarks.workloads import zz_estimator  # noqa: PLC0415

    spec = zz_estimator(qubits)
    inputs, weights = spec.random_data(batch, SEED)
    times, checker = gpuqnn_times(spec, plan, "complex128", inputs, weights)
    record: dict[str, Any] = {
        "workload": f"zz{qubits}-estimator",
        "qubits": qubits,
        "batch": batch,
        "gpuqnn": {"complex128": times},
        "peers": {},
    }
    for name, needs in PEERS.items():
        if not plan.dry_run and ctx.time_left() < needs:
            reason = f"less than {needs:.0f} s of the stage's time left"
            record["peers"][name] = {"status": "skipped", "reason": reason}
            continue
        try:
            peer = peer_times(name, spec, plan, qubits, inputs, weights, checker)
        except Exception as exc:  # a peer's own failure: reported, not gpuqnn's failure
            peer = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
            peer["error"] = error_record(exc)
        record["peers"][name] = peer
        if peer.get("agrees") is False:
            ctx.fail(f"{name} disagrees with gpuqnn on zz{qubits}: {peer['checks']}")
    return record, checker


def timings_stage(plan: Plan):
    """Stage 6: the timings, the targets and the model. A workload that raises is recorded
    (and fails the stage); the others are still measured."""

    def run(ctx: StageContext) -> dict[str, Any]:
        workloads: list[dict[str, Any]] = []
        checkers = []
        for qubits, batch in plan.timing_batches:
            try:
                record, checker = measure_workload(qubits, batch, plan, ctx)
            except Exception as exc:
                ctx.fail(f"zz{qubits} at batch {batch}: {type(exc).__name__}: {exc}")
                record, checker = {"qubits": qubits, "batch": batch}, None
                record["error"] = error_record(exc)
            workloads.append(record)
            checkers.append(checker)
        _complex64_times(workloads, checkers, plan, ctx)
        targets = evaluate_targets(workloads, plan.dry_run)
        details: dict[str, Any] = {
            "label": DRY_RUN_LABEL if plan.dry_run else "measured on the GPU",
            "passes": {"gpuqnn": GPUQNN_PASSES, "peers": PEER_PASSES},
            "repeat": plan.timing_repeat,
            "workloads": workloads,
            "targets": targets,
            "model": model_part(ctx),
        }
        ctx.summary = _summary(workloads, targets, plan.dry_run)
        return details

    return run


def _complex64_times(
    workloads: list[dict], checkers: list[Any], plan: Plan, ctx: StageContext
) -> None:
    """gpuqnn in complex64 on each workload, checked against complex128, while the stage has
    time (no target uses it)."""
    from benchmarks.workloads import zz_estimator  # noqa: PLC0415

    for record, checker in zip(workloads, checkers, strict=True):
        if checker is None:
            continue
        if ctx.time_left() < (0.0 if plan.dry_run else COMPLEX64_MIN_SECONDS):
            record["gpuqnn"]["complex64"] = {"skipped": "not enough of the stage's time left"}
            continue
        spec = zz_estimator(record["qubits"])
        inputs, weights = spec.random_data(record["batch"], SEED)
        try:
            times, _ = gpuqnn_times(spec, plan, "complex64", inputs, weights, checker)
        except Exception as exc:
            ctx.fail(f"complex64 on {record['workload']}: {type(exc).__name__}: {exc}")
            record["gpuqnn"]["complex64"] = {"error": error_record(exc)}
            continue
        record["gpuqnn"]["complex64"] = times
        if any("MISMATCH" in check for check in times["checks vs complex128"]):
            ctx.fail(f"complex64 disagrees with complex128 on {record['workload']}")


def _summary(workloads: list[dict], targets: list[dict], dry_run: bool) -> str:
    parts = []
    for w in workloads:
        seconds = w.get("gpuqnn", {}).get("complex128", {}).get(TARGET_PASS)
        text = "error" if seconds is None else f"{seconds * 1e3:.3g} ms"
        parts.append(f"zz{w['qubits']}@{w['batch']} {TARGET_PASS} {text}")
    met = sum(t["verdict"] == "met" for t in targets)
    text = ", ".join(parts)
    if dry_run:
        return f"DRY RUN (CPU, not GPU figures): {text}"
    return f"{text}; targets met {met}/{len(targets)}"

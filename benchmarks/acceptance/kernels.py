"""Stage 3: every kernel path against the NumPy engine on random programs.

The stage takes its random programs, readouts and reference outputs from the kernel tests
(``tests/test_cuda_kernels.py``: ``random_program``, ``make_readout``, ``random_shifts``,
``engine_outputs``), so that the acceptance run checks the same op shapes the tests do. On
``--device cpu`` the runners are the host build of the same kernels (``gpuqnn._cuda.host``),
otherwise CuPy's.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

import numpy as np

from benchmarks.acceptance.environment import REPO_ROOT
from benchmarks.acceptance.plan import Plan
from benchmarks.acceptance.runner import StageContext

TOLERANCE = {"complex128": 1e-9, "complex64": 5e-4}
"""Largest absolute error accepted against the complex128 NumPy reference, per kernel dtype."""

DTYPES = ("complex128", "complex64")

MIN_REFERENCE = 1e-3
"""A case whose reference outputs are all below this in magnitude checks nothing: it fails."""


def kernel_test_helpers() -> ModuleType:
    """``tests/test_cuda_kernels.py`` loaded as a module (its random programs and readouts).

    Raises:
        FileNotFoundError: the checkout has no tests.
    """
    path = REPO_ROOT / "tests" / "test_cuda_kernels.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the kernel stage uses its random programs")
    spec = importlib.util.spec_from_file_location("_gpuqnn_acceptance_kernel_cases", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class HostRunners:
    """The kernels' host build (g++ ``-DGPUQNN_HOST``) behind the CuPy runners' interface."""

    def __init__(self, directory: str) -> None:
        from gpuqnn._cuda.host import HostKernels  # noqa: PLC0415
        from gpuqnn._cuda.tables import DEFAULT_SHARED_LIMIT  # noqa: PLC0415

        self.kernels = HostKernels(directory)
        self.shared_limit = DEFAULT_SHARED_LIMIT
        self.name = (
            "host build of the kernels (g++ -DGPUQNN_HOST): HostFusedLauncher, HostPerOpLauncher, "
            f"shared memory limit {self.shared_limit} bytes (H100/H200)"
        )

    def fused(self, kp: Any, dtype: str) -> Any:
        from gpuqnn._cuda.host import HostFusedLauncher  # noqa: PLC0415

        return HostFusedLauncher(self.kernels, kp, dtype, shared_limit=self.shared_limit)

    def per_op(self, kp: Any, dtype: str) -> Any:
        from gpuqnn._cuda.host import HostPerOpLauncher  # noqa: PLC0415

        return HostPerOpLauncher(self.kernels, kp, dtype)

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)


class CupyRunners:
    """CuPy's FusedLauncher and PerOpLauncher on the current device (one shared module)."""

    def __init__(self) -> None:
        import cupy  # noqa: PLC0415 - only with a GPU

        from gpuqnn._cuda.cupy_launchers import KernelModule, shared_memory_limit  # noqa: PLC0415

        self.cupy = cupy
        self.module = KernelModule()
        self.shared_limit = shared_memory_limit()
        self.name = (
            f"CuPy FusedLauncher and PerOpLauncher on cuda:{cupy.cuda.Device().id}, shared "
            f"memory limit {self.shared_limit} bytes"
        )

    def fused(self, kp: Any, dtype: str) -> Any:
        from gpuqnn._cuda.cupy_launchers import FusedLauncher  # noqa: PLC0415

        return FusedLauncher(kp, dtype, shared_limit=self.shared_limit)

    def per_op(self, kp: Any, dtype: str) -> Any:
        from gpuqnn._cuda.cupy_launchers import PerOpLauncher  # noqa: PLC0415

        return PerOpLauncher(kp, dtype, module=self.module)

    def to_host(self, array: Any) -> np.ndarray:
        self.cupy.cuda.Device().synchronize()
        return self.cupy.asnumpy(array)


@dataclass(frozen=True)
class KernelCase:
    """One kernel path on one random program.

    Attributes:
        path: ``fused-forward``, ``fused-adjoint-jacobian``, ``fused-adjoint-vjp`` or
            ``per-op-forward``.
        qubits: the program's qubits.
        readout: ``pauli``, ``direct`` or ``pieces``.
        dtype: the kernels' dtype.
        samples: B.
        seed: the random program's, readout's and angles' seed.
    """

    path: str
    qubits: int
    readout: str
    dtype: str
    samples: int
    seed: int

    @property
    def ops(self) -> int:
        """Ops of the random program: 3 per qubit (at least 24), so that few qubits stay
        untouched (on those, Pauli terms with X or Y would read exactly 0)."""
        return max(24, 3 * self.qubits)

    def label(self) -> str:
        return f"{self.path} n={self.qubits} {self.readout} {self.dtype}"


def default_seed(qubits: int, readout: str) -> int:
    """The seed of a plan's case that names none."""
    return 1000 + 17 * qubits + {"pauli": 0, "direct": 1, "pieces": 2}[readout]


def kernel_cases(plan: Plan) -> list[KernelCase]:
    """Every case of the plan, smallest programs first (cut first when time runs out)."""
    groups = [
        ("fused-forward", plan.fused_forward),
        ("fused-adjoint-jacobian", plan.fused_adjoint),
        ("fused-adjoint-vjp", plan.fused_adjoint),
        ("per-op-forward", plan.per_op),
    ]
    cases = [
        KernelCase(
            path,
            entry[0],
            entry[1],
            dtype,
            plan.kernel_samples,
            entry[2] if len(entry) > 2 else default_seed(entry[0], entry[1]),
        )
        for path, entries in groups
        for entry in entries
        for dtype in DTYPES
    ]
    return sorted(cases, key=lambda c: c.qubits)


class CaseRunner:
    """Runs cases: builds (and keeps) each random program, runs the kernel path, compares with
    the complex128 NumPy engine."""

    def __init__(self, helpers: ModuleType, runners: Any) -> None:
        self.helpers = helpers
        self.runners = runners
        self._programs: dict[tuple, tuple[Any, Any, Any, Any]] = {}

    def program(self, case: KernelCase) -> tuple[Any, Any, Any, Any]:
        """(program, complex128 reference readout, kernel program in ``case.dtype``, slots)."""
        key = (case.qubits, case.readout, case.dtype, case.seed)
        if key not in self._programs:
            from gpuqnn._cuda.tables import encode_tables  # noqa: PLC0415

            h = self.helpers
            program = h.random_program(case.seed, case.qubits, case.ops)
            reference = h.make_readout(case.readout, case.qubits, case.seed, "complex128")
            readout = h.make_readout(case.readout, case.qubits, case.seed, case.dtype)
            kp = encode_tables(program, readout)
            self._programs[key] = (program, reference, kp, program.angles.num_slots)
        return self._programs[key]

    def run(self, case: KernelCase) -> dict[str, Any]:
        """The case's record: max abs error against the reference, or why it does not apply."""
        program, reference, kp, slots = self.program(case)
        rng = np.random.default_rng(case.seed)
        base = rng.uniform(-np.pi, np.pi, (case.samples, slots))
        limit = self.runners.shared_limit
        if case.path != "per-op-forward" and not kp.fits_fused(case.dtype, limit):
            return {
                "status": "n/a",
                "reason": f"a row needs {kp.fused_shared_bytes(case.dtype)} bytes of shared "
                f"memory, more than the limit {limit}",
            }
        if case.path.endswith("forward"):
            shift_slot, shift_value = self.helpers.random_shifts(rng, slots, 4)
            runner = (self.runners.fused if case.path == "fused-forward" else self.runners.per_op)(
                kp, case.dtype
            )
            got = self.runners.to_host(runner.run(base, shift_slot, shift_value))
            expected = self.helpers.engine_outputs(
                program, reference, "complex128", base, shift_slot, shift_value
            )
            return {"rows": int(got.shape[0]), **_compare(got, expected, case.dtype)}
        return self._adjoint(case, program, reference, kp, base, rng)

    def _adjoint(self, case, program, reference, kp, base, rng) -> dict[str, Any]:
        from gpuqnn._sim.adjoint import adjoint_gradients  # noqa: PLC0415
        from gpuqnn._sim.block_circuit import BlockCircuit  # noqa: PLC0415

        slots = list(range(base.shape[1]))
        vjp = case.path.endswith("vjp")
        runner = self.runners.fused(kp, case.dtype)
        kernel = runner.adjoint_kernel(slots, vjp)
        if kernel is None:
            return {
                "status": "n/a",
                "reason": "a row's state and adjoint state do not fit the shared memory limit",
            }
        cotangent = rng.uniform(0.5, 1.5, (case.samples, kp.num_outputs)) if vjp else None
        got = self.runners.to_host(runner.adjoint(base, slots, cotangent))
        expected = adjoint_gradients(
            BlockCircuit(program, reference.backend),
            reference,
            base,
            slots,
            False,
            cotangent=cotangent,
        )
        return {"slots": len(slots), **_compare(got, np.asarray(expected), case.dtype)}


def _compare(got: np.ndarray, expected: np.ndarray, dtype: str) -> dict[str, Any]:
    if got.shape != expected.shape:
        return {
            "status": "FAILED",
            "reason": f"shape {got.shape}, expected {expected.shape}",
            "tolerance": TOLERANCE[dtype],
        }
    error = float(np.max(np.abs(got - expected), initial=0.0))
    if not np.isfinite(got).all():
        error = float("inf")
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
            reason=f"the reference's largest value is {scale:.1e}: the comparison checks "
            "nothing (choose another case)",
        )
    return record


def kernel_stage(plan: Plan):
    """Stage 3: every case of the plan through its kernel path, against NumPy. Cases that
    would start past the stage's time are listed as not run."""

    def run(ctx: StageContext) -> dict[str, Any]:
        helpers = kernel_test_helpers()
        with tempfile.TemporaryDirectory(prefix="gpuqnn-host-kernels-") as directory:
            runners = HostRunners(directory) if plan.dry_run else CupyRunners()
            records = _run_cases(CaseRunner(helpers, runners), kernel_cases(plan), ctx)
        details = {
            "runners": runners.name,
            "reference": "NumPy engine in complex128: BlockCircuit.evolve and the readout for "
            "outputs, gpuqnn._sim.adjoint.adjoint_gradients for derivatives",
            "tolerance": TOLERANCE,
            "max_abs_error": _worst(records),
            "counts": {s: sum(r["status"] == s for r in records) for s in _STATUSES},
            "cases": records,
        }
        counts = details["counts"]
        ctx.summary = (
            f"{counts['passed']} passed, {counts['FAILED']} failed, {counts['error']} errors, "
            f"{counts['n/a']} n/a, {counts['not run']} not run; worst "
            + ", ".join(f"{k} {v:.1e}" for k, v in _worst_by_dtype(records).items())
        )
        return details

    return run


_STATUSES = ("passed", "FAILED", "error", "n/a", "not run")


def _run_cases(runner: CaseRunner, cases: list[KernelCase], ctx: StageContext) -> list[dict]:
    records = []
    for case in cases:
        record: dict[str, Any] = {**asdict(case)}
        if ctx.time_left() <= 0:
            records.append({**record, "status": "not run", "reason": "the stage's time ran out"})
            continue
        start = time.perf_counter()
        try:
            record.update(runner.run(case))
        except Exception as exc:  # one broken case must not hide the others
            record.update(status="error", error=f"{type(exc).__name__}: {str(exc)[-4000:]}")
        record["seconds"] = round(time.perf_counter() - start, 3)
        if record["status"] in ("FAILED", "error"):
            error = record.get("max_abs_error")
            why = record.get("error") or record.get("reason") or f"max abs error {error}"
            ctx.fail(f"{case.label()}: {_shorten(why)}")
        records.append(record)
    return records


def _shorten(text: str, head: int = 120, tail: int = 280) -> str:
    """``text``, or its start and end (a compiler's message ends with the error)."""
    return text if len(text) <= head + tail else f"{text[:head]} ... {text[-tail:]}"


def _worst(records: list[dict]) -> dict[str, dict[str, float]]:
    """Largest error per path and dtype over the cases that ran."""
    worst: dict[str, dict[str, float]] = {}
    for r in records:
        if "max_abs_error" in r:
            by_dtype = worst.setdefault(r["path"], {})
            by_dtype[r["dtype"]] = max(by_dtype.get(r["dtype"], 0.0), r["max_abs_error"])
    return worst


def _worst_by_dtype(records: list[dict]) -> dict[str, float]:
    worst: dict[str, float] = {}
    for r in records:
        if "max_abs_error" in r:
            worst[r["dtype"]] = max(worst.get(r["dtype"], 0.0), r["max_abs_error"])
    return worst

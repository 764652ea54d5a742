"""The native CPU engine against the NumPy block engine (issue 20), side by side in one run.

For each workload and batch (zz8 at 16, 256 and 4096 samples, zz12 at 64) and each dtype, both
engines of one network run the forward pass, the per-sample Jacobians (``backward`` with input
gradients), the vector-Jacobian product (``vjp``) and a training step (``TorchConnector``:
forward + ``loss.backward()`` with input and weight gradients), one worker thread each
(``threads=1``, and ``--threads`` pins the process), in interleaved rounds; the best round of
each is kept. Results are checked against each other first.

The flop count is that of the native engine's op table per row (:func:`flops_per_row`): every
complex multiply-add the interpreter does for a forward pass (6 flops for a complex product, 2
for a real scale, 2 for an add), from which the ``GFLOP/s`` column follows; the bound at a
stated peak rate (``--peak``, GFLOP/s of one core) is ``flops * rows / peak``, and
``time/bound`` the forward pass's time over it. ``native/forward``: each pass's time over the
native forward pass's.

    python -m benchmarks.bench_native                  # the table (~40 s on one core)
    python -m benchmarks.bench_native --quick          # smoke run (batch <= 16, 1 round)
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    import _as_script  # type: ignore[import-not-found]  # noqa: F401

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.internals import native_ops, simulator_of
from benchmarks.report import render
from benchmarks.threads import fix_threads
from benchmarks.workloads import zz_estimator

CASES = (("zz8", 8, 16), ("zz8", 8, 256), ("zz8", 8, 4096), ("zz12", 12, 64))
"""(workload, qubits, batch): issue 20's rows."""
PASSES = ("forward", "jacobian", "vjp", "step")
DTYPES = ("complex128", "complex64")
ATOL = {"complex128": 1e-9, "complex64": 1e-4}
CLEAN = 1e-15  # parts the native tables take as zero (gpuqnn/_native/tables.py)


def flops_per_row(network: Any) -> int:
    """Flops of one row's forward pass as the native engine's op table does it: per op, the
    amplitudes it changes times the flops of each (dense: 8 per complex multiply-add, 4 for a
    real entry; rotation: 10, 8 with real or imaginary coefficients; phase, diagonal and
    permutation: 6 per complex product), plus the readout (4 per amplitude and term)."""
    ops = native_ops(network)
    n = simulator_of(network).program.num_qubits
    dim = 1 << n
    total = 0
    for op in ops:
        share = dim >> len(op.controls)  # amplitudes whose controls match
        kind = op.kind.name
        if kind == "DENSE":
            matrix = np.asarray(op.matrix)
            per = 4 if np.all(np.abs(matrix.imag) < CLEAN) else 8
            total += share // len(matrix) * int(np.count_nonzero(matrix)) * per
        elif kind == "ROT":
            coeff = np.asarray(op.coefficients)
            fast = np.all(np.abs(coeff.real) < CLEAN) or np.all(np.abs(coeff.imag) < CLEAN)
            total += share * (8 if fast else 10)
        elif kind == "PHASE":
            total += share // len(op.mask) * int(np.count_nonzero(op.mask)) * 6
        else:  # DIAG, PERM
            total += share * 6
    terms = len(simulator_of(network).readout.terms.xmask)
    return total + 4 * dim * terms


def _networks(qubits: int, dtype: str) -> dict[str, Any]:
    import gpuqnn  # noqa: PLC0415

    spec = zz_estimator(qubits)
    return {
        engine: gpuqnn.EstimatorQNN(
            **spec.qiskit_kwargs(), dtype=dtype, engine=engine, threads=1, input_gradients=True
        )
        for engine in ("native", "numpy")
    }


def _passes(network: Any, inputs: np.ndarray, weights: np.ndarray) -> dict[str, Callable]:
    import torch  # noqa: PLC0415

    from gpuqnn import TorchConnector  # noqa: PLC0415

    model = TorchConnector(network, initial_weights=weights)
    x = torch.tensor(inputs, requires_grad=True)
    cotangent = np.random.default_rng(0).normal(size=(len(inputs), 1))
    g = torch.tensor(cotangent)

    def step() -> Any:
        model.zero_grad()
        x.grad = None
        out = model(x)
        (out * g).sum().backward()
        return out.detach().numpy(), x.grad.numpy(), model.weight.grad.numpy()

    return {
        "forward": lambda: network.forward(inputs, weights),
        "jacobian": lambda: network.backward(inputs, weights),
        "vjp": lambda: network.vjp(inputs, weights, cotangent),
        "step": step,
    }


def _check(results: dict[str, Any], atol: float) -> float:
    """Largest difference between the two engines' results (raises above ``atol``)."""
    worst = 0.0
    a, b = results["native"], results["numpy"]
    for x, y in zip(_flat(a), _flat(b), strict=True):
        worst = max(worst, float(np.max(np.abs(x - y), initial=0.0)))
    if worst > atol:
        raise AssertionError(f"native and numpy differ by {worst:.2e} (> {atol:.0e})")
    return worst


def _flat(value: Any) -> list[np.ndarray]:
    if isinstance(value, (tuple, list)):
        return [np.asarray(v) for item in value for v in _flat(item)]
    return [] if value is None else [np.asarray(value)]


def run(
    rounds: int, quick: bool, peak: float, cases: Sequence[tuple[str, int, int]] = CASES
) -> list[list[str]]:
    """The table's rows for ``cases`` (workload, qubits, batch)."""
    rows = []
    for name, qubits, batch in cases:
        batch = min(batch, 16) if quick else batch
        for dtype in DTYPES:
            networks = _networks(qubits, dtype)
            spec = zz_estimator(qubits)
            inputs, weights = spec.random_data(batch, seed=1)
            passes = {e: _passes(n, inputs, weights) for e, n in networks.items()}
            best = {(e, p): np.inf for e in networks for p in PASSES}
            for p in PASSES:  # warm up and check
                _check({e: passes[e][p]() for e in networks}, ATOL[dtype])
            for _ in range(rounds):
                for p in PASSES:
                    for e in networks:
                        start = time.perf_counter()
                        passes[e][p]()
                        best[e, p] = min(best[e, p], time.perf_counter() - start)
            flops = flops_per_row(networks["native"]) * batch
            for p in PASSES:
                native, numpy_ = best["native", p], best["numpy", p]
                row = [name, str(batch), dtype, p, f"{native * 1e3:.3f}", f"{numpy_ * 1e3:.3f}"]
                row.append(f"{numpy_ / native:.2f}x")
                if p == "forward":
                    rate = flops / native / 1e9
                    row += [f"{flops / batch / 1e3:.0f}", f"{rate:.1f}", f"{peak / rate:.2f}", ""]
                else:
                    row += ["", "", "", f"{native / best['native', 'forward']:.2f}"]
                rows.append(row)
    return rows


HEADER = ["workload", "batch", "dtype", "pass", "native ms", "numpy ms", "numpy/native"]
HEADER += ["kflop/row", "GFLOP/s", "time/bound", "native/forward"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="batch <= 16, one round")
    parser.add_argument("--threads", type=int, default=1, help="cores the process runs on")
    parser.add_argument(
        "--peak", type=float, default=16.0, help="one core's peak GFLOP/s for the bound column"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    print(fix_threads(args.threads))
    from gpuqnn._native import load_core  # noqa: PLC0415

    core = load_core()
    if core is None:
        print("the native engine is not built: nothing to compare")
        return 0
    print(f"native kernels: {core.isas()[-1]} (of {', '.join(core.isas())})")
    rows = run(1 if args.quick else args.rounds, args.quick, args.peak)
    print(render(HEADER, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

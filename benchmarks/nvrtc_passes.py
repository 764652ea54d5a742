"""NVRTC compile seconds of the generated fused kernels against their pass count: the
measurement behind the cap on passes per kernel (``MAX_KERNEL_PASSES`` in
``gpuqnn/_cuda/passes.py``).

ZZ feature map + RealAmplitudes on ``--qubits`` qubits with growing ``reps`` (deeper ansatz,
more passes); every kernel is generated whole (one kernel, no cap) and compiled once for sm_90
with the options CuPy uses at run time (``RUNTIME_OPTIONS``), in this process (NVRTC compiles
on one core). No GPU is needed. Prints one line per (reps, dtype, kernel): passes, source kB
and seconds, and a least-squares fit of seconds per pass.

    python -m benchmarks.nvrtc_passes --qubits 8 --reps 2 6 12 24
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    import _as_script  # type: ignore[import-not-found]  # noqa: F401

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from benchmarks.internals import encode_tables, simulator_of
from gpuqnn import EstimatorQNN
from gpuqnn._cuda.codegen import generate_adjoint, generate_forward
from gpuqnn._cuda.nvrtc import compile_cubin
from gpuqnn._cuda.tables import DEFAULT_SHARED_LIMIT
from gpuqnn.examples import zz_real_amplitudes


def measure(qubits: int, reps: int, dtype: str, kinds: Sequence[str]) -> list[dict]:
    """One compile per kernel of ``kinds`` (``forward``, ``adjoint``) for the ZZ estimator of
    ``reps`` ansatz layers, uncapped: passes, source bytes, seconds."""
    qc, feature_map, ansatz = zz_real_amplitudes(qubits, reps=reps)
    network = EstimatorQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
        device="cpu",
        dtype=dtype,
    )
    simulator = simulator_of(network)
    kp = encode_tables(simulator.program, simulator.readout)
    slots = simulator.differentiated_slots(range(qc.num_parameters))
    rows = []
    for kind in kinds:
        if kind == "forward":
            kernel = generate_forward(kp, dtype)
        else:
            kernel = generate_adjoint(kp, dtype, slots, False, DEFAULT_SHARED_LIMIT)
        assert kernel is not None
        start = time.perf_counter()
        compile_cubin(kernel.source, "sm_90")
        seconds = time.perf_counter() - start
        row = dict(reps=reps, dtype=dtype, kernel=kind, passes=kernel.passes)
        row.update(source_kb=len(kernel.source) / 1024, seconds=seconds)
        rows.append(row)
        print(
            f"reps {reps:3d}  {dtype:10s}  {kind:8s}  passes {kernel.passes:4d}  "
            f"source {row['source_kb']:7.1f} kB  nvrtc {seconds:6.2f} s",
            flush=True,
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qubits", type=int, default=8)
    parser.add_argument("--reps", type=int, nargs="+", default=[2, 6, 12, 24])
    parser.add_argument("--dtypes", nargs="+", default=["complex128", "complex64"])
    parser.add_argument("--kernels", nargs="+", default=["forward", "adjoint"])
    args = parser.parse_args(argv)
    rows = [
        row
        for reps in args.reps
        for dtype in args.dtypes
        for row in measure(args.qubits, reps, dtype, args.kernels)
    ]
    for dtype in args.dtypes:
        for kind in args.kernels:
            picked = [r for r in rows if r["dtype"] == dtype and r["kernel"] == kind]
            if len(picked) < 2:
                continue
            passes = np.array([r["passes"] for r in picked], dtype=float)
            seconds = np.array([r["seconds"] for r in picked])
            slope, offset = np.polyfit(passes, seconds, 1)
            print(f"fit {dtype:10s} {kind:8s}: {offset:5.2f} s + {slope * 1000:6.1f} ms per pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())

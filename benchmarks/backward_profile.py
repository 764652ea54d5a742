"""What one fused backward pass costs the host: kernel launches and array-library calls per
call, counted by :func:`gpuqnn.profile` on the zz workloads' networks, on a GPU (CuPy) or, in the
acceptance dry run, on the kernels' host build (the same launchers up to the launch).

Records name ``launches_per_backward`` and ``host_ops_per_backward`` (issue 18's targets: at
most :data:`MAX_LAUNCHES` and :data:`MAX_HOST_OPS`), with the derivatives checked against the
NumPy engine. Run as ``python -m benchmarks.backward_profile [--device cpu]`` for a table.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    import _as_script  # type: ignore[import-not-found]  # noqa: F401

import argparse
import importlib.util
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):  # run as a file: import this checkout's packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import gpuqnn  # noqa: E402
from benchmarks import internals as gi  # noqa: E402
from benchmarks.workloads import zz_estimator  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_LAUNCHES = 2
"""Most kernel launches a fused backward may take (the kernel, and one reduction)."""
MAX_HOST_OPS = 16
"""Most array-library calls outside the kernels a fused backward may make."""
QUBITS = (8, 12)
"""The zz workloads profiled: zz8 and zz12 estimators (input and weight gradients)."""
TOLERANCE = {"complex128": 1e-9, "complex64": 1e-5}


def emulation_module() -> ModuleType:
    """``tests/engines.py`` as a module: the emulated GPU backend and host runner factory the
    GPU tests use."""
    path = REPO_ROOT / "tests" / "engines.py"
    spec = importlib.util.spec_from_file_location("_gpuqnn_backward_profile_engines", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the dry run uses its emulated GPU")
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    return module


def profile_backward(
    qubits: int, dtype: str, batch: int, device: str, directory: str | None = None
) -> dict[str, Any]:
    """One zz estimator's backward (input and weight gradients) and vector-Jacobian product
    under :func:`gpuqnn.profile`, on ``device`` (``"cuda"``; ``"cpu"``: the host build in
    ``directory``): its counts, and its largest error against the NumPy engine.

    Args:
        qubits: the workload's qubits (8 or 12).
        dtype: ``"complex128"`` or ``"complex64"``.
        batch: samples.
        device: ``"cuda"`` or ``"cpu"`` (the emulation).
        directory: where the host build goes (``"cpu"`` only).
    """
    spec = zz_estimator(qubits)
    kwargs = spec.qiskit_kwargs() | {"input_gradients": True}
    if device == "cpu":
        if directory is None:
            raise ValueError("directory is needed for the host build (device 'cpu')")
        emulation = emulation_module().Emulation(gi.HostKernels(directory))
        network = emulation.build(gpuqnn.EstimatorQNN, **kwargs, dtype=dtype)
    else:
        network = gpuqnn.EstimatorQNN(**kwargs, device="cuda", dtype=dtype)
    reference = gpuqnn.EstimatorQNN(**kwargs, device="cpu")
    inputs, weights = spec.random_data(batch, seed=qubits)
    network.backward(inputs, weights)  # compile outside the counted calls
    with gpuqnn.profile() as prof:
        got = network.backward(inputs, weights)
    expected = reference.backward(inputs, weights)
    error = max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected, strict=True))
    record = prof.calls[-1]
    return {
        "workload": f"zz{qubits}-estimator",
        "dtype": dtype,
        "batch": batch,
        "pass": "backward+input_grads",
        "device": record.device,
        "runner": record.runner,
        "method": record.method,
        "launches_per_backward": record.launches,
        "host_ops_per_backward": record.host_ops,
        "host_to_device_bytes": record.host_to_device_bytes,
        "device_to_host_bytes": record.device_to_host_bytes,
        "max_abs_error": error,
        "tolerance": TOLERANCE[dtype],
    }


def failures(record: dict[str, Any]) -> list[str]:
    """What in ``record`` misses the targets (empty: none)."""
    label = f"{record['workload']} {record['dtype']}"
    out = []
    if record["runner"] != "fused CUDA kernels":
        out.append(f"{label}: ran on {record['runner']}, not the fused kernels")
    if record["launches_per_backward"] > MAX_LAUNCHES:
        out.append(f"{label}: {record['launches_per_backward']} launches > {MAX_LAUNCHES}")
    if record["host_ops_per_backward"] > MAX_HOST_OPS:
        out.append(f"{label}: {record['host_ops_per_backward']} host array calls > {MAX_HOST_OPS}")
    if not record["max_abs_error"] <= record["tolerance"]:
        out.append(f"{label}: error {record['max_abs_error']:.1e} > {record['tolerance']:.0e}")
    return out


def profile_all(
    device: str,
    dtypes: Sequence[str] = ("complex128",),
    batch: int = 2,
    qubits: Sequence[int] = QUBITS,
) -> list[dict[str, Any]]:
    """:func:`profile_backward` for every workload of ``qubits`` (default :data:`QUBITS`) and
    every dtype; an error becomes a record with ``error``."""
    records = []
    with tempfile.TemporaryDirectory(prefix="gpuqnn-backward-profile-") as directory:
        for n in qubits:
            for dtype in dtypes:
                try:
                    records.append(profile_backward(n, dtype, batch, device, directory))
                except Exception as exc:  # one broken case must not hide the others
                    records.append(
                        {
                            "workload": f"zz{n}-estimator",
                            "dtype": dtype,
                            "error": f"{type(exc).__name__}: {str(exc)[-2000:]}",
                        }
                    )
    return records


def main(argv: Sequence[str] | None = None) -> int:
    """Print the counts of every workload; 1 when one misses a target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args(argv)
    records = profile_all(args.device, ("complex128", "complex64"), args.batch)
    bad = []
    for r in records:
        if "error" in r:
            print(f"{r['workload']} {r['dtype']}: {r['error']}")
            bad.append(r["error"])
            continue
        print(
            f"{r['workload']} {r['dtype']} batch {r['batch']}: {r['runner']}, {r['method']}: "
            f"launches_per_backward {r['launches_per_backward']}, host_ops_per_backward "
            f"{r['host_ops_per_backward']}, error {r['max_abs_error']:.1e}"
        )
        bad += failures(r)
    return int(bool(bad))


if __name__ == "__main__":
    sys.exit(main())

"""Fixtures shared by the tests: small circuits and data (contract, ecosystem and tutorial
tests), the CUDA kernels' host build, and ``engine``, the conformance suite's engine fixture over
the table in ``engines.py``; the skipping of ``gpu`` tests where no CUDA device answers."""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

from gpuqnn.examples import zz_real_amplitudes

from engines import ENGINES, HostKernels, OnEngine, build_host_kernels


class QNNCircuit(NamedTuple):
    """A circuit with its input and weight parameters, in the order the network takes them."""

    circuit: QuantumCircuit
    inputs: list
    weights: list


def make_three_qubit_circuit() -> QNNCircuit:
    """3 qubits, 2 inputs, 3 weights; a scaled input, a sum and a product of parameters."""
    x, w = ParameterVector("x", 2), ParameterVector("w", 3)
    qc = QuantumCircuit(3)
    qc.h(2)
    qc.ry(x[0], 0)
    qc.rx(2 * x[1], 1)
    qc.cx(0, 2)
    qc.crz(w[0] + x[0], 2, 1)
    qc.ry(w[1] * x[1], 0)
    qc.rzz(w[2], 0, 2)
    qc.h(1)
    return QNNCircuit(qc, list(x), list(w))


def make_zz_real_amplitudes(num_qubits: int = 2, reps: int = 1) -> QNNCircuit:
    """zz_feature_map(n) (inputs) followed by real_amplitudes(n, reps) (weights)."""
    qc, feature_map, ansatz = zz_real_amplitudes(num_qubits, reps=reps)
    return QNNCircuit(qc, list(feature_map.parameters), list(ansatz.parameters))


@pytest.fixture
def three_qubit() -> QNNCircuit:
    return make_three_qubit_circuit()


@pytest.fixture
def zz_two_qubit() -> QNNCircuit:
    return make_zz_real_amplitudes(2, reps=1)


@pytest.fixture
def two_feature_data() -> tuple[np.ndarray, np.ndarray]:
    """20 seeded points in [-1, 1]^2, labelled 1 where x0 * x1 > 0 (else 0)."""
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (20, 2))
    return x, (x[:, 0] * x[:, 1] > 0).astype(int)


@pytest.fixture(scope="session")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> HostKernels:
    """The CUDA kernels built for the host (g++), once per session; skips without a compiler."""
    return build_host_kernels(tmp_path_factory.mktemp("kernels"))


@pytest.fixture(params=[engine.param() for engine in ENGINES])
def engine(request: pytest.FixtureRequest) -> OnEngine:
    """Each engine of :data:`engines.ENGINES` in turn (one test instance per engine, with its
    marks); ``engine(cls, **kwargs)`` builds a network on it. Parametrise ``engine`` indirectly
    with a subset of ``ENGINES`` to run a test on those only."""
    return OnEngine(request.param, request)


def require_nvrtc() -> None:
    """Skip unless CuPy loads NVRTC; in CI (``CI`` set) fail instead: CI installs the ``nvrtc13``
    extra (CuPy and NVRTC), so that the NVRTC compile tests run rather than skip unnoticed."""
    try:
        from cupy.cuda import nvrtc  # noqa: PLC0415 - optional dependency

        nvrtc.getVersion()
    except Exception as exc:  # ImportError, or cuda-pathfinder's DynamicLibNotFoundError
        reason = f"CuPy's NVRTC is not available ({type(exc).__name__}: {exc})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI installs CuPy and NVRTC with the nvrtc13 extra")
        pytest.skip(reason)


def cuda_device_available() -> bool:
    """Whether CuPy imports and a CUDA device answers (the test of ``device="auto"``)."""
    from gpuqnn._sim.backend import load_cupy  # noqa: PLC0415

    cupy, _reason = load_cupy(0)
    return cupy is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``gpu`` tests run on CuPy; where no CUDA device answers they are skipped, with why."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items or cuda_device_available():
        return
    skip = pytest.mark.skip(reason="no usable CUDA device (CuPy missing or no driver/device)")
    for item in gpu_items:
        item.add_marker(skip)

"""The CUDA kernels compile for the device: with nvcc for sm_80 and sm_90 (every template
instantiation, warnings and register spills as errors) where nvcc is on the machine, and with
NVRTC through CuPy (the RawModule path and gpuqnn's own wrapper, without a device) where CuPy
and NVRTC are importable. Each test skips, saying why, when its compiler is missing; the NVRTC
ones fail instead in CI, whose test extra installs CuPy and NVRTC."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gpuqnn._cuda.nvrtc import compile_cubin
from gpuqnn._cuda.plan import REAL_TYPES, SIGNATURES
from gpuqnn._cuda.source import (
    COMPILE_OPTIONS,
    kernel_source,
    kernel_source_path,
    name_expressions,
)

from conftest import require_nvrtc

pytestmark = pytest.mark.gpu_logic

ARCHITECTURES = ["80", "90"]


def _instantiations(inline: bool = False) -> str:
    """A .cu that includes the source (or holds it, ``inline``: NVRTC has no file system) and
    instantiates every kernel for float and double."""
    lines = [kernel_source() if inline else f'#include "{kernel_source_path()}"']
    for kernel in SIGNATURES:
        params = f"GQ_{kernel[3:].upper()}_PARAMS"
        for real in REAL_TYPES.values():
            lines.append(f"template __global__ void {kernel}<{real}>({params}({real}));")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=[f"sm_{a}" for a in ARCHITECTURES])
def test_nvcc_compiles_every_kernel(arch: str, tmp_path: Path) -> None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH")
    unit = tmp_path / "kernels.cu"
    unit.write_text(_instantiations())
    cubin = tmp_path / "kernels.cubin"
    command = [
        nvcc,
        "-cubin",
        *COMPILE_OPTIONS,
        f"-arch=sm_{arch}",
        "-Werror",
        "all-warnings",
        "-Xptxas",
        "-warn-spills",
        "-o",
        str(cubin),
        str(unit),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}{result.stderr}"
    binary = cubin.read_bytes()
    for kernel in SIGNATURES:  # both instantiations are in the cubin (mangled names)
        for real in REAL_TYPES.values():
            assert f"_Z{len(kernel)}{kernel}I{real[0]}".encode() in binary, (kernel, real)


def _nvrtc():
    """CuPy's compiler module; skips (fails in CI) when CuPy or the NVRTC library is missing."""
    require_nvrtc()
    from cupy.cuda import compiler  # noqa: PLC0415 - optional dependency

    if not hasattr(compiler, "_NVRTCProgram"):
        pytest.skip("this CuPy has no _NVRTCProgram (the RawModule compile path changed)")
    return compiler


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=[f"sm_{a}" for a in ARCHITECTURES])
def test_nvrtc_compiles_every_kernel(arch: str) -> None:
    """The path ``cupy.RawModule(code=..., options=COMPILE_OPTIONS, name_expressions=...)``
    takes, with the architecture given instead of read from a device: CuPy's NVRTC program
    with the same source, options and name expressions, compiled to a cubin."""
    compiler = _nvrtc()
    names = name_expressions()
    program = compiler._NVRTCProgram(
        kernel_source(), "statevector.cu", (), (), name_expressions=names, method="cubin"
    )
    options = (*COMPILE_OPTIONS, f"-arch=sm_{arch}", "--device-as-default-execution-space")
    cubin, mapping = program.compile(options)
    assert len(cubin) > 10_000
    assert set(mapping) == set(names)
    for name in names:
        kernel, real = name[:-1].split("<")
        assert mapping[name].startswith(f"_Z{len(kernel)}{kernel}I{real[0]}"), name


def test_nvrtc_kernels_do_not_spill_on_sm_90() -> None:
    """gpuqnn's NVRTC wrapper on the real source, for sm_90 without a device: every
    instantiation is in ptxas's report, none spills registers (what ``-warn-spills`` checks in
    the nvcc test) and none uses static shared memory (the fused kernel's is dynamic)."""
    require_nvrtc()
    result = compile_cubin(_instantiations(inline=True), "sm_90", COMPILE_OPTIONS, "statevector.cu")
    assert result.cubin.startswith(b"\x7fELF")
    assert len(result.resources) == len(SIGNATURES) * len(REAL_TYPES)
    for kernel in SIGNATURES:
        for real in REAL_TYPES.values():
            prefix = f"_Z{len(kernel)}{kernel}I{real[0]}"
            (name,) = [n for n in result.resources if n.startswith(prefix)]
            usage = result.resources[name]
            assert usage.spill_stores == usage.spill_loads == 0, (name, usage, result.log)
            assert 0 < usage.registers <= 255 and usage.shared_static == 0, (name, usage)


def _workload_kernels(num_qubits: int, dtype: str, which: tuple[str, ...]) -> list:
    """The generated kernels of the benchmarks' zz workload (zz_feature_map + real_amplitudes
    reps=3, Z^n): ``forward``, ``jacobian`` (the fused adjoint by every slot), ``vjp``."""
    from gpuqnn import EstimatorQNN  # noqa: PLC0415
    from gpuqnn._cuda.codegen import generate_adjoint, generate_forward  # noqa: PLC0415
    from gpuqnn._cuda.program import DEFAULT_SHARED_LIMIT, encode_program  # noqa: PLC0415
    from gpuqnn._internals import simulator_of  # noqa: PLC0415
    from gpuqnn.examples import zz_real_amplitudes  # noqa: PLC0415

    qc, feature_map, ansatz = zz_real_amplitudes(num_qubits, reps=3)
    sim = simulator_of(
        EstimatorQNN(
            circuit=qc, input_params=feature_map.parameters, weight_params=ansatz.parameters
        )
    )
    kp = encode_program(sim.program, sim.readout)
    slots = list(range(kp.num_slots))
    make = {
        "forward": lambda: generate_forward(kp, dtype),
        "jacobian": lambda: generate_adjoint(kp, dtype, slots, False, DEFAULT_SHARED_LIMIT),
        "vjp": lambda: generate_adjoint(kp, dtype, slots, True, DEFAULT_SHARED_LIMIT),
    }
    return [make[name]() for name in which]


REGISTER_CASES = [
    pytest.param(8, "complex128", ("forward", "jacobian", "vjp"), id="zz8-complex128"),
    pytest.param(8, "complex64", ("forward", "jacobian", "vjp"), id="zz8-complex64"),
    pytest.param(12, "complex128", ("forward", "jacobian"), id="zz12-complex128"),
    pytest.param(12, "complex64", ("forward", "jacobian"), id="zz12-complex64"),
    pytest.param(12, "complex128", ("vjp",), id="zz12-complex128-vjp", marks=pytest.mark.slow),
    pytest.param(12, "complex64", ("vjp",), id="zz12-complex64-vjp", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("num_qubits", "dtype", "which"), REGISTER_CASES)
def test_generated_kernels_take_64_registers_and_never_spill(
    num_qubits: int, dtype: str, which: tuple[str, ...]
) -> None:
    """Issue 11's bound: the specialised kernels of the 8- and 12-qubit workloads, compiled by
    NVRTC for sm_90 as CuPy compiles them at run time, use at most 64 registers per thread (so
    that a 512-thread block leaves room for a second one per SM) with no spills, no local
    stack frame and no static shared memory."""
    require_nvrtc()
    for kernel in _workload_kernels(num_qubits, dtype, which):
        result = compile_cubin(kernel.source, "sm_90", COMPILE_OPTIONS)
        usage = result.resources[kernel.name]
        assert usage.registers <= 64, (kernel.name, usage)
        assert usage.spill_stores == usage.spill_loads == 0, (kernel.name, usage, result.log)
        assert usage.shared_static == 0, (kernel.name, usage)
        assert "stack frame" not in result.log or " 0 bytes stack frame" in result.log

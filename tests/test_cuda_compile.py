"""The CUDA kernels compile for the device: with nvcc for sm_80 and sm_90 (every entry point,
warnings and register spills as errors) where nvcc is on the machine, and with
NVRTC through CuPy (the RawModule path and gpuqnn's own wrapper, without a device) where CuPy
and NVRTC are importable. Each test skips, saying why, when its compiler is missing; the NVRTC
ones fail instead in CI, which installs CuPy and NVRTC (the nvrtc13 extra)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gpuqnn._cuda.nvrtc import compile_cubin
from gpuqnn._cuda.source import (
    COMPILE_OPTIONS,
    RUNTIME_OPTIONS,
    kernel_names,
    kernel_source,
    kernel_source_path,
    runtime_options,
)

from conftest import require_nvrtc

pytestmark = pytest.mark.gpu_logic

ARCHITECTURES = ["80", "90"]


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=[f"sm_{a}" for a in ARCHITECTURES])
def test_nvcc_compiles_every_kernel(arch: str, tmp_path: Path) -> None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH")
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
        "-x",
        "cu",
        str(kernel_source_path()),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}{result.stderr}"
    binary = cubin.read_bytes()
    for name in kernel_names():  # every entry point, under its plain extern "C" name
        assert name.encode() + b"\x00" in binary, name


def _nvrtc():
    """CuPy's compiler module; skips (fails in CI) when CuPy or the NVRTC library is missing."""
    require_nvrtc()
    from cupy.cuda import compiler  # noqa: PLC0415 - optional dependency

    if not hasattr(compiler, "_NVRTCProgram"):
        pytest.skip("this CuPy has no _NVRTCProgram (the RawModule compile path changed)")
    return compiler


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=[f"sm_{a}" for a in ARCHITECTURES])
def test_nvrtc_compiles_every_kernel(arch: str) -> None:
    """The path ``cupy.RawModule(code=..., options=COMPILE_OPTIONS)`` takes, with the
    architecture given instead of read from a device: CuPy's NVRTC program with the same source
    and options, compiled to a cubin that holds every entry point by its plain name (no name
    expressions: what lets CuPy cache the module on disk)."""
    compiler = _nvrtc()
    program = compiler._NVRTCProgram(kernel_source(), "statevector.cu", (), (), method="cubin")
    cubin, _mapping = program.compile(runtime_options(f"sm_{arch}"))
    assert len(cubin) > 10_000
    for name in kernel_names():
        assert name.encode() + b"\x00" in cubin, name


def test_runtime_options_are_the_ones_cupy_compiles_with(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18, item 7: the options the compile checks use (``RUNTIME_OPTIONS``) are what the
    installed CuPy hands NVRTC for ``RawKernel(source, name, options=COMPILE_OPTIONS)`` (the
    launchers' call; ``compile_with_cache`` with ``prepend_cupy_headers=False`` is what it runs),
    less CuPy's include paths. NVRTC is stopped before compiling, and the architecture is given
    (CuPy reads it from a device): no GPU needed. A CuPy that adds or drops an option fails
    this test."""
    compiler = _nvrtc()
    import cupy  # noqa: PLC0415 - optional dependency

    seen: list[tuple[str, ...]] = []

    class Stop(Exception):
        pass

    def record(program, options=(), log_stream=None):
        if program.src.strip():  # CuPy's empty preprocessing compile (its cache key) runs
            seen.append(tuple(options))
            raise Stop
        return original(program, options, log_stream)

    original = compiler._NVRTCProgram.compile
    monkeypatch.setattr(compiler._NVRTCProgram, "compile", record)
    monkeypatch.setattr(
        compiler, "_get_arch_for_options_for_nvrtc", lambda arch=None: (f"-arch=sm_{arch}", "cubin")
    )
    monkeypatch.setenv("CUPY_CACHE_IN_MEMORY", "1")  # no disk cache hit, nothing written
    monkeypatch.delenv("CUPY_NVRTC_USE_PCH", raising=False)
    source = 'extern "C" __global__ void gq_probe() {}'
    with pytest.raises(Stop):
        cupy._core.core.compile_with_cache(
            source, COMPILE_OPTIONS, arch="90", prepend_cupy_headers=False
        )
    (options,) = seen
    given = [o for o in options if not o.startswith("-I")]  # order means nothing to NVRTC
    assert sorted(given) == sorted(runtime_options("sm_90")), options


def test_nvrtc_kernels_do_not_spill_on_sm_90() -> None:
    """gpuqnn's NVRTC wrapper on the real source, for sm_90 without a device, with CuPy's
    run-time options (``RUNTIME_OPTIONS``): every entry point is in ptxas's report, none spills
    registers (what ``-warn-spills`` checks in the nvcc test) and none uses static shared
    memory."""
    require_nvrtc()
    result = compile_cubin(kernel_source(), "sm_90", RUNTIME_OPTIONS, "statevector.cu")
    assert result.cubin.startswith(b"\x7fELF")
    assert set(result.resources) == set(kernel_names())
    for name, usage in result.resources.items():
        assert usage.spill_stores == usage.spill_loads == 0, (name, usage, result.log)
        assert 0 < usage.registers <= 255 and usage.shared_static == 0, (name, usage)


SLOW = pytest.mark.slow


def _workload_kernels(num_qubits: int, dtype: str, which: tuple[str, ...]) -> list:
    """(kind, kernel) of every generated kernel of the benchmarks' zz workload
    (zz_feature_map + real_amplitudes reps=3, Z^n) that runs: ``forward``, ``jacobian`` (the
    fused adjoint by every slot), ``vjp``; a chain's parts each (its forward parts as
    ``forward part``), as the launchers split a program above the cap on passes per kernel."""
    from benchmarks.workloads import zz_kernel_tables  # noqa: PLC0415
    from gpuqnn._cuda.angle_code import angle_code  # noqa: PLC0415
    from gpuqnn._cuda.codegen import (  # noqa: PLC0415
        FORWARD_PART_KERNEL,
        adjoint_chain,
        forward_chain,
        generate_adjoint,
        generate_forward,
    )
    from gpuqnn._cuda.tables import DEFAULT_SHARED_LIMIT  # noqa: PLC0415

    kp, slots = zz_kernel_tables(num_qubits, dtype)
    code = angle_code(kp.program.angles)
    columns = range(kp.program.angles.num_parameters)
    make = {
        "forward": lambda: forward_chain(kp, dtype),
        "jacobian": lambda: adjoint_chain(kp, dtype, slots, False, DEFAULT_SHARED_LIMIT),
        "vjp": lambda: adjoint_chain(kp, dtype, slots, True, DEFAULT_SHARED_LIMIT),
        "forward-parameters": lambda: (generate_forward(kp, dtype, code=code),),
        "jacobian-parameters": lambda: (
            generate_adjoint(
                kp, dtype, slots, False, DEFAULT_SHARED_LIMIT, code=code, columns=columns
            ),
        ),
        "vjp-parameters": lambda: (
            generate_adjoint(
                kp, dtype, slots, True, DEFAULT_SHARED_LIMIT, code=code, columns=columns
            ),
        ),
    }
    kinds = {"gqs_forward": "forward", FORWARD_PART_KERNEL: "forward part"}
    return [(kinds.get(kernel.name, name), kernel) for name in which for kernel in make[name]()]


PARAMETERS = ("forward-parameters", "jacobian-parameters", "vjp-parameters")
"""The kernels that read parameter rows: what networks run (the others: parameter shift and
amplitude encodings' host angles)."""
REGISTER_CASES = [
    pytest.param(8, "complex128", ("forward", *PARAMETERS), id="zz8-complex128"),
    pytest.param(8, "complex64", ("forward", *PARAMETERS), id="zz8-complex64"),
    pytest.param(12, "complex128", ("forward", "jacobian-parameters"), id="zz12-complex128"),
    pytest.param(12, "complex64", ("forward", "jacobian-parameters"), id="zz12-complex64"),
    pytest.param(8, "complex128", ("jacobian", "vjp"), id="zz8-complex128-angles", marks=SLOW),
    pytest.param(8, "complex64", ("jacobian", "vjp"), id="zz8-complex64-angles", marks=SLOW),
    pytest.param(12, "complex128", ("vjp-parameters", "jacobian"), id="zz12-c128-rest", marks=SLOW),
    pytest.param(12, "complex64", ("vjp-parameters", "jacobian"), id="zz12-c64-rest", marks=SLOW),
]


ACCEPTED_SPILLS: dict[tuple[str, str], int] = {}
"""Spill bytes (stores and loads, per thread) accepted per (kernel, dtype): none. (A 12-qubit
forward chain's last part spilled 12 bytes in complex128 and 4 in complex64 under the 64-register
cap with a cap of 48 passes per kernel; at 72 both benchmark circuits are one kernel each. The
complex64 forward kernels' one 4-byte spill is gone since the states' swizzled layout.) Any
spill fails."""


@pytest.mark.parametrize(("num_qubits", "dtype", "which"), REGISTER_CASES)
def test_generated_kernels_take_64_registers_and_never_spill(
    num_qubits: int, dtype: str, which: tuple[str, ...]
) -> None:
    """Issue 11's bound: the specialised kernels of the 8- and 12-qubit workloads, compiled by
    NVRTC for sm_90 with the options CuPy compiles them with at run time (``RUNTIME_OPTIONS``),
    use at most 64 registers per thread (so that a 512-thread block leaves room for a second
    one per SM), no static shared memory, and spill no more than :data:`ACCEPTED_SPILLS`."""
    require_nvrtc()
    compiled: set[str] = set()
    for kind, kernel in _workload_kernels(num_qubits, dtype, which):
        if kernel.key in compiled:  # a forward part the adjoint chain shares
            continue
        compiled.add(kernel.key)
        result = compile_cubin(kernel.source, "sm_90", RUNTIME_OPTIONS)
        usage = result.resources[kernel.name]
        assert usage.registers <= 64, (kernel.name, usage)
        accepted = ACCEPTED_SPILLS.get((kind, dtype), 0)
        assert usage.spill_stores <= accepted, (kernel.name, usage, result.log)
        assert usage.spill_loads <= accepted, (kernel.name, usage, result.log)
        assert usage.shared_static == 0, (kernel.name, usage)

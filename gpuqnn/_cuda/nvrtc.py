"""Compile CUDA C++ to a cubin with NVRTC, without a device, and read ptxas's resource report.

:func:`compile_cubin` goes through CuPy's low-level NVRTC binding (``cupy.cuda.nvrtc``) for an
explicit architecture, so it needs CuPy and the NVRTC library (the ``cuda12``/``cuda13``
extras, or the ``nvrtc13`` extra) but no driver or GPU. It asks ptxas for its verbose report;
:func:`kernel_resources` turns that report, or nvcc's ``-Xptxas -v`` output, into registers,
spills and static shared memory per kernel::

    result = compile_cubin(source, arch="sm_90")
    result.resources["my_kernel"].spill_stores    # bytes; 0 when nothing spilled

CuPy is imported inside :func:`compile_cubin` only: importing this module never imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import ModuleType

from .._sim.backend import cuda_major, install_hint
from .source import RUNTIME_OPTIONS

VERBOSE_PTXAS = "--ptxas-options=--verbose"
"""NVRTC's option passing ``--verbose`` to ptxas (checked with NVRTC 12.9 and 13.5); nvcc's
equivalent is ``-Xptxas -v``. Both print the per-kernel lines :func:`kernel_resources` reads."""

_ARCH = re.compile(r"sm_\d+[af]?")


@dataclass(frozen=True)
class KernelResources:
    """What ptxas reports for one kernel (entry function).

    Attributes:
        registers: registers per thread.
        spill_stores: bytes of register spill stores per thread (0: no spills).
        spill_loads: bytes of register spill loads per thread.
        shared_static: bytes of static shared memory (``__shared__`` arrays) per block.
    """

    registers: int
    spill_stores: int
    spill_loads: int
    shared_static: int


@dataclass(frozen=True)
class CompileResult:
    """A cubin and NVRTC's log for it.

    Attributes:
        cubin: the device code (an ELF image) for :attr:`arch`.
        log: NVRTC's program log, with ptxas's verbose report.
        arch: the architecture compiled for, e.g. ``"sm_90"``.
        nvrtc_version: (major, minor) of the NVRTC library used.
    """

    cubin: bytes
    log: str
    arch: str
    nvrtc_version: tuple[int, int]
    resources: dict[str, KernelResources] = field(init=False, repr=False, compare=False)
    """:func:`kernel_resources` of :attr:`log`: every kernel's registers, spills and shared
    memory, keyed by its symbol name (mangled, or as written for ``extern "C"``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "resources", kernel_resources(self.log, self.arch))


def _import_nvrtc() -> tuple[ModuleType, tuple[int, int]]:
    """CuPy's NVRTC binding with its library loaded, and the library's version."""
    try:
        import cupy  # noqa: PLC0415 - lazy on purpose: import gpuqnn never imports CuPy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        raise RuntimeError(
            f"compiling with NVRTC needs CuPy ({type(exc).__name__}: {exc}); {install_hint(None)}"
        ) from exc
    nvrtc = cupy.cuda.nvrtc
    try:
        major, minor = nvrtc.getVersion()
    except Exception as exc:  # cuda-pathfinder's DynamicLibNotFoundError
        cuda = cuda_major(cupy)
        soname = "libnvrtc.so" + (f".{cuda}" if cuda else "")
        raise RuntimeError(
            f"NVRTC ({soname}) not found ({type(exc).__name__}); {install_hint(cuda)}"
        ) from exc
    return nvrtc, (int(major), int(minor))


def compile_cubin(
    source: str,
    arch: str = "sm_90",
    options: tuple[str, ...] = RUNTIME_OPTIONS,
    name: str = "kernel.cu",
) -> CompileResult:
    """Compile CUDA C++ ``source`` to a cubin for ``arch`` with NVRTC; no device needed.

    Args:
        source: the CUDA C++ source (kernels ``extern "C"`` or templates instantiated in it).
        arch: a real architecture, ``"sm_XY"`` (a cubin is SASS for one architecture).
        options: NVRTC options besides the architecture; by default the ones CuPy compiles
            gpuqnn's kernels with at run time (:data:`~gpuqnn._cuda.source.RUNTIME_OPTIONS`:
            ``-std=c++17``, ``-ftz=true``, ...), so registers and spills are those of the code
            that runs.
        name: the file name NVRTC shows in its messages.

    Returns:
        The cubin, the log (with ptxas's verbose report) and every kernel's resources.

    Raises:
        ValueError: ``arch`` is not ``sm_XY``.
        RuntimeError: CuPy or NVRTC is missing (naming the library and the extra to install),
            or the compilation failed (with NVRTC's log).
    """
    if not _ARCH.fullmatch(arch):
        raise ValueError(f"arch must be a real architecture like 'sm_90', got {arch!r}")
    nvrtc, version = _import_nvrtc()
    program = nvrtc.createProgram(source, name, [], [])
    try:
        try:
            nvrtc.compileProgram(program, [VERBOSE_PTXAS, *options, f"-arch={arch}"])
        except nvrtc.NVRTCError as exc:
            log = _clean(nvrtc.getProgramLog(program))
            raise RuntimeError(
                f"NVRTC {version[0]}.{version[1]} could not compile {name} for {arch} "
                f"({exc}):\n{log}"
            ) from exc
        cubin = bytes(nvrtc.getCUBIN(program))
        log = _clean(nvrtc.getProgramLog(program))
    finally:
        nvrtc.destroyProgram(program)
    return CompileResult(cubin, log, arch, version)


def _clean(log: str | bytes) -> str:
    if isinstance(log, bytes):
        log = log.decode(errors="replace")
    return log.rstrip("\x00").strip()


_ENTRY = re.compile(r"Compiling entry function '(?P<name>[^']+)' for '(?P<arch>[^']+)'")
_PROPERTIES = re.compile(r"Function properties for (?P<name>\S+)")
_SPILLS = re.compile(
    r"(?P<stack>\d+) bytes stack frame, (?P<stores>\d+) bytes spill stores, "
    r"(?P<loads>\d+) bytes spill loads"
)
_USED = re.compile(r"Used (?P<registers>\d+) registers")
_SMEM = re.compile(r"(?P<smem>\d+) bytes smem")


def kernel_resources(log: str, arch: str | None = None) -> dict[str, KernelResources]:
    """Every kernel's resources from ptxas's verbose report, keyed by symbol name.

    Reads NVRTC's log (``--ptxas-options=--verbose``) and nvcc's output (``-Xptxas -v``),
    which differ only in how the stack-frame line starts. For each ``Compiling entry function
    'NAME' for 'sm_XY'``: the spills of its ``Function properties for NAME`` block and the
    registers and ``bytes smem`` of its ``Used N registers`` line. Non-entry functions
    (``__noinline__`` device functions) have no entry line and are left out.

    Args:
        log: the report (other lines are ignored).
        arch: only the entries for this architecture (an nvcc build for several); None: all,
            which must then name each kernel once.

    Raises:
        ValueError: a kernel appears for several architectures and ``arch`` is None.
    """
    found: dict[str, KernelResources] = {}
    entry: str | None = None
    properties: str | None = None
    spills = (0, 0)
    for line in log.splitlines():
        if match := _ENTRY.search(line):
            keep = arch is None or match["arch"] == arch
            entry, properties, spills = (match["name"] if keep else None), None, (0, 0)
            if keep and entry in found:
                raise ValueError(
                    f"kernel {entry!r} appears more than once (several architectures?); "
                    "pass arch= to pick one"
                )
        elif match := _PROPERTIES.search(line):
            properties = match["name"]
        elif (match := _SPILLS.search(line)) and entry is not None and properties == entry:
            spills = (int(match["stores"]), int(match["loads"]))
        elif (match := _USED.search(line)) and entry is not None:
            smem = _SMEM.search(line)
            found[entry] = KernelResources(
                registers=int(match["registers"]),
                spill_stores=spills[0],
                spill_loads=spills[1],
                shared_static=int(smem["smem"]) if smem else 0,
            )
            entry = None
    return found

"""The kernels built for the host: the same ``statevector.cuh`` compiled by a C++ compiler with
``-DGPUQNN_HOST``, loaded with ctypes, and launchers that mirror
:class:`~.cupy_launchers.FusedLauncher` and :class:`~.cupy_launchers.PerOpLauncher` on NumPy
arrays.

They exist to verify the kernels' logic without a GPU: the launchers build exactly the launches
the CuPy launchers build (``launchers.py``), and the host build executes each launch's grid block by
block, with an emulated number of threads per block run one after the other (optionally in
reverse order, to expose races inside a phase), a check that consecutive phases of a block are
separated by a barrier, fresh NaN-filled shared memory per block and a guard that detects
writes past it. Outputs start as NaN, so an output a kernel never writes
shows up. Slow compared with the NumPy engine; not a production path.

The strict emulation (``strict=`` a seed) runs each phase's threads in a seeded random order,
each on shared memory as it was when the phase started plus its own writes (a snapshot: other
threads' writes become visible at the barrier), fails a launch in which two threads of a phase
write the same shared-memory byte (a lost update on a GPU) or a warp collective
(``gq_warp_add``) is not reached by all 32 lanes of a warp, and sums the lanes as the device's
shuffles do.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from .codegen import GeneratedKernel
from .launchers import SIGNATURES, FusedLauncherBase, Launch, PerOpBuffers, PerOpLauncherBase
from .passes import MAX_KERNEL_PASSES
from .source import kernel_source_path
from .tables import KernelTables

_CTYPES = {"ptr": ctypes.c_void_p, "i32": ctypes.c_int, "i64": ctypes.c_longlong}
_SUFFIX = {"float": "f32", "double": "f64"}
_STATUS = {
    1: "bad launch shape",
    2: "out of host memory",
    3: "a block wrote past its dynamic shared memory",
    4: "two phases of a block ran without a barrier (GQ_SYNC) between them",
    5: "two threads of a phase wrote the same shared-memory byte (strict emulation)",
    6: "a warp collective (gq_warp_add) was not reached by all 32 lanes of a warp "
    "(strict emulation)",
    7: "a barrier (GQ_SYNC) inside a thread loop: divergent code on a GPU",
}
HOST_FLAGS = (
    "-O2",
    "-std=c++17",
    "-shared",
    "-fPIC",
    "-DGPUQNN_HOST",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-x",
    "c++",
)


class HostKernels:
    """``statevector.cuh`` compiled for the host into ``directory`` and loaded.

    Args:
        directory: where to write the shared library (e.g. a test session's temporary folder).
        compiler: the C++ compiler (``g++`` or ``clang++``).

    Raises:
        RuntimeError: the compiler is missing or the build fails (its output is included).
    """

    def __init__(self, directory: str | os.PathLike, compiler: str = "g++") -> None:
        executable = shutil.which(compiler)
        if executable is None:
            raise RuntimeError(
                f"compiler {compiler!r} not found on PATH; it builds the host "
                "twin of the CUDA kernels"
            )
        library = Path(directory) / "libgpuqnn_kernels_host.so"
        self.path = library
        self.directory = Path(directory)
        self.compiler = executable
        self._specialised: dict[str, HostSpecialised] = {}
        self._lib = _build(executable, kernel_source_path(), library)
        for kernel, kinds in SIGNATURES.items():
            for suffix in _SUFFIX.values():
                function = getattr(self._lib, f"{kernel}_{suffix}")
                function.argtypes = [_CTYPES[k] for k in kinds] + [
                    ctypes.c_longlong,
                    ctypes.c_int,
                    ctypes.c_longlong,
                    ctypes.c_int,
                ]
                function.restype = ctypes.c_int

    def specialised(self, kernel: GeneratedKernel) -> HostSpecialised:
        """A generated kernel (:mod:`.codegen`) built for the host, once per source.

        Raises:
            RuntimeError: the build fails (its output is included).
        """
        built = self._specialised.get(kernel.key)
        if built is None:
            built = self._specialised[kernel.key] = HostSpecialised(
                self.directory, kernel, self.compiler
            )
        return built

    def execute(
        self, launch: Launch, real_type: str, reverse: bool = False, strict: int | None = None
    ) -> None:
        """Run one launch: every block of its grid, with ``launch.block`` emulated threads.

        Args:
            launch: the launch (arrays must be C-contiguous NumPy arrays).
            real_type: ``"float"`` or ``"double"``, the template argument.
            reverse: run each phase's threads in decreasing order.
            strict: run the strict emulation with this seed for the thread orders (None: off;
                ``reverse`` is then ignored).

        Raises:
            RuntimeError: the host entry point reported a failure.
        """
        function = getattr(self._lib, f"{launch.kernel}_{_SUFFIX[real_type]}")
        args = _host_args(launch.kernel, SIGNATURES[launch.kernel], launch.args)
        _check(launch, function(*args, *_shape(launch, reverse, strict)))


def _build(compiler: str, source: Path, library: Path) -> ctypes.CDLL:
    command = [compiler, *HOST_FLAGS, str(source), "-o", str(library)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"host build of the kernels failed ({' '.join(command)}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return ctypes.CDLL(str(library))


class HostSpecialised:
    """One generated kernel built for the host and loaded.

    Args:
        directory: where to write the source and the shared library.
        kernel: the generated kernel.
        compiler: the C++ compiler's path.
    """

    def __init__(self, directory: Path, kernel: GeneratedKernel, compiler: str) -> None:
        source = directory / f"gqs_{kernel.key}.cpp"
        source.write_text(kernel.source)
        self.kernel = kernel
        self._lib = _build(compiler, source, directory / f"libgqs_{kernel.key}.so")
        self._function = getattr(self._lib, kernel.name)
        self._function.argtypes = [_CTYPES[k] for k in kernel.signature] + [
            ctypes.c_longlong,
            ctypes.c_int,
            ctypes.c_longlong,
            ctypes.c_int,
        ]
        self._function.restype = ctypes.c_int

    def execute(self, launch: Launch, reverse: bool = False, strict: int | None = None) -> None:
        """Run one launch of the kernel (see :meth:`HostKernels.execute`)."""
        args = _host_args(launch.kernel, self.kernel.signature, launch.args)
        _check(launch, self._function(*args, *_shape(launch, reverse, strict)))


def _shape(launch: Launch, reverse: bool, strict: int | None) -> tuple[int, int, int, int]:
    """The host entry points' trailing arguments: grid, block, shared bytes and the mode (bit 0
    reverse, bit 1 strict, the strict seed above)."""
    if strict is None:
        mode = int(reverse)
    elif not 0 <= strict < 1 << 28:
        raise ValueError(f"strict must be a seed in [0, 2**28), got {strict}")
    else:
        mode = 2 | (int(strict) << 2)
    return launch.grid, launch.block, launch.shared, mode


def _check(launch: Launch, status: int) -> None:
    if status:
        raise RuntimeError(
            f"{launch.kernel} (grid {launch.grid}, block {launch.block}, "
            f"shared {launch.shared}) failed: {_STATUS.get(status, status)}"
        )


def _host_args(name: str, signature: tuple[str, ...], values: tuple) -> list:
    args = []
    for kind, value in zip(signature, values, strict=True):
        if kind == "ptr":
            if not (isinstance(value, np.ndarray) and value.flags.c_contiguous):
                raise TypeError(
                    f"{name}: pointer arguments must be C-contiguous "
                    f"NumPy arrays, got {type(value).__name__}"
                )
            args.append(value.ctypes.data)
        else:
            args.append(int(value))
    return args


class _HostMemory:
    """The LauncherBase hooks on host memory; fresh arrays are filled with NaN or a sentinel."""

    kernels: HostKernels
    reverse: bool
    strict: int | None
    real_type: str

    def _to_device(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array)

    def _empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        dtype = np.dtype(dtype)
        fill = -12345 if dtype.kind == "i" else np.nan
        return np.full(shape, fill, dtype=dtype)

    def _to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def _host_is_device(self) -> bool:
        return True

    def _execute(self, launch: Launch) -> None:
        self.kernels.execute(launch, self.real_type, self.reverse, self.strict)

    def _execute_generated(self, kernel: GeneratedKernel, launch: Launch) -> None:
        self.kernels.specialised(kernel).execute(launch, self.reverse, self.strict)

    def _build_generated(self, kernel: GeneratedKernel) -> None:
        self.kernels.specialised(kernel)


class HostFusedLauncher(_HostMemory, FusedLauncherBase):
    """:class:`~.cupy_launchers.FusedLauncher` on the host build.

    Args:
        kernels: the host build.
        tables: the encoded program and readout.
        dtype: complex64 or complex128.
        threads: emulated threads per block (default: the GPU launcher's choice).
        max_blocks: blocks of the emulated grid at most (rows beyond are strided over).
        shared_limit: shared memory limit per block that the plan must respect, in bytes.
        reverse: run each phase's threads in decreasing order.
        strict: run every launch in the strict emulation with this seed (None: off).
        max_passes: passes per generated kernel at most (as the GPU launcher's).
    """

    def __init__(
        self,
        kernels: HostKernels,
        tables: KernelTables,
        dtype: object = "complex128",
        *,
        threads: int | None = None,
        max_blocks: int | None = None,
        shared_limit: int | None = None,
        reverse: bool = False,
        strict: int | None = None,
        max_passes: int | None = MAX_KERNEL_PASSES,
    ) -> None:
        options = {} if shared_limit is None else {"shared_limit": shared_limit}
        super().__init__(
            tables, dtype, threads=threads, max_blocks=max_blocks, max_passes=max_passes, **options
        )
        self.kernels = kernels
        self.reverse = reverse
        self.strict = strict


class HostPerOpLauncher(_HostMemory, PerOpLauncherBase):
    """:class:`~.launch.PerOpLauncher` on the host build (its launches, without the graph).

    Args:
        kernels: the host build.
        tables: the encoded program and readout.
        dtype: complex64 or complex128.
        threads: emulated threads per block (default 256).
        max_blocks: blocks of the emulated grid at most (grid-stride loops cover the rest).
        reverse: run each phase's threads in decreasing order.
        strict: run every launch in the strict emulation with this seed (None: off).
    """

    def __init__(
        self,
        kernels: HostKernels,
        tables: KernelTables,
        dtype: object = "complex128",
        *,
        threads: int | None = None,
        max_blocks: int | None = None,
        reverse: bool = False,
        strict: int | None = None,
    ) -> None:
        super().__init__(tables, dtype, threads=threads, max_blocks=max_blocks)
        self.kernels = kernels
        self.reverse = reverse
        self.strict = strict

    def _fill(
        self, work: PerOpBuffers, base_angles: Any, shift_slot: Any, shift_value: Any
    ) -> None:
        work.base[...] = base_angles
        work.shift_slot[...] = shift_slot
        work.shift_value[...] = shift_value

    def _copy(self, array: np.ndarray) -> np.ndarray:
        return array.copy()

"""The CuPy side of the kernels: compile ``statevector.cuh`` lazily with NVRTC and run it.

- :class:`FusedLauncher`: the generated kernels (:mod:`.codegen`), compiled per circuit: the
  whole program and readout of every row in ONE launch, one block per row, the state in shared
  memory (programs where :meth:`KernelTables.fits_fused`), and the fused adjoint kernel.
- :class:`PerOpLauncher`: a (R, D) state tensor in global memory, one launch per op and two for
  the readout; the launches of a (B, S) shape are captured once in a CUDA graph (from the
  second call of that shape on) and replayed.

CuPy is imported inside methods only: ``import gpuqnn`` never imports it. The launchers hold
their compiled module, buffers and graph; nothing is cached at module level (CuPy's own
compile cache keeps the binary across launchers).

Shapes: B samples, K angle slots, S shift blocks, R = S * B rows, O outputs, D = 2**n.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

import numpy as np

from .._sim.backend import install_hint
from .codegen import GeneratedKernel
from .launchers import FusedLauncherBase, Launch, PerOpBuffers, PerOpLauncherBase
from .source import COMPILE_OPTIONS, kernel_name, kernel_source
from .tables import KernelTables

_LOG = logging.getLogger(__name__)
_STATIC_SHARED_LIMIT = 48 * 1024  # above this a kernel must opt in to dynamic shared memory
_BLOCKS_PER_SM = 32


def _import_cupy() -> ModuleType:
    try:
        import cupy  # noqa: PLC0415 - lazy on purpose: import gpuqnn never imports CuPy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        raise RuntimeError(
            f"the CUDA kernels need CuPy ({type(exc).__name__}: {exc}); {install_hint(None)}"
        ) from exc
    return cupy


class KernelModule:
    """``statevector.cuh`` as one CuPy ``RawModule`` holding every kernel for float and double,
    compiled on first use. Its entry points are plain ``extern "C"`` names, so CuPy caches the
    binary on disk (``$CUPY_CACHE_DIR``) and later processes load it instead of compiling.
    Several launchers may share one.
    """

    def __init__(self) -> None:
        self._module: Any = None
        self._functions: dict[str, Any] = {}

    @property
    def compiled(self) -> bool:
        """Whether the module has been compiled (or loaded) in this process."""
        return self._module is not None

    def function(self, kernel: str, real_type: str, shared: int = 0) -> Any:
        """The compiled kernel ``kernel`` for ``real_type``, allowed ``shared`` bytes of dynamic
        shared memory.

        Args:
            kernel: a kernel name of ``statevector.cuh`` (e.g. ``"gq_apply"``).
            real_type: ``"float"`` or ``"double"``.
            shared: dynamic shared memory the launch will ask for, in bytes.
        """
        name = kernel_name(kernel, real_type)
        function = self._functions.get(name)
        if function is None:
            if self._module is None:
                cupy = _import_cupy()
                self._module = cupy.RawModule(code=kernel_source(), options=COMPILE_OPTIONS)
            function = self._functions[name] = self._module.get_function(name)
        if shared > _STATIC_SHARED_LIMIT and function.max_dynamic_shared_size_bytes < shared:
            function.max_dynamic_shared_size_bytes = shared
        return function


class _CupyMemory:
    """The LauncherBase hooks on a CUDA device through CuPy."""

    module: KernelModule
    real_type: str
    device_id: int
    _sm_count: int

    def _to_device(self, array: Any) -> Any:
        cupy = _import_cupy()
        return cupy.ascontiguousarray(cupy.asarray(array))

    def _empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return _import_cupy().empty(shape, dtype=dtype)

    def _to_host(self, array: Any) -> np.ndarray:
        cupy = _import_cupy()
        if isinstance(array, cupy.ndarray):
            return cupy.asnumpy(array)
        return np.asarray(array)

    def _execute(self, launch: Launch) -> None:
        function = self.module.function(launch.kernel, self.real_type, launch.shared)
        function((launch.grid,), (launch.block,), launch.args, shared_mem=launch.shared)

    def _default_max_blocks(self) -> int:
        return self._sm_count * _BLOCKS_PER_SM


def _end_failed_capture(stream: Any, error: BaseException) -> None:
    """End a stream capture that ``error`` interrupted, without letting the capture's own
    failure (CUDA reports an invalidated capture once a launch in it failed) replace ``error``,
    which the caller re-raises: the capture's is logged as a warning."""
    try:
        stream.end_capture()
    except Exception as second:  # noqa: BLE001 - logged; the first error is raised
        _LOG.warning(
            "ending the CUDA graph capture after %s: %s failed too: %r",
            type(error).__name__,
            error,
            second,
        )


def _device_attribute(cupy: ModuleType, name: str, device_id: int) -> int:
    runtime = cupy.cuda.runtime
    return int(runtime.deviceGetAttribute(getattr(runtime, name), device_id))


def shared_memory_limit(device_id: int | None = None) -> int:
    """Dynamic shared memory one block may opt into on a CUDA device, in bytes (227 KiB on an
    H100/H200, 163 KiB on an A100): pass it to :meth:`KernelTables.fits_fused` to choose
    between :class:`FusedLauncher` and :class:`PerOpLauncher`.

    Args:
        device_id: the device (default: CuPy's current device).

    Raises:
        RuntimeError: CuPy is not importable.
    """
    cupy = _import_cupy()
    index = int(cupy.cuda.Device().id) if device_id is None else int(device_id)
    return _device_attribute(cupy, "cudaDevAttrMaxSharedMemoryPerBlockOptin", index)


class FusedLauncher(_CupyMemory, FusedLauncherBase):
    """Every row's program and readout in ONE launch (one block per row, the state in shared
    memory), on the current CUDA device and stream.

    Args:
        tables: the encoded program and readout (``encode_tables``).
        dtype: ``"complex128"`` or ``"complex64"``, the states' dtype.
        threads: threads per block (default: ``tables.fused_threads()``).
        max_blocks: most blocks in the launch (default: 32 per multiprocessor).
        shared_limit: dynamic shared memory per block, in bytes (default: the device's opt-in
            limit).

    Raises:
        RuntimeError: CuPy is not importable.
        ValueError: a row does not fit the shared memory limit, or an option is not accepted.
    """

    def __init__(
        self,
        tables: KernelTables,
        dtype: object = "complex128",
        *,
        threads: int | None = None,
        max_blocks: int | None = None,
        shared_limit: int | None = None,
    ) -> None:
        cupy = _import_cupy()
        self.device_id = int(cupy.cuda.Device().id)
        self._sm_count = _device_attribute(cupy, "cudaDevAttrMultiProcessorCount", self.device_id)
        if shared_limit is None:
            shared_limit = shared_memory_limit(self.device_id)
        super().__init__(
            tables, dtype, threads=threads, max_blocks=max_blocks, shared_limit=shared_limit
        )
        if self.forward_kernel.threads < 32:
            raise ValueError(
                f"threads must be at least 32 (a warp) on a GPU, got {self.forward_kernel.threads}"
            )
        self._compiled: dict[str, Any] = {}

    def adjoint(self, base_angles: Any, slots: Any, cotangent: Any = None) -> Any:
        """:meth:`FusedLauncherBase.adjoint` on the launcher's device (a CuPy array)."""
        cupy = _import_cupy()
        with cupy.cuda.Device(self.device_id):
            return super().adjoint(base_angles, slots, cotangent)

    def forward_parameters(self, inputs: Any, weights: Any) -> Any:
        """:meth:`FusedLauncherBase.forward_parameters` on the launcher's device."""
        cupy = _import_cupy()
        with cupy.cuda.Device(self.device_id):
            return super().forward_parameters(inputs, weights)

    def adjoint_parameters(
        self, inputs: Any, weights: Any, slots: Any, columns: Any, cotangent: Any = None
    ) -> Any:
        """:meth:`FusedLauncherBase.adjoint_parameters` on the launcher's device."""
        cupy = _import_cupy()
        with cupy.cuda.Device(self.device_id):
            return super().adjoint_parameters(inputs, weights, slots, columns, cotangent)

    def _execute_generated(self, kernel: GeneratedKernel, launch: Launch) -> None:
        function = self._generated_function(kernel)
        function((launch.grid,), (launch.block,), launch.args, shared_mem=launch.shared)

    def _build_generated(self, kernel: GeneratedKernel) -> None:
        cupy = _import_cupy()
        with cupy.cuda.Device(self.device_id):  # also from a precompiling thread
            self._generated_function(kernel)

    def _generated_function(self, kernel: GeneratedKernel) -> Any:
        """The compiled kernel: a ``RawKernel``, which CuPy compiles with NVRTC on first use and
        caches on disk (``$CUPY_CACHE_DIR``, by default ``~/.cupy/kernel_cache``) under a hash
        of the source, options, NVRTC version and the device's architecture, so a circuit's
        kernels compile once per machine, not once per process."""
        function = self._compiled.get(kernel.key)
        if function is None:
            cupy = _import_cupy()
            function = cupy.RawKernel(kernel.source, kernel.name, options=COMPILE_OPTIONS)
            static = int(function.attributes["shared_size_bytes"])
            if kernel.shared + static > self.shared_limit:
                raise ValueError(
                    f"{kernel.name} needs {kernel.shared} bytes of dynamic and {static} of "
                    f"static shared memory per block, more than the device's "
                    f"{self.shared_limit}"
                )
            if kernel.shared > _STATIC_SHARED_LIMIT:
                function.max_dynamic_shared_size_bytes = kernel.shared
            self._compiled[kernel.key] = function
        return function

    def run(self, base_angles: Any, shift_slot: Any, shift_value: Any) -> Any:
        """Outputs of every (shift block, sample) row, in one launch on the current stream.

        Args:
            base_angles: (B, K) float64 angles of the samples (NumPy or CuPy).
            shift_slot: (S,) int32 slot shifted in each block of B rows, -1 for none.
            shift_value: (S,) float64 shift added to that slot's angle.

        Returns:
            (S * B, O) float64 CuPy array; row s * B + b is sample b with block s's shift.

        Raises:
            ValueError: an argument has the wrong shape, dtype or values.
        """
        cupy = _import_cupy()
        with cupy.cuda.Device(self.device_id):
            return super().run(base_angles, shift_slot, shift_value)


class PerOpLauncher(_CupyMemory, PerOpLauncherBase):
    """Per-op kernels over a (S * B, D) state tensor in global memory, for programs too large
    for the fused kernel. The first call of a (B, S) shape runs the launches directly; the
    second captures them in a CUDA graph, which later calls of that shape replay. Buffers and
    graph are kept for the last shape only.

    Work runs on the launcher's own stream, ordered after the caller's current stream, and the
    caller's stream waits for the result.

    Args:
        tables: the encoded program and readout (``encode_tables``).
        dtype: ``"complex128"`` or ``"complex64"``, the states' dtype.
        threads: threads per block (default 256).
        max_blocks: most blocks per launch (default: 32 per multiprocessor).
        use_graph: replay a captured CUDA graph for repeated shapes.
        module: a compiled module to share with other launchers (default: a new one).

    Raises:
        RuntimeError: CuPy is not importable.
        ValueError: an option is not accepted.
    """

    def __init__(
        self,
        tables: KernelTables,
        dtype: object = "complex128",
        *,
        threads: int | None = None,
        max_blocks: int | None = None,
        use_graph: bool = True,
        module: KernelModule | None = None,
    ) -> None:
        cupy = _import_cupy()
        self.device_id = int(cupy.cuda.Device().id)
        self._sm_count = _device_attribute(cupy, "cudaDevAttrMultiProcessorCount", self.device_id)
        super().__init__(tables, dtype, threads=threads, max_blocks=max_blocks)
        self.module = module if module is not None else KernelModule()
        self.use_graph = bool(use_graph)
        self._stream: Any = None
        self._ran: PerOpBuffers | None = None  # the buffers run once directly
        self._graph: Any = None
        self._graph_work: PerOpBuffers | None = None  # the buffers the graph was captured for
        self._angles: Any = None  # the generated angle kernel, compiled

    def precompile(self) -> int:
        """Compile (or load from CuPy's cache) the per-op module on the launcher's device; 1
        when this call built it, else 0."""
        if self.module.compiled:
            return 0
        cupy = _import_cupy()
        with cupy.cuda.Device(self.device_id):
            self.module.function("gq_init", self.real_type)
        return 1

    def run(self, base_angles: Any, shift_slot: Any, shift_value: Any) -> Any:
        """Outputs of every (shift block, sample) row.

        Args:
            base_angles: (B, K) float64 angles of the samples (NumPy or CuPy).
            shift_slot: (S,) int32 slot shifted in each block of B rows, -1 for none.
            shift_value: (S,) float64 shift added to that slot's angle.

        Returns:
            (S * B, O) float64 CuPy array, new; row s * B + b is sample b with block s's shift.

        Raises:
            ValueError: an argument has the wrong shape, dtype or values.
        """
        cupy = _import_cupy()
        with cupy.cuda.Device(self.device_id):
            caller = cupy.cuda.get_current_stream()
            if self._stream is None:
                self._stream = cupy.cuda.Stream(non_blocking=True)
            self._stream.wait_event(caller.record())
            with self._stream:
                out = super().run(base_angles, shift_slot, shift_value)
            caller.wait_event(self._stream.record())
        return out

    def parameter_angles(self, inputs: Any, weights: Any) -> Any:
        """:meth:`ParameterLaunches.parameter_angles` on the launcher's device."""
        cupy = _import_cupy()
        with cupy.cuda.Device(self.device_id):
            return super().parameter_angles(inputs, weights)

    def _execute_generated(self, kernel: GeneratedKernel, launch: Launch) -> None:
        function = self._angle_function(kernel)
        function((launch.grid,), (launch.block,), launch.args, shared_mem=launch.shared)

    def _build_generated(self, kernel: GeneratedKernel) -> None:
        self._angle_function(kernel)

    def _angle_function(self, kernel: GeneratedKernel) -> Any:
        """The generated angle kernel as a ``RawKernel`` (CuPy compiles it on first use and
        caches the binary on disk)."""
        if self._angles is None:
            cupy = _import_cupy()
            self._angles = cupy.RawKernel(kernel.source, kernel.name, options=COMPILE_OPTIONS)
        return self._angles

    def _make_buffers(self, batch: int, shifts: int) -> PerOpBuffers:
        self._graph = self._graph_work = self._ran = None  # they hold the old buffers
        return super()._make_buffers(batch, shifts)

    def _fill(
        self, work: PerOpBuffers, base_angles: Any, shift_slot: Any, shift_value: Any
    ) -> None:
        cupy = _import_cupy()
        work.base[...] = cupy.asarray(base_angles)
        work.shift_slot[...] = cupy.asarray(shift_slot)
        work.shift_value[...] = cupy.asarray(shift_value)

    def _copy(self, array: Any) -> Any:
        return array.copy()

    def _run_buffers(self, work: PerOpBuffers) -> None:
        if not self.use_graph:
            super()._run_buffers(work)
            return
        if self._graph_work is work:
            self._graph.launch(self._stream)
            return
        if self._ran is not work:  # first call of this shape: run directly (and load kernels)
            super()._run_buffers(work)
            self._ran = work
            return
        self._stream.begin_capture()
        try:
            for launch in work.launches:
                self._execute(launch)
        except BaseException as exc:
            _end_failed_capture(self._stream, exc)
            raise
        graph = self._stream.end_capture()
        self._graph, self._graph_work = graph, work
        graph.launch(self._stream)

"""Launches shared by the CuPy launchers (``cupy_launchers.py``) and their host twins
(``host.py``).

A launcher turns ``(base angles, shift_slot, shift_value)`` into kernel launches: which kernel,
what grid, block and shared memory, which arguments in which order. That logic is written
once here, against four hooks that a subclass provides (copy to its memory, allocate, read
back a small array, execute a launch), so the host build runs exactly the launches the GPU
runs. Nothing here imports CuPy.

Shapes: B samples, K angle slots, S shift blocks, R = S * B rows, O outputs, D = 2**n.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _profile
from .._sim.readout import ProbabilityReadout
from .angle_code import AngleCode
from .codegen import (
    FORWARD_PART_KERNEL,
    GeneratedKernel,
    adjoint_chain,
    forward_chain,
)
from .parameter_launches import AdjointKey, ParameterLaunches
from .passes import MAX_KERNEL_PASSES
from .source import REAL_TYPES, SIGNATURES, check_kernel_dtype
from .tables import (
    DEFAULT_SHARED_LIMIT,
    F_NPOS,
    H_OPS,
    MAX_THREADS,
    OP_FIELDS,
    READOUT_PAULI,
    READOUT_PROB_DIRECT,
    KernelTables,
)

_LOG = logging.getLogger(__name__)

PER_OP_THREADS = 256
DEFAULT_MAX_BLOCKS = 4096
_CHUNK_ITEMS_PER_THREAD = 16  # amplitudes per thread in one block of the Pauli partial kernel


@dataclass(frozen=True)
class Launch:
    """One kernel launch.

    Attributes:
        kernel: the kernel's name in ``statevector.cuh`` (a key of :data:`SIGNATURES`).
        grid: blocks.
        block: threads per block (a power of two, at most 512).
        shared: dynamic shared memory per block, in bytes.
        args: the arguments in the kernel's order: arrays, numpy int32/int64 scalars.
    """

    kernel: str
    grid: int
    block: int
    shared: int
    args: tuple


def make_launch(kernel: str, grid: int, block: int, shared: int, *values: Any) -> Launch:
    """A :class:`Launch` whose scalar arguments have the kernel's exact C types."""
    kinds = SIGNATURES[kernel]
    if len(values) != len(kinds):
        raise TypeError(f"{kernel} takes {len(kinds)} arguments, got {len(values)}")
    args = tuple(
        np.int32(v) if k == "i32" else np.int64(v) if k == "i64" else v
        for k, v in zip(kinds, values, strict=True)
    )
    return Launch(kernel, int(grid), int(block), int(shared), args)


def _check_threads(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < 1
        or value > MAX_THREADS
        or value & (value - 1)
    ):
        raise ValueError(
            f"{name} must be a power of two between 1 and {MAX_THREADS}, got {value!r}"
        )
    return int(value)


def _check_blocks(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"max_blocks must be a positive int, got {value!r}")
    return int(value)


class LauncherBase:
    """What both launchers share: the tables on the target memory, input checks, hooks.

    Args:
        tables: the encoded program and readout.
        dtype: complex64 or complex128, the states' dtype.
        threads: threads per block (a power of two <= 512); default: the launcher's choice.
        max_blocks: most blocks per launch (grid-stride loops cover the rest); default: the
            subclass's choice.

    Raises:
        TypeError: ``tables`` is not a KernelTables.
        ValueError: ``dtype``, ``threads`` or ``max_blocks`` is not an accepted value.
    """

    def __init__(
        self,
        tables: KernelTables,
        dtype: object,
        threads: int | None,
        max_blocks: int | None,
    ) -> None:
        if not isinstance(tables, KernelTables):
            raise TypeError(
                f"tables must be a KernelTables (from encode_tables), got {type(tables).__name__}"
            )
        self.tables = tables
        self.dtype = check_kernel_dtype(dtype)
        self.real_type = REAL_TYPES[self.dtype.name]
        self.threads = _check_threads("threads", threads)
        self.max_blocks = _check_blocks(max_blocks)
        self._tables: tuple[Any, Any, Any] | None = None

    # ---- hooks ----------------------------------------------------------------------------
    def _to_device(self, array: np.ndarray) -> Any:
        """Copy a host array to the launcher's memory."""
        raise NotImplementedError

    def _empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """An uninitialised array in the launcher's memory."""
        raise NotImplementedError

    def _to_host(self, array: Any) -> np.ndarray:
        """A host copy of a (small) array of the launcher's memory or of the host."""
        raise NotImplementedError

    def _execute(self, launch: Launch) -> None:
        """Run one launch."""
        raise NotImplementedError

    def _default_max_blocks(self) -> int:
        return DEFAULT_MAX_BLOCKS

    # ---- shared logic ---------------------------------------------------------------------
    def _device_tables(self) -> tuple[Any, Any, Any]:
        """(table, data, coeff) in the launcher's memory, copied once."""
        if self._tables is None:
            kp = self.tables
            self._tables = (
                self._to_device(kp.table),
                self._to_device(kp.data.astype(self.dtype)),
                self._to_device(kp.coeff),
            )
        return self._tables

    def _blocks(self, items: int, threads: int) -> int:
        limit = self.max_blocks or self._default_max_blocks()
        return max(1, min(-(-items // threads), limit))

    def _check_angles(self, base_angles: Any) -> int:
        """B after checking that ``base_angles`` is (B, K) float64.

        Raises:
            ValueError: it is not.
        """
        slots = self.tables.num_slots
        shape = getattr(base_angles, "shape", None)
        if shape is None or len(shape) != 2 or shape[1] != slots:
            raise ValueError(
                f"base_angles must have shape (B, {slots}) (one column per angle slot), got {shape}"
            )
        if getattr(base_angles, "dtype", None) != np.float64:
            raise ValueError(
                "base_angles must be float64, got "
                f"{getattr(base_angles, 'dtype', type(base_angles).__name__)}"
            )
        return int(shape[0])

    def _check_inputs(self, base_angles: Any, shift_slot: Any, shift_value: Any) -> tuple[int, int]:
        """(B, S) after checking the shapes, dtypes and slot values.

        Raises:
            ValueError: an argument has the wrong shape, dtype or values.
        """
        batch = self._check_angles(base_angles)
        slots = self.tables.num_slots
        slot_shape = getattr(shift_slot, "shape", None)
        value_shape = getattr(shift_value, "shape", None)
        if slot_shape is None or len(slot_shape) != 1 or slot_shape[0] < 1:
            raise ValueError(f"shift_slot must have shape (S,) with S >= 1, got {slot_shape}")
        if value_shape != slot_shape:
            raise ValueError(
                f"shift_value must have the shape of shift_slot, {slot_shape}, got {value_shape}"
            )
        if getattr(shift_slot, "dtype", None) != np.int32:
            raise ValueError(f"shift_slot must be int32, got {getattr(shift_slot, 'dtype', None)}")
        if getattr(shift_value, "dtype", None) != np.float64:
            raise ValueError(
                f"shift_value must be float64, got {getattr(shift_value, 'dtype', None)}"
            )
        values = self._to_host(shift_slot)
        if values.min() < -1 or values.max() >= slots:
            raise ValueError(
                f"shift_slot values must be -1 (unshifted) or a slot in "
                f"[0, {slots}), got values in [{values.min()}, {values.max()}]"
            )
        return batch, int(slot_shape[0])


class FusedLauncherBase(LauncherBase, ParameterLaunches):
    """The specialised fused kernels (:mod:`.codegen`): every row's whole program and readout
    in ONE launch, one block per row, the state in shared memory; and the fused adjoint kernel,
    one launch per backward pass or vector-Jacobian product.

    Args:
        tables: the encoded program and readout.
        dtype: complex64 or complex128.
        threads: threads per block (default: :func:`.codegen.default_threads`).
        max_blocks: most blocks in a launch (rows beyond are strided over).
        shared_limit: the device's dynamic shared memory per block (bytes).
        max_passes: passes per generated kernel at most; a deeper program runs as a chain of
            launches, each kernel compiled on its own (:data:`.passes.MAX_KERNEL_PASSES`;
            None: one kernel whatever the depth).

    Raises:
        ValueError: the program's rows do not fit ``shared_limit`` (see
            :meth:`KernelTables.fits_fused`), or an option is not accepted.
    """

    def __init__(
        self,
        tables: KernelTables,
        dtype: object = "complex128",
        *,
        threads: int | None = None,
        max_blocks: int | None = None,
        shared_limit: int = DEFAULT_SHARED_LIMIT,
        max_passes: int | None = MAX_KERNEL_PASSES,
    ) -> None:
        super().__init__(tables, dtype, threads, max_blocks)
        self.shared_limit = int(shared_limit)
        self.max_passes = max_passes
        self.forward_chain = forward_chain(tables, self.dtype, self.threads, max_passes)
        """The forward kernel, or the chain of kernels a forward pass launches in order."""
        self.forward_kernel = self.forward_chain[-1]
        if self.forward_kernel.shared > self.shared_limit:
            raise ValueError(
                f"the fused kernel needs {self.forward_kernel.shared} bytes of shared memory per "
                f"block for {tables.num_qubits} qubits in {self.dtype.name}, more than "
                f"the limit of {self.shared_limit}; use PerOpLauncher"
            )
        self._adjoint: dict[tuple[tuple[int, ...], bool], tuple[GeneratedKernel, ...] | None] = {}
        self._index: Any = None  # (D,) int32 probability index table, on the launcher's memory
        self._placeholder: Any = None  # for the arguments a launch does not read
        self._shifts: dict[tuple[bytes, bytes], tuple[Any, Any]] = {}  # host tables -> device
        self._lock = threading.Lock()
        self._built: set[str] = set()  # keys of the generated kernels built (build())
        self._code: AngleCode | None | bool = False  # the angle table as C (False: not yet)
        self._forward_parameters: GeneratedKernel | None = None
        self._adjoint_parameters: dict[AdjointKey, GeneratedKernel | None] = {}

    # ---- hooks ------------------------------------------------------------------------------
    def _execute_generated(self, kernel: GeneratedKernel, launch: Launch) -> None:
        """Run one launch of a generated kernel."""
        raise NotImplementedError

    def _build_generated(self, kernel: GeneratedKernel) -> None:
        """Compile (or load) a generated kernel for this launcher."""
        raise NotImplementedError

    def build(self, kernel: GeneratedKernel) -> None:
        """Compile ``kernel`` for this launcher unless done already, with an INFO log record of
        the first build (name, passes, dtype, seconds): a deep circuit's first call otherwise
        stalls silently while NVRTC runs (CuPy's disk cache may serve it in milliseconds)."""
        if kernel.key in self._built:
            return
        start = time.perf_counter()
        self._build_generated(kernel)
        with self._lock:
            self._built.add(kernel.key)
        _profile.count("compile_seconds", time.perf_counter() - start)
        if kernel.span is None:
            passes = f"{kernel.passes} passes"
        else:  # a part of a chain
            passes = f"passes {kernel.span[0]}-{kernel.span[1]} of {kernel.passes}"
        _LOG.info(
            "compiled %s (%s, %s) in %.2f s",
            kernel.name,
            passes,
            self.dtype.name,
            time.perf_counter() - start,
        )

    # ---- forward ----------------------------------------------------------------------------
    def run(self, base_angles: Any, shift_slot: Any, shift_value: Any) -> Any:
        """Outputs of every (shift block, sample) row, in one launch.

        Args:
            base_angles: (B, K) float64 angles of the samples.
            shift_slot: (S,) int32 slot shifted in each block of B rows, -1 for none.
            shift_value: (S,) float64 shift added to that slot's angle.

        Returns:
            (S * B, O) float64 outputs; row s * B + b is sample b with block s's shift.

        Raises:
            ValueError: an argument has the wrong shape, dtype or values.
        """
        batch, shifts = self._check_inputs(base_angles, shift_slot, shift_value)
        rows = batch * shifts
        out = self._empty((rows, self.tables.num_outputs), np.float64)
        if rows == 0:
            return out
        table, _data, coeff = self._device_tables()
        args: tuple[Any, ...] = (
            self._to_device(base_angles),
            np.int64(batch),
            *self._shift_tables(shift_slot, shift_value),
            np.int64(shifts),
            table,
            coeff,
            out,
        )
        chain = self.forward_chain
        if len(chain) > 1:  # each row's state between the chain's kernels
            args += (self._empty((rows, self.tables.dim), self.dtype),)
        self.precompile_kernels(chain)
        for kernel in chain:
            self._launch_generated(kernel, self._generated_launch(kernel, rows, args))
        return out

    def precompile_kernels(self, kernels: Sequence[GeneratedKernel]) -> int:
        """:meth:`build` each of ``kernels`` (a chain) not built yet; the number built now.
        Several are built at once, one thread each up to the cores there are (NVRTC releases
        the GIL), so that a chain's first call takes about its longest kernel's compile."""
        pending = list({k.key: k for k in kernels if k.key not in self._built}.values())
        workers = min(len(pending), os.cpu_count() or 1)
        if workers > 1:
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                for future in [pool.submit(self.build, kernel) for kernel in pending]:
                    future.result()  # the first error, if any
        else:
            for kernel in pending:
                self.build(kernel)
        return len(pending)

    @property
    def angle_code(self) -> AngleCode | None:
        """The angle table as C for the kernels that read parameter rows; None for a program
        chained over several kernels (its parts read (B, K) angles evaluated on the host, so a
        chained pass is a chain's launches plus the angle table's host calls) and for slot
        functions."""
        if len(self.forward_chain) > 1:
            return None
        return ParameterLaunches.angle_code.fget(self)  # type: ignore[attr-defined]

    def precompile(self, slots: Sequence[int] | None = None, vjp: bool = False) -> int:
        """Build the forward kernel (or chain) and, with ``slots``, the adjoint kernel(s) by
        them (a product with ``vjp``) where a row's states fit; the number built by this call
        (0 when all were built before). CuPy's disk cache may serve a build in milliseconds."""
        built = self.precompile_kernels(self.forward_chain)
        chain = None if not slots else self.adjoint_chain(slots, vjp)
        return built + (self.precompile_kernels(chain) if chain else 0)

    def state_bytes(self, rows: int = 1) -> int:
        """Global memory a forward launch of ``rows`` rows holds beyond its outputs: each row's
        state between a chain's kernels (0 for one kernel), in bytes."""
        chained = len(self.forward_chain) > 1
        return rows * self.tables.dim * self.dtype.itemsize if chained else 0

    def _shift_tables(self, shift_slot: Any, shift_value: Any) -> tuple[Any, Any]:
        """The shift tables in the launcher's memory. Host tables are copied once and kept (a
        parameter-shift pass launches the same plan for every chunk; a copy from pageable host
        memory would synchronise the stream each time)."""
        if not (isinstance(shift_slot, np.ndarray) and isinstance(shift_value, np.ndarray)):
            return self._to_device(shift_slot), self._to_device(shift_value)
        key = (shift_slot.tobytes(), shift_value.tobytes())
        with self._lock:  # user threads may share a network
            tables = self._shifts.get(key)
            if tables is None:
                if len(self._shifts) >= _KEPT_SHIFT_TABLES:
                    self._shifts.pop(next(iter(self._shifts)))
                tables = self._shifts[key] = (
                    self._to_device(shift_slot),
                    self._to_device(shift_value),
                )
        return tables

    # ---- adjoint ----------------------------------------------------------------------------
    def adjoint_kernel(self, slots: Sequence[int], vjp: bool) -> GeneratedKernel | None:
        """The fused adjoint kernel for ``slots`` (and a cotangent with ``vjp``), or None when
        a row's state and adjoint state do not fit the shared memory limit. Of a chain
        (:meth:`adjoint_chain`), the kernel that builds the adjoint states (its ``passes`` and
        ``keeps_final`` are the whole program's)."""
        chain = self.adjoint_chain(slots, vjp)
        if chain is None:
            return None
        return next(k for k in chain if k.name != FORWARD_PART_KERNEL)

    def adjoint_chain(self, slots: Sequence[int], vjp: bool) -> tuple[GeneratedKernel, ...] | None:
        """The kernels one adjoint launch runs, in order: one kernel, or above the cap on
        passes a chain (:func:`.codegen.adjoint_chain`); None where a row's states do not fit
        the shared memory limit."""
        key = (tuple(int(s) for s in slots), bool(vjp))
        if key not in self._adjoint:
            self._adjoint[key] = adjoint_chain(
                self.tables,
                self.dtype,
                key[0],
                key[1],
                self.shared_limit,
                self.threads,
                self.max_passes,
            )
        return self._adjoint[key]

    def adjoint_state_bytes(self, slots: Sequence[int], vjp: bool) -> int:
        """Global memory per sample an adjoint launch holds beyond its derivatives: a chain's
        state after its forward parts and, where earlier adjoint parts follow the tail, each
        output's state and adjoint state (0 for one kernel), in bytes."""
        chain = self.adjoint_chain(slots, vjp) or ()
        if len(chain) <= 1:
            return 0
        outputs = 1 if vjp else self.tables.num_outputs
        middles = sum(k.name != FORWARD_PART_KERNEL for k in chain) > 1
        return self.tables.dim * self.dtype.itemsize * (1 + (2 * outputs if middles else 0))

    def adjoint(self, base_angles: Any, slots: Sequence[int], cotangent: Any = None) -> Any:
        """Derivatives of the outputs by ``slots``, in ONE launch: per sample a forward sweep,
        then a backward sweep per output (or one for the cotangent).

        Args:
            base_angles: (B, K) float64 angles of the samples.
            slots: the S slots to differentiate by.
            cotangent: None, or (B, O) float64 ``g`` for ``sum_o g[b, o] d out[b, o]``.

        Returns:
            (B, O, S) float64 derivatives, or (B, 1, S) with a cotangent.

        Raises:
            ValueError: an argument has the wrong shape or dtype, or a row does not fit (check
                :meth:`adjoint_kernel` first).
        """
        kp = self.tables
        batch = self._check_angles(base_angles)
        bad = [s for s in slots if not 0 <= int(s) < kp.num_slots]
        if not len(slots) or bad or len(set(int(s) for s in slots)) != len(slots):
            raise ValueError(
                f"slots must be a non-empty list of distinct slots in [0, {kp.num_slots}), "
                f"got {list(slots)}"
            )
        vjp = cotangent is not None
        if vjp and (
            getattr(cotangent, "shape", None) != (batch, kp.num_outputs)
            or getattr(cotangent, "dtype", None) != np.float64
        ):
            raise ValueError(
                f"cotangent must be float64 of shape ({batch}, {kp.num_outputs}), got "
                f"{getattr(cotangent, 'dtype', None)} {getattr(cotangent, 'shape', None)}"
            )
        chain = self.adjoint_chain(slots, vjp)
        if chain is None:
            raise ValueError(
                f"the fused adjoint kernel does not fit {self.shared_limit} bytes of shared "
                f"memory for {kp.num_qubits} qubits in {self.dtype.name}"
            )
        outputs = 1 if vjp else kp.num_outputs
        out = self._empty((batch, outputs, len(slots)), np.float64)
        if batch == 0:
            return out
        if self._index is None:
            self._index = self._to_device(_probability_index(kp))
        base = self._to_device(base_angles)
        args: tuple[Any, ...] = (
            base,
            np.int64(batch),
            self._to_device(cotangent) if vjp else self._index_placeholder(),
            self._index,
            out,
        )
        self.precompile_kernels(chain)
        if len(chain) == 1:
            kernel = chain[0]
            self._launch_generated(kernel, self._generated_launch(kernel, batch, args))
            return out
        state = self._empty((batch, kp.dim), self.dtype)
        middles = sum(k.name != FORWARD_PART_KERNEL for k in chain) > 1
        saved = (batch * outputs, kp.dim) if middles else (1,)
        args += (state, self._empty(saved, self.dtype), self._empty(saved, self.dtype))
        _table, _data, coeff = self._device_tables()
        unshifted = self._shift_tables(np.full(1, -1, dtype=np.int32), np.zeros(1))
        forward: tuple[Any, ...] = (base, np.int64(batch), *unshifted, np.int64(1), _table, coeff)
        forward += (self._index_placeholder(), state)
        for kernel in chain:
            part = forward if kernel.name == FORWARD_PART_KERNEL else args
            self._launch_generated(kernel, self._generated_launch(kernel, batch, part))
        return out

    def _generated_launch(self, kernel: GeneratedKernel, rows: int, args: tuple) -> Launch:
        """A launch of a generated kernel over ``rows`` rows (one block each, strided)."""
        return Launch(kernel.name, self._grid(rows), kernel.threads, kernel.shared, args)

    def _index_table(self) -> Any:
        """(D,) int32 probability index table (a placeholder for Pauli readouts), on the
        launcher's memory, copied once."""
        if self._index is None:
            self._index = self._to_device(_probability_index(self.tables))
        return self._index

    def _index_placeholder(self) -> Any:
        if self._placeholder is None:
            self._placeholder = self._to_device(np.zeros(1))
        return self._placeholder

    def _grid(self, rows: int) -> int:
        return int(min(rows, self.max_blocks or self._default_max_blocks()))


_KEPT_SHIFT_TABLES = 8  # the shift plans a fused launcher keeps on the device (oldest dropped)


def _probability_index(kp: KernelTables) -> np.ndarray:
    """(D,) int32 output of each basis state (-1: dropped) for probability readouts; else a
    placeholder."""
    if not isinstance(kp.readout, ProbabilityReadout):
        return np.zeros(1, dtype=np.int32)
    return np.ascontiguousarray(np.asarray(kp.readout.index), dtype=np.int32)


@dataclass
class PerOpBuffers:
    """The buffers and launches of the per-op path for one (B, S) shape.

    Attributes:
        batch: B.
        shifts: S.
        base: (B, K) float64 angles buffer.
        shift_slot: (S,) int32 buffer.
        shift_value: (S,) float64 buffer.
        psi: (R, D) complex states.
        factors: (R * K * 2,) complex (cos, sin) of each row's slot half angles and angles.
        partial: (partials,) float64 readout partial sums (at least one element).
        out: (R, O) float64 outputs.
        launches: the launches, in order, that fill ``out`` from the input buffers.
    """

    batch: int
    shifts: int
    base: Any
    shift_slot: Any
    shift_value: Any
    psi: Any
    factors: Any
    partial: Any
    out: Any
    launches: list[Launch]


class PerOpLauncherBase(LauncherBase, ParameterLaunches):
    """Per-op kernels over a (R, D) state tensor in global memory, for states too large for
    shared memory: one launch to initialise, one per op, then the readout's two launches.

    The buffers of the last (B, S) shape are kept and reused (one shape at a time), so that a
    subclass can replay the same launches (a CUDA graph) on new input values.

    Args:
        tables: the encoded program and readout.
        dtype: complex64 or complex128.
        threads: threads per block (default 256).
        max_blocks: most blocks per launch (grid-stride loops cover the rest).
    """

    def __init__(
        self,
        tables: KernelTables,
        dtype: object = "complex128",
        *,
        threads: int | None = None,
        max_blocks: int | None = None,
    ) -> None:
        super().__init__(tables, dtype, threads, max_blocks)
        self._workspace: PerOpBuffers | None = None

    def run(self, base_angles: Any, shift_slot: Any, shift_value: Any) -> Any:
        """Outputs of every (shift block, sample) row.

        Args:
            base_angles: (B, K) float64 angles of the samples.
            shift_slot: (S,) int32 slot shifted in each block of B rows, -1 for none.
            shift_value: (S,) float64 shift added to that slot's angle.

        Returns:
            (S * B, O) float64 outputs, a new array; row s * B + b is sample b with block s's
            shift.

        Raises:
            ValueError: an argument has the wrong shape, dtype or values.
        """
        batch, shifts = self._check_inputs(base_angles, shift_slot, shift_value)
        if batch == 0:
            return self._empty((0, self.tables.num_outputs), np.float64)
        work = self._workspace
        if work is None or (work.batch, work.shifts) != (batch, shifts):
            self._workspace = None  # free the old buffers before allocating new ones
            work = self._workspace = self._make_buffers(batch, shifts)
        self._fill(work, base_angles, shift_slot, shift_value)
        _profile.count("launches", len(work.launches))
        self._run_buffers(work)
        _profile.count("host_ops", 4)  # the three input copies (_fill) and the output's
        return self._copy(work.out)

    def precompile(self) -> int:
        """Build the per-op kernels where they are compiled at run time (CuPy: one module);
        the number of modules built by this call (the host build is built beforehand: 0)."""
        return 0

    def _generated_launch(self, kernel: GeneratedKernel, rows: int, args: tuple) -> Launch:
        """A launch of a generated kernel (the angle kernel) over ``rows`` rows."""
        grid = int(min(rows, self.max_blocks or self._default_max_blocks()))
        return Launch(kernel.name, grid, kernel.threads, kernel.shared, args)

    def _execute_generated(self, kernel: GeneratedKernel, launch: Launch) -> None:
        """Run one launch of a generated kernel (the angle kernel)."""
        raise NotImplementedError

    def _build_generated(self, kernel: GeneratedKernel) -> None:
        """Compile (or load) a generated kernel (the angle kernel)."""
        raise NotImplementedError

    # ---- hooks beyond LauncherBase's -----------------------------------------------------------
    def _fill(
        self, work: PerOpBuffers, base_angles: Any, shift_slot: Any, shift_value: Any
    ) -> None:
        """Copy the inputs into the workspace's buffers."""
        raise NotImplementedError

    def _copy(self, array: Any) -> Any:
        """A new array with the values of ``array``."""
        raise NotImplementedError

    def _run_buffers(self, work: PerOpBuffers) -> None:
        """Run the workspace's launches (a subclass may replay them as a graph)."""
        for launch in work.launches:
            self._execute(launch)

    # ---- the plan -------------------------------------------------------------------------
    def _make_buffers(self, batch: int, shifts: int) -> PerOpBuffers:
        kp = self.tables
        threads = self.threads or PER_OP_THREADS
        rows = batch * shifts
        n, dim = kp.num_qubits, kp.dim
        tables = self._device_tables()
        table, data, coeff = tables
        base = self._empty((batch, kp.num_slots), np.float64)
        slot = self._empty((shifts,), np.int32)
        value = self._empty((shifts,), np.float64)
        psi = self._empty((rows, dim), self.dtype)
        factors = self._empty((max(1, rows * kp.num_slots * 2),), self.dtype)
        out = self._empty((rows, kp.num_outputs), np.float64)
        launches = [
            make_launch("gq_init", self._blocks(rows * dim, threads), threads, 0, psi, n, rows),
            make_launch(
                "gq_factors",
                self._blocks(rows * kp.num_slots, threads),
                threads,
                0,
                base,
                batch,
                kp.num_slots,
                slot,
                value,
                shifts,
                factors,
            ),
        ]
        for i in range(kp.num_ops):
            npos = int(kp.table[int(kp.table[H_OPS]) + OP_FIELDS * i + F_NPOS])
            items = rows << (n - npos)
            launches.append(
                make_launch(
                    "gq_apply",
                    self._blocks(items, threads),
                    threads,
                    0,
                    table,
                    data,
                    i,
                    factors,
                    kp.num_slots,
                    rows,
                    psi,
                )
            )
        if kp.readout_kind == READOUT_PAULI:
            chunk = min(dim, threads * _CHUNK_ITEMS_PER_THREAD)
            log_chunks = n - (chunk.bit_length() - 1)
            blocks = (rows * kp.num_items) << log_chunks
            partial = self._empty((max(1, blocks),), np.float64)
            if blocks:
                launches.append(
                    make_launch(
                        "gq_pauli_partial",
                        min(blocks, self.max_blocks or self._default_max_blocks()),
                        threads,
                        8 * threads,
                        table,
                        coeff,
                        psi,
                        rows,
                        log_chunks,
                        partial,
                    )
                )
            launches.append(
                make_launch(
                    "gq_pauli_reduce",
                    self._blocks(rows * kp.num_outputs, threads),
                    threads,
                    0,
                    table,
                    partial,
                    rows,
                    log_chunks,
                    out,
                )
            )
        elif kp.readout_kind == READOUT_PROB_DIRECT:
            partial = self._empty((1,), np.float64)
            launches.append(
                make_launch(
                    "gq_prob_direct",
                    self._blocks(rows * dim, threads),
                    threads,
                    0,
                    table,
                    psi,
                    rows,
                    out,
                )
            )
        else:
            partial = self._empty((max(1, rows * kp.num_items),), np.float64)
            launches.append(
                make_launch(
                    "gq_prob_pieces",
                    self._blocks(rows * kp.num_items, threads),
                    threads,
                    0,
                    table,
                    psi,
                    rows,
                    partial,
                )
            )
            launches.append(
                make_launch(
                    "gq_prob_reduce",
                    self._blocks(rows * kp.num_outputs, threads),
                    threads,
                    0,
                    table,
                    partial,
                    rows,
                    out,
                )
            )
        return PerOpBuffers(batch, shifts, base, slot, value, psi, factors, partial, out, launches)

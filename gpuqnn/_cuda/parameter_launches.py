"""The launches from parameter rows, the part of the launchers that serves
:attr:`Capability.PARAMETERS`: on the fused kernels a forward pass and an adjoint pass (Jacobian
or vector-Jacobian product by parameter columns) are ONE launch each of a kernel generated with
the angle table as C (:mod:`.angle_code`), which reads the raw parameter rows; the per-op
kernels get every angle from ONE launch of the generated angle kernel. Nothing here imports
CuPy; launches, output arrays and copies are counted in the profile in effect
(:mod:`gpuqnn._profile`).

Shapes: B samples, nin the columns read per sample, P parameters, S slots, J columns, O outputs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _profile
from .angle_code import AngleCode, angle_code
from .codegen import GeneratedKernel, generate_adjoint, generate_angles, generate_forward
from .tables import KernelTables

AdjointKey = tuple[tuple[int, ...], tuple[int, ...], bool]
"""(slots, columns, vjp) of a generated adjoint kernel by parameter columns."""

_UNSHIFTED = (np.full(1, -1, dtype=np.int32), np.zeros(1))


class ParameterLaunches:
    """Launches from parameter rows, a mixin of the launchers (which provide the memory hooks
    and the tables): :meth:`parameter_angles` for every launcher, :meth:`forward_parameters`
    and :meth:`adjoint_parameters` for the fused ones (which also provide the shared memory
    limit and the generated kernels' builds)."""

    tables: KernelTables
    dtype: np.dtype
    threads: int | None
    shared_limit: int
    _code: AngleCode | None | bool = False  # the angle table as C (False: not made yet)
    _angles_kernel: GeneratedKernel | None = None
    _angles_built: bool = False
    _forward_parameters: GeneratedKernel | None
    _adjoint_parameters: dict[AdjointKey, GeneratedKernel | None]

    if TYPE_CHECKING:  # provided by the launchers

        def _to_device(self, array: np.ndarray) -> Any: ...
        def _empty(self, shape: tuple[int, ...], dtype: Any) -> Any: ...
        def _execute_generated(self, kernel: GeneratedKernel, launch: Any) -> None: ...
        def _device_tables(self) -> tuple[Any, Any, Any]: ...
        def _shift_tables(self, shift_slot: Any, shift_value: Any) -> tuple[Any, Any]: ...
        def _grid(self, rows: int) -> int: ...
        def _index_table(self) -> Any: ...
        def _index_placeholder(self) -> Any: ...
        def _build_generated(self, kernel: GeneratedKernel) -> None: ...
        def build(self, kernel: GeneratedKernel) -> None: ...
        def _generated_launch(self, kernel: GeneratedKernel, rows: int, args: tuple) -> Any: ...

    def _launch_generated(self, kernel: GeneratedKernel, launch: Any) -> None:
        """Run one launch of a generated kernel, counted in the profile in effect."""
        _profile.count("launches")
        self._execute_generated(kernel, launch)

    def _output(self, shape: tuple[int, ...]) -> Any:
        """A new float64 output array in the launcher's memory (one array call)."""
        _profile.count("host_ops")
        return self._empty(shape, np.float64)

    def _parameters_on_device(self, array: Any) -> Any:
        """``array`` in the launcher's memory: no copy for an array already there (the
        simulator copies parameters once per call); a host array is copied and counted."""
        if isinstance(array, np.ndarray) and not self._host_is_device():
            _profile.count("host_to_device_bytes", array.nbytes)
            _profile.count("host_ops")
        return self._to_device(array)

    def _host_is_device(self) -> bool:
        """Whether the launcher's memory is the host's (the host build)."""
        return False

    @property
    def angle_code(self) -> AngleCode | None:
        """The program's angle table as C, or None when its angles stay on the host (slot
        functions): then only the ``base``-angle kernels serve it."""
        if self._code is False:
            self._code = angle_code(self.tables.program.angles)
        assert not isinstance(self._code, bool)
        return self._code

    def forward_parameter_kernel(self) -> GeneratedKernel:
        """The forward kernel that computes each row's angles from its parameters.

        Raises:
            ValueError: the angle table has no C form (:attr:`angle_code` is None).
        """
        code = self._require_code()
        if self._forward_parameters is None:
            self._forward_parameters = generate_forward(
                self.tables, self.dtype, self.threads, code=code
            )
        return self._forward_parameters

    def adjoint_parameter_kernel(
        self, slots: Sequence[int], columns: Sequence[int], vjp: bool
    ) -> GeneratedKernel | None:
        """The adjoint kernel by parameter ``columns`` (whose dependent slots are ``slots``),
        or None when a row's states do not fit the shared memory limit.

        Raises:
            ValueError: the angle table has no C form (:attr:`angle_code` is None).
        """
        code = self._require_code()
        key = (tuple(int(s) for s in slots), tuple(int(j) for j in columns), bool(vjp))
        if key not in self._adjoint_parameters:
            self._adjoint_parameters[key] = generate_adjoint(
                self.tables,
                self.dtype,
                key[0],
                key[2],
                self.shared_limit,
                self.threads,
                code=code,
                columns=key[1],
            )
        return self._adjoint_parameters[key]

    def precompile_angles(self) -> int:
        """Build the angle kernel of :meth:`parameter_angles` unless built; the number built."""
        if self._angles_built or self.tables.num_slots == 0:
            return 0
        if self._angles_kernel is None:
            self._angles_kernel = generate_angles(self.tables, self._require_code())
        start = time.perf_counter()
        self._build_generated(self._angles_kernel)
        self._angles_built = True
        _profile.count("compile_seconds", time.perf_counter() - start)
        return 1

    def precompile_parameters(
        self, slots: Sequence[int] | None, columns: Sequence[int], vjp: bool
    ) -> int:
        """Build the forward kernel that reads parameter rows, or with ``slots`` the adjoint
        kernel by the parameter ``columns`` (a product with ``vjp``) where a row's states fit;
        the number built by this call (0 when built before)."""
        if slots:
            kernel = self.adjoint_parameter_kernel(slots, columns, vjp)
        else:
            kernel = self.forward_parameter_kernel()
        if kernel is None or kernel.key in self._built_keys():
            return 0
        self.build(kernel)
        return 1

    def _built_keys(self) -> set[str] | frozenset[str]:
        """The keys of the generated kernels built so far (the fused launchers keep them)."""
        return getattr(self, "_built", frozenset())

    def parameter_angles(self, inputs: Any, weights: Any) -> Any:
        """Every slot's angle of every sample from its parameters: ONE launch of the generated
        angle kernel (the per-op kernels' angles; the fused kernels compute their own).

        Args:
            inputs: (B, nin) float64 C-contiguous: each sample's first nin parameters.
            weights: (P - nin,) float64: the other parameters, shared by every sample.

        Returns:
            (B, K) float64 angles.

        Raises:
            ValueError: an argument has the wrong shape or dtype, or the angle table has no C
                form.
        """
        code = self._require_code()
        batch = self._check_parameters(inputs, weights)
        out = self._output((batch, self.tables.num_slots))
        if batch == 0 or self.tables.num_slots == 0:
            return out
        if self._angles_kernel is None:
            self._angles_kernel = generate_angles(self.tables, code)
        kernel = self._angles_kernel
        self.precompile_angles()
        args = (
            self._parameters_on_device(inputs),
            self._parameters_on_device(weights),
            np.int64(inputs.shape[1]),
            np.int64(batch),
            out,
        )
        self._launch_generated(kernel, self._generated_launch(kernel, batch, args))
        return out

    def _require_code(self) -> AngleCode:
        code = self.angle_code
        if code is None:
            raise ValueError(
                "this program's angles are evaluated on the host (an amplitude encoding's slot "
                "functions, or a program chained over several kernels); use run/adjoint with "
                "base angles"
            )
        return code

    def _check_parameters(self, inputs: Any, weights: Any) -> int:
        """B after checking (B, nin) float64 ``inputs`` and (P - nin,) float64 ``weights``."""
        num = self.tables.program.angles.num_parameters
        shape, wshape = getattr(inputs, "shape", None), getattr(weights, "shape", None)
        if shape is None or len(shape) != 2 or wshape is None or len(wshape) != 1:
            raise ValueError(
                f"inputs must be (B, nin) and weights (P - nin,) arrays, got shapes {shape} "
                f"and {wshape}"
            )
        if shape[1] + wshape[0] != num:
            raise ValueError(
                f"inputs' columns plus weights must be the program's {num} parameters, got "
                f"{shape[1]} + {wshape[0]}"
            )
        for name, array in (("inputs", inputs), ("weights", weights)):
            if getattr(array, "dtype", None) != np.float64:
                raise ValueError(f"{name} must be float64, got {getattr(array, 'dtype', None)}")
        return int(shape[0])

    def forward_parameters(self, inputs: Any, weights: Any) -> Any:
        """Outputs of every sample, its angles computed in the kernel: ONE launch.

        Args:
            inputs: (B, nin) float64 C-contiguous: each sample's first nin parameters.
            weights: (P - nin,) float64: the other parameters, shared by every sample.

        Returns:
            (B, O) float64 outputs.

        Raises:
            ValueError: an argument has the wrong shape or dtype, or the angle table has no C
                form.
        """
        batch = self._check_parameters(inputs, weights)
        out = self._output((batch, self.tables.num_outputs))
        if batch == 0:
            return out
        table, _data, coeff = self._device_tables()
        kernel = self.forward_parameter_kernel()
        launch = self._generated_launch(
            kernel,
            batch,
            (
                self._parameters_on_device(inputs),
                self._parameters_on_device(weights),
                np.int64(inputs.shape[1]),
                np.int64(batch),
                *self._shift_tables(*_UNSHIFTED),
                np.int64(1),
                table,
                coeff,
                out,
            ),
        )
        self.build(kernel)
        self._launch_generated(kernel, launch)
        return out

    def adjoint_parameters(
        self,
        inputs: Any,
        weights: Any,
        slots: Sequence[int],
        columns: Sequence[int],
        cotangent: Any = None,
    ) -> Any:
        """Derivatives of the outputs by parameter ``columns``, in ONE launch: per sample the
        angles and their derivatives from its parameters, a forward sweep, a backward sweep
        per output (or one for the cotangent), and the chain rule, each slot adding only into
        its own columns.

        Args:
            inputs: (B, nin) float64 C-contiguous: each sample's first nin parameters.
            weights: (P - nin,) float64: the other parameters, shared by every sample.
            slots: the S slots whose angles depend on any of ``columns``.
            columns: the J parameter columns.
            cotangent: None, or (B, O) float64 ``g`` for ``sum_o g[b, o] d out[b, o]``.

        Returns:
            (B, O, J) float64 derivatives, or (B, 1, J) with a cotangent.

        Raises:
            ValueError: an argument has the wrong shape or dtype, a row does not fit, or the
                angle table has no C form.
        """
        kp = self.tables
        batch = self._check_parameters(inputs, weights)
        num = kp.program.angles.num_parameters
        if not len(columns) or any(not 0 <= int(j) < num for j in columns):
            raise ValueError(f"columns must be a non-empty list in [0, {num}), got {columns}")
        vjp = cotangent is not None
        if vjp and getattr(cotangent, "shape", None) != (batch, kp.num_outputs):
            raise ValueError(
                f"cotangent must be float64 of shape ({batch}, {kp.num_outputs}), got "
                f"{getattr(cotangent, 'shape', None)}"
            )
        kernel = self.adjoint_parameter_kernel(slots, columns, vjp)
        if kernel is None:
            raise ValueError(
                f"the fused adjoint kernel does not fit {self.shared_limit} bytes of shared "
                f"memory for {kp.num_qubits} qubits in {self.dtype.name}"
            )
        out = self._output((batch, 1 if vjp else kp.num_outputs, len(columns)))
        if batch == 0:
            return out
        launch = self._generated_launch(
            kernel,
            batch,
            (
                self._parameters_on_device(inputs),
                self._parameters_on_device(weights),
                np.int64(inputs.shape[1]),
                np.int64(batch),
                self._parameters_on_device(cotangent) if vjp else self._index_placeholder(),
                self._index_table(),
                out,
            ),
        )
        self.build(kernel)
        self._launch_generated(kernel, launch)
        return out

"""Every check of a user-supplied option, and the one frozen object the checked options travel in.

Options are checked once, at the boundary (a network's or a primitive's constructor), into a
:class:`SimulatorOptions`; everything below takes that object and trusts it. Each check raises
with the argument's name, what was expected and what came.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, TypeVar

import numpy as np
from qiskit.circuit import Parameter, QuantumCircuit

DTYPES: dict[str, np.dtype] = {
    "complex128": np.dtype(np.complex128),
    "complex64": np.dtype(np.complex64),
}
"""The statevectors' dtypes by name; parameters and outputs are always float64."""

GRADIENT_METHODS = ("auto", "adjoint", "parameter_shift")
"""``gradient_method`` values: ``auto`` compares the strategies' costs (see ``gpuqnn._sim``)."""

KERNEL_MODES = ("auto", "fused", "per_op", "none")
"""CUDA kernel choices: fused where a row fits shared memory (``auto``), one kind only, or the
block engine only (``none``); see :mod:`gpuqnn._cuda.runner`."""

ENGINES = ("auto", "native", "numpy")
"""CPU engine choices: the native engine where it is built and serves the circuit (``auto``),
the native engine or an error (``native``), or the NumPy block engine (``numpy``); see
:mod:`gpuqnn._native.runner`."""

CUDA_DEVICE = re.compile(r"^cuda(?::(\d+))?$")
"""``cuda`` (the current CUDA device) or ``cuda:N``."""

CUDA_INDEX = re.compile(r"^cuda:\d+$")
"""``cuda:N`` only."""


OPTION_DOCS: dict[str, str] = {
    "device": (
        '``"auto"`` (default), ``"cpu"``, ``"gpu"``, ``"cuda"``, ``"cuda:N"``, ``"cuda:all"`` or '
        'a list of ``"cuda:N"``. ``"auto"``, ``"gpu"`` and ``"cuda"`` mean the current CUDA '
        "device, or under ``torchrun`` (``LOCAL_RANK`` set) the rank's device by the rule of "
        ":func:`gpuqnn.distributed.local_device`: device 0 where one device is visible, else "
        "device ``LOCAL_RANK``, and ``RuntimeError`` where ``LOCAL_RANK`` is not below the "
        'number of visible devices. ``"auto"`` falls back to NumPy on the CPU (a ``logging`` '
        "record says why) when CuPy, NVRTC, cuBLAS or a CUDA device is missing; an explicit GPU "
        'request without one raises ``RuntimeError``. ``"cuda:all"`` (every visible device) or a '
        "list shards each pass's samples over those devices: networks without shots only (the "
        "primitives run on one device)."
    ),
    "dtype": (
        '``"complex128"`` (default) or ``"complex64"``: the statevectors\' precision; '
        "parameters and outputs are float64 either way."
    ),
    "gradient_method": (
        '``"auto"`` (default: the cheaper of adjoint and parameter shift by a cost model over '
        'the fused circuit; parameter shift with shots), ``"adjoint"`` (not with shots) or '
        '``"parameter_shift"``.'
    ),
    "max_memory": (
        "bound in bytes (an int, or a whole float such as ``8e6``) on what a pass holds at "
        'once: rows are processed in chunks that fit; ``"auto"``/None (default): half of the '
        "free memory, divided among the node's processes that share the device under "
        "``torchrun`` (``LOCAL_WORLD_SIZE``). With several devices it applies per device."
    ),
    "threads": (
        "worker threads of the CPU passes (one on a GPU); None (default): ``OMP_NUM_THREADS`` "
        "when it is set (as ``torchrun``, Ray and Dask set it), else the cores this process may "
        "use, at most 8."
    ),
    "engine": (
        '``"auto"`` (default), ``"native"`` or ``"numpy"``: what runs the passes on the CPU. '
        '``"auto"`` uses the native C++ engine where it was built at install time (a C++ '
        "compiler was present) and serves the circuit of at most 10 simulated qubits (above, "
        "the NumPy block engine measured as fast or faster), else the NumPy block engine (a "
        "``logging`` record at INFO says why); the environment variable ``GPUQNN_ENGINE=numpy`` "
        'forces NumPy where the option is ``"auto"``. ``"native"`` raises ``ValueError`` where '
        "the native engine cannot serve. ``repr`` of a network names the engine that runs."
    ),
    "shots": (
        "None (default) for exact probabilities; a positive int to sample that many shots per "
        "row (forward rows and every shifted row of the backward pass) from the exact states."
    ),
    "seed": (
        "seed of the shot sampling: None, a non-negative int or a NumPy Generator. With an int, "
        "each ``forward``/``backward`` call draws from a generator seeded alike, so a call "
        "repeats its result for the same inputs and weights (like qiskit's "
        "``StatevectorSampler(seed=...)``)."
    ),
    "noise_model": (
        "None (default) or a ``qiskit_aer.noise.NoiseModel`` (``pip install gpuqnn[noise]``), "
        "with ``AerSimulator(noise_model=...)``'s meaning: each error on an instruction name "
        "(all qubits, or specific qubits) follows every such instruction of the circuit (gates "
        "qiskit-aer does not run natively are decomposed first), errors on ``measure`` and "
        "readout errors precede final measurements. Outputs are then exact over the density "
        "matrix: ``4**n`` amplitudes per row. A model gpuqnn cannot honour is refused."
    ),
    "noise_method": (
        '``"density_matrix"`` (default: exact, ``4**n`` amplitudes per row) or '
        '``"trajectories"`` (``trajectories`` pure-state rows per sample, each noise location\'s '
        "Kraus operator drawn with its probability; outputs and gradients are their averages, "
        "gradients by parameter shift with common random numbers)."
    ),
    "trajectories": 'rows per sample with ``noise_method="trajectories"`` (default 256).',
    "noise_seed": (
        "seed of the trajectories: None, a non-negative int or a NumPy Generator; with an int "
        "each call draws alike, so it repeats its result."
    ),
}
"""The one text of each simulator option, in the Google style of an ``Args`` entry: the
networks' and primitives' docstrings are built from it by :func:`document_options`."""

_OPTIONS_MARKER = re.compile(r"^(?P<indent>[ \t]*)\{options: (?P<names>[a-z_, ]+)\}[ \t]*$", re.M)

_Documented = TypeVar("_Documented", bound=type)


def document_options(cls: _Documented) -> _Documented:
    """Class decorator: replace each line ``{options: device, dtype, ...}`` of the class's
    docstring (inside its ``Args:`` section) by those options' :data:`OPTION_DOCS` entries,
    indented like the line, so that ``help(cls)`` shows them.

    Raises:
        ValueError: the docstring has no such line, or names an option without a text.
    """
    if cls.__doc__ is None:  # python -OO strips docstrings
        return cls
    if _OPTIONS_MARKER.search(cls.__doc__) is None:
        raise ValueError(f"{cls.__name__}'s docstring has no '{{options: ...}}' line")

    def expand(match: re.Match[str]) -> str:
        indent = match.group("indent")
        entries = []
        for name in (n.strip() for n in match.group("names").split(",")):
            if name not in OPTION_DOCS:
                raise ValueError(f"{cls.__name__}'s docstring names {name!r}, which has no text")
            entries.append(
                textwrap.fill(
                    f"{name}: {OPTION_DOCS[name]}",
                    width=100,
                    initial_indent=indent,
                    subsequent_indent=indent + "    ",
                    break_on_hyphens=False,
                )
            )
        return "\n".join(entries)

    cls.__doc__ = _OPTIONS_MARKER.sub(expand, cls.__doc__)
    return cls


def check_device(device: Any) -> str | tuple[str, ...]:
    """``device`` checked: 'auto', 'cpu', 'gpu', 'cuda', 'cuda:N', 'cuda:all' (every visible
    CUDA device), or a list of two or more distinct 'cuda:N' (returned as a tuple)."""
    if isinstance(device, (list, tuple)):
        names = tuple(device)
        if (
            len(names) < 2
            or not all(isinstance(d, str) and CUDA_INDEX.match(d) for d in names)
            or len(set(names)) != len(names)
        ):
            raise ValueError(
                "device as a list must name two or more distinct CUDA devices such as "
                f"['cuda:0', 'cuda:1'], got {device!r}"
            )
        return names
    if not isinstance(device, str) or not (
        device in ("auto", "cpu", "gpu", "cuda:all") or CUDA_DEVICE.match(device)
    ):
        raise ValueError(
            "device must be 'auto', 'cpu', 'gpu', 'cuda', 'cuda:N', 'cuda:all' or a list of "
            f"'cuda:N', got {device!r}"
        )
    return device


def check_dtype(dtype: Any) -> str:
    """The dtype's name; raise ValueError unless it is complex128 or complex64 (a name or a
    NumPy dtype)."""
    try:
        name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return name


def check_gradient_method(method: Any) -> str:
    """``method``; raise ValueError unless it is one of :data:`GRADIENT_METHODS`."""
    if not isinstance(method, str) or method not in GRADIENT_METHODS:
        raise ValueError(f"gradient_method must be one of {GRADIENT_METHODS}, got {method!r}")
    return method


def check_kernel_mode(mode: Any) -> str:
    """``mode``; raise ValueError unless it is one of :data:`KERNEL_MODES`."""
    if not isinstance(mode, str) or mode not in KERNEL_MODES:
        raise ValueError(f"kernels must be one of {KERNEL_MODES}, got {mode!r}")
    return mode


def check_engine(engine: Any) -> str:
    """``engine``; raise ValueError unless it is one of :data:`ENGINES`."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return engine


def check_max_memory(max_memory: Any) -> int | None:
    """None or 'auto' -> None (half of the free memory at call time); else a positive whole
    number of bytes (an int, or a float such as ``8e6`` with no fractional part) as an int."""
    if max_memory is None or max_memory == "auto":
        return None
    whole = (
        not isinstance(max_memory, bool)
        and isinstance(max_memory, Real)
        and np.isfinite(float(max_memory))
        and float(max_memory).is_integer()
    )
    if not whole or float(max_memory) <= 0:
        raise ValueError(
            "max_memory must be a positive whole number of bytes (e.g. 2**28 or 8e6) or 'auto', "
            f"got {max_memory!r}"
        )
    return int(max_memory)


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int; raise ValueError unless it is a positive int (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_threads(threads: Any) -> int | None:
    """None (the default: ``OMP_NUM_THREADS`` if set, else the CPU cores this process may use)
    or a positive int of worker threads."""
    if threads is None:
        return None
    return check_positive_int(threads, "threads")


NOISE_METHODS = ("density_matrix", "trajectories")
"""The values of ``noise_method``."""


def check_noise_method(
    method: Any, trajectories: Any, seed: Any, gradient_method: str
) -> tuple[int, Any] | None:
    """None for exact density matrices, or (trajectories, seed) for trajectories.

    Raises:
        ValueError: an unknown method, a non-positive number of trajectories, or the adjoint
            method with trajectories.
        TypeError: an invalid seed.
    """
    if method not in NOISE_METHODS:
        raise ValueError(f"noise_method must be one of {NOISE_METHODS}, got {method!r}")
    count = check_positive_int(trajectories, "trajectories")
    check_seed(seed)
    if method == "density_matrix":
        return None
    if gradient_method == "adjoint":
        raise ValueError(
            "gradient_method='adjoint' needs exact states, but noise_method='trajectories' "
            "samples them; use 'parameter_shift' or 'auto'"
        )
    return count, seed


def check_shots(shots: Any, name: str = "shots") -> int | None:
    """None (exact) or a positive int of shots."""
    if shots is None:
        return None
    return check_positive_int(shots, name)


def check_seed(seed: Any) -> None:
    """Raise TypeError unless ``seed`` is None, a non-negative int or a numpy Generator."""
    if seed is None or isinstance(seed, np.random.Generator):
        return
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise TypeError(f"seed must be None, a non-negative int or a numpy Generator, got {seed!r}")


def check_precision(precision: Any, name: str) -> float:
    """``precision`` as a float; raise ValueError unless it is a finite number >= 0."""
    if (
        isinstance(precision, bool)
        or not isinstance(precision, Real)
        or not (np.isfinite(float(precision)) and float(precision) >= 0)
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {precision!r}")
    return float(precision)


def check_parameters(
    circuit: Any,
    input_params: Sequence[Parameter] | None,
    weight_params: Sequence[Parameter] | None,
) -> None:
    """Check the declared parameters against the circuit.

    Raises:
        TypeError: ``circuit`` is not a QuantumCircuit, or a declared parameter is not a
            Parameter.
        ValueError: a parameter is declared twice, is not in the circuit, or a circuit
            parameter is declared as neither input nor weight.
    """
    if not isinstance(circuit, QuantumCircuit):
        raise TypeError(f"circuit must be a qiskit QuantumCircuit, got {type(circuit).__name__}")
    inputs = list(input_params) if input_params is not None else []
    weights = list(weight_params) if weight_params is not None else []
    present = set(circuit.parameters)
    seen: dict[Parameter, str] = {}
    for kind, params in (("input_params", inputs), ("weight_params", weights)):
        for param in params:
            if not isinstance(param, Parameter):
                raise TypeError(f"{kind} must hold qiskit Parameters, got {param!r}")
            if param in seen:
                where = f"both {seen[param]} and {kind}" if seen[param] != kind else f"{kind} twice"
                raise ValueError(f"parameter '{param.name}' is listed in {where}")
            seen[param] = kind
            if param not in present:
                raise ValueError(
                    f"{kind} holds '{param.name}', which is not a parameter of "
                    f"the circuit (its parameters: {sorted(p.name for p in present)})"
                )
    free = sorted(p.name for p in present if p not in seen)
    if free:
        raise ValueError(
            f"circuit parameters {free} are in neither input_params nor "
            "weight_params; declare each one as an input or a weight"
        )


@dataclass(frozen=True)
class SimulatorOptions:
    """The simulator's options, checked (build with :meth:`checked`).

    The options are described once, in :data:`OPTION_DOCS`; here they are checked: ``device``
    a string or a tuple of ``"cuda:N"`` (resolved to backends by
    :func:`gpuqnn._sim.backend.select_backends`), ``max_memory`` an int or None, ``kernels``
    one of :data:`KERNEL_MODES` (GPU backends only), ``engine`` one of :data:`ENGINES` (CPU
    backends only).
    """

    device: str | tuple[str, ...] = "auto"
    dtype: str = "complex128"
    gradient_method: str = "auto"
    max_memory: int | None = None
    kernels: str = "auto"
    threads: int | None = None
    engine: str = "auto"

    @classmethod
    def checked(
        cls,
        device: Any = "auto",
        dtype: Any = "complex128",
        gradient_method: Any = "auto",
        max_memory: Any = None,
        kernels: Any = "auto",
        threads: Any = None,
        engine: Any = "auto",
    ) -> SimulatorOptions:
        """The options after every check.

        Raises:
            ValueError: an option is not one of its accepted values.
        """
        return cls(
            device=check_device(device),
            dtype=check_dtype(dtype),
            gradient_method=check_gradient_method(gradient_method),
            max_memory=check_max_memory(max_memory),
            kernels=check_kernel_mode(kernels),
            threads=check_threads(threads),
            engine=check_engine(engine),
        )

    @property
    def complex_dtype(self) -> np.dtype:
        """The statevectors' NumPy dtype."""
        return DTYPES[self.dtype]

"""Compiled circuits for the primitives: a structural circuit key and a bounded per-instance cache.

A primitive compiles each distinct circuit once (``compile_circuit`` transpiles, which costs far
more than a batched evaluation) and keeps the simulators built from it, keyed by the circuit's
structure, so that the same circuit passed again (the same object or an equal copy) is not
recompiled. Both caches are LRU-bounded and belong to one primitive instance.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from numbers import Real
from typing import Any

import numpy as np
from qiskit.circuit import Parameter, ParameterExpression, QuantumCircuit

from .._compile import Program, compile_circuit
from .._compile.density import density_program
from .._compile.noise import NoiseTable
from .._engines import runner_factory
from .._options import SimulatorOptions, check_positive_int
from .._sim.backend import Backend, select_backend
from .._sim.density_readout import density_readout
from .._sim.simulator import Simulator


def circuit_key(circuit: QuantumCircuit) -> str:
    """A structural fingerprint of ``circuit``: equal for circuits that simulate alike.

    It covers the register sizes, the global phase and every instruction (name, qubit and clbit
    indices, parameters by value or by expression, control state, and the definition of any
    gate outside qiskit's standard library), but not names, metadata or layout.
    """
    digest = hashlib.sha256()
    _feed_circuit(digest, circuit)
    return digest.hexdigest()


def _feed_circuit(digest: Any, circuit: QuantumCircuit) -> None:
    qubits = {q: i for i, q in enumerate(circuit.qubits)}
    clbits = {c: i for i, c in enumerate(circuit.clbits)}
    digest.update(
        f"C{circuit.num_qubits},{circuit.num_clbits},{_param_text(circuit.global_phase)}[".encode()
    )
    for inst in circuit.data:
        op = inst.operation
        head = (
            f"{op.name}:{[qubits[q] for q in inst.qubits]}:{[clbits[c] for c in inst.clbits]}"
            f":{getattr(op, 'ctrl_state', '')}("
        )
        digest.update(head.encode())
        for param in getattr(op, "params", ()):
            digest.update(_param_text(param).encode())
            digest.update(b",")
        digest.update(b")")
        if getattr(op, "_standard_gate", None) is None:
            try:
                definition = getattr(op, "definition", None)
            except Exception:  # none while unbound (HamiltonianGate, ParameterizedInitialize)
                definition = None  # its name and parameters above determine it
            if isinstance(definition, QuantumCircuit):
                _feed_circuit(digest, definition)
    digest.update(b"]")


def _param_text(param: Any) -> str:
    if isinstance(param, Parameter):
        return f"P{param.name}"
    if isinstance(param, ParameterExpression):
        return f"E{param}"
    if isinstance(param, np.ndarray):
        data = np.ascontiguousarray(param)
        return f"A{data.dtype}{data.shape}{hashlib.sha256(data.tobytes()).hexdigest()}"
    if isinstance(param, (complex, np.complexfloating)):
        return repr(complex(param))
    if isinstance(param, (Real, np.number)):
        return repr(float(param))
    if isinstance(param, QuantumCircuit):
        return f"Q{circuit_key(param)}"
    return f"R{param!r}"


class SimulatorCache:
    """The simulators of one primitive: its backend, compiled programs and simulators.

    Args:
        device: one device (see :data:`gpuqnn._options.OPTION_DOCS` for this option and the
            next ones).
        dtype: the statevectors' dtype.
        max_memory: the memory bound.
        cache_size: how many compiled circuits (and, separately, simulators) to keep.
        threads: worker threads on the CPU.
        noise: a noise model's channels (then every circuit runs as its density matrix).

    Raises:
        ValueError: an invalid option.
        RuntimeError: a GPU was asked for explicitly but none is usable.
    """

    def __init__(
        self,
        device: str,
        dtype: str,
        max_memory: int | str | None,
        cache_size: int,
        threads: int | None = None,
        noise: NoiseTable | None = None,
    ) -> None:
        self.noise = noise
        self.options = SimulatorOptions.checked(
            device, dtype, max_memory=max_memory, threads=threads
        )
        if not isinstance(self.options.device, str) or self.options.device == "cuda:all":
            raise ValueError(
                f"the primitives run on one device, got device={self.options.device!r}; shard "
                "over devices with the networks (EstimatorQNN/SamplerQNN)"
            )
        self.cache_size = check_positive_int(cache_size, "cache_size")
        self.backend: Backend = select_backend(self.options.device, self.options.dtype)
        self._programs: OrderedDict[str, Program] = OrderedDict()
        self._simulators: OrderedDict[tuple[str, Hashable], Simulator] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "device": self.options.device,
            "dtype": self.options.dtype,
            "max_memory": self.options.max_memory,
            "cache_size": self.cache_size,
            "threads": self.options.threads,
            "noise": self.noise,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        SimulatorCache.__init__(
            self,
            state["device"],
            state["dtype"],
            state["max_memory"],
            state["cache_size"],
            state.get("threads"),
            state.get("noise"),
        )

    def keys(self, circuits: Sequence[QuantumCircuit]) -> list[str]:
        """The structural key of each circuit, computed once per distinct circuit object."""
        memo: dict[int, str] = {}
        keys = []
        for circuit in circuits:
            key = memo.get(id(circuit))
            if key is None:
                key = memo[id(circuit)] = circuit_key(circuit)
            keys.append(key)
        return keys

    def program(self, key: str, circuit: QuantumCircuit) -> Program:
        """The compiled program of ``circuit`` (parameters in ``circuit.parameters`` order)."""
        with self._lock:
            program = self._programs.get(key)
            if program is not None:
                self._programs.move_to_end(key)
                return program
        program = compile_circuit(circuit, list(circuit.parameters), self.noise)
        with self._lock:
            self._programs[key] = program
            while len(self._programs) > self.cache_size:
                self._programs.popitem(last=False)
        return program

    def simulator(
        self,
        key: str,
        circuit: QuantumCircuit,
        readout_key: Hashable,
        make_readout: Callable[[Program, Backend], Any],
    ) -> Simulator:
        """A simulator of ``circuit`` with the readout ``make_readout(program, backend)``,
        reused for the same circuit key and ``readout_key``; with a noise model, of the
        circuit's density matrix."""
        full_key = (key, readout_key)
        with self._lock:
            simulator = self._simulators.get(full_key)
            if simulator is not None:
                self._simulators.move_to_end(full_key)
                return simulator
        program = self.program(key, circuit)
        readout = make_readout(program, self.backend)
        if self.noise is not None:
            readout = density_readout(readout, program.num_qubits, self.backend)
            program = density_program(program)
        simulator = Simulator(program, readout, self.backend, self.options, runner_factory)
        with self._lock:
            self._simulators[full_key] = simulator
            while len(self._simulators) > self.cache_size:
                self._simulators.popitem(last=False)
        return simulator

    @property
    def num_programs(self) -> int:
        """How many compiled programs are cached."""
        return len(self._programs)


class SimulatorOwner:
    """What a primitive that owns an :class:`SimulatorCache` (``_cache``) and a seed (``_seed``)
    reports about them."""

    _cache: SimulatorCache
    _seed: np.random.Generator | int | None

    @property
    def seed(self) -> np.random.Generator | int | None:
        """The seed of the noise (estimator) or of the shots (sampler)."""
        return self._seed

    @property
    def device(self) -> str:
        """Where the simulator runs: ``"cpu"`` or ``"cuda:N"``."""
        return self._cache.backend.name

    @property
    def dtype(self) -> str:
        """The statevectors' complex dtype."""
        return str(self._cache.backend.dtype.name)  # numpy types it Any under Python 3.10

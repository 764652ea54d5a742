"""gpuqnn's EstimatorQNN: qiskit-machine-learning's EstimatorQNN on the batched simulator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit.circuit import Parameter, QuantumCircuit
from qiskit.primitives import BaseEstimatorV2
from qiskit.quantum_info import Pauli, SparsePauliOp
from qiskit.quantum_info.operators.base_operator import BaseOperator
from qiskit.transpiler.passmanager import BasePassManager
from qiskit_machine_learning.gradients import BaseEstimatorGradient
from qiskit_machine_learning.neural_networks import EstimatorQNN as _QmlEstimatorQNN

from ._aer_noise import noise_table
from ._compile import Program
from ._exact import Route, estimator_route
from ._network import SimulatorNetwork
from ._options import (
    SimulatorOptions,
    check_noise_method,
    check_parameters,
    document_options,
)
from ._sim.backend import Backend
from ._sim.readout import PauliReadout


@document_options
class EstimatorQNN(SimulatorNetwork, _QmlEstimatorQNN):
    """Drop-in replacement for qiskit-machine-learning's ``EstimatorQNN``.

    Same arguments, properties, shapes and values as
    :class:`qiskit_machine_learning.neural_networks.EstimatorQNN`; exact expectation values and
    parameter-shift gradients come from gpuqnn's batched statevector simulator whenever the
    estimator and gradient are exact statevector ones (the defaults). A user-supplied estimator
    or gradient that the simulator cannot stand in for (shots, hardware, noise, SPSA) is used as
    qiskit-machine-learning would use it.

    Args:
        circuit: the parametrized circuit.
        estimator: optional estimator primitive (default: exact).
        observables: observable(s) on the circuit's qubits (default: Z on every qubit).
        input_params: parameters fed by the input data.
        weight_params: trainable parameters.
        gradient: optional estimator gradient (default: parameter shift).
        input_gradients: whether ``backward`` also returns gradients by the inputs.
        default_precision: precision passed to a non-exact estimator; the simulator is exact.
        pass_manager: optional pass manager the circuit is transpiled with once.
        {options: device, dtype, gradient_method, max_memory, threads, engine}
        {options: noise_model, noise_method, trajectories, noise_seed}

    Raises:
        QiskitMachineLearningError: the circuit cannot be simulated (mid-circuit measurement,
            reset, classical control), or invalid network settings.
        ValueError: inconsistent parameters, observables on the wrong number of qubits or not
            Hermitian, or invalid options.
        RuntimeError: ``device="gpu"``/``"cuda"``/``"cuda:N"`` without CuPy or a CUDA device,
            or under ``torchrun`` a ``LOCAL_RANK`` not below the number of visible devices.
    """

    def __init__(
        self,
        *,
        circuit: QuantumCircuit,
        estimator: BaseEstimatorV2 | None = None,
        observables: Sequence[BaseOperator] | BaseOperator | None = None,
        input_params: Sequence[Parameter] | None = None,
        weight_params: Sequence[Parameter] | None = None,
        gradient: BaseEstimatorGradient | None = None,
        input_gradients: bool = False,
        default_precision: float = 0.015625,
        pass_manager: BasePassManager | None = None,
        device: str = "auto",
        dtype: str = "complex128",
        gradient_method: str = "auto",
        max_memory: int | str | None = None,
        threads: int | None = None,
        engine: str = "auto",
        noise_model: Any = None,
        noise_method: str = "density_matrix",
        trajectories: int = 256,
        noise_seed: Any = None,
    ) -> None:
        options = SimulatorOptions.checked(
            device, dtype, gradient_method, max_memory, threads=threads, engine=engine
        )
        check_parameters(circuit, input_params, weight_params)
        noise = noise_table(noise_model)
        sampled = check_noise_method(noise_method, trajectories, noise_seed, gradient_method)
        super().__init__(
            circuit=circuit,
            estimator=estimator,
            observables=observables,
            input_params=input_params,
            weight_params=weight_params,
            gradient=gradient,
            input_gradients=input_gradients,
            default_precision=default_precision,
            pass_manager=pass_manager,
        )
        self._pauli_observables = [
            _as_sparse_pauli(op, i, self._circuit.num_qubits)
            for i, op in enumerate(self._observables)
        ]
        self._init_simulator(options, noise=noise, trajectories=sampled)

    def _route(self) -> Route:
        return estimator_route(self.estimator, self._default_precision, self.gradient)

    def _make_readout(self, program: Program, backend: Backend) -> PauliReadout:
        return PauliReadout(self._pauli_observables, program.qubit_map, program.num_qubits, backend)


def _as_sparse_pauli(observable: BaseOperator, index: int, num_qubits: int) -> SparsePauliOp:
    if isinstance(observable, Pauli):
        observable = SparsePauliOp(observable)
    elif not isinstance(observable, SparsePauliOp):
        try:
            observable = SparsePauliOp.from_operator(observable)
        except Exception as exc:
            raise TypeError(
                f"observables[{index}] must be a SparsePauliOp, Pauli or operator, got "
                f"{type(observable).__name__}"
            ) from exc
    if observable.num_qubits != num_qubits:
        raise ValueError(
            f"observables[{index}] acts on {observable.num_qubits} qubits, but the circuit has "
            f"{num_qubits}"
        )
    anti = (observable - observable.adjoint()).simplify(atol=0)
    scale = max(1.0, float(np.max(np.abs(observable.coeffs), initial=0.0)))
    if np.any(np.abs(anti.coeffs) > 1e-10 * scale):
        raise ValueError(
            f"observables[{index}] is not Hermitian ({observable}): its expectation values "
            "are not real; pass a Hermitian observable (e.g. real coefficients of Paulis)"
        )
    return observable

"""qiskit's "Quantum Neural Networks" tutorial (shared/seed/01_neural_networks_tutorial.txt),
cell by cell, with ``from gpuqnn import EstimatorQNN, SamplerQNN``: every printed number to the
printed digits, every printed shape, and the printed ``None`` gradients."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN
from qiskit_machine_learning.utils import algorithm_globals

from gpuqnn import EstimatorQNN, SamplerQNN

# numpy prints 8 decimals: a printed number is the value rounded to 8 decimals
HALF_ULP_8 = 5e-9 + 1e-12

# the tutorial's printouts
EST_INPUT = [0.77395605]
EST_WEIGHTS = [0.43887844]
SAMP_INPUT = [0.85859792, 0.69736803]
SAMP_WEIGHTS = [0.09417735, 0.97562235, 0.7611397, 0.78606431]
EST_FORWARD = [[0.2970094]]
SAMP_FORWARD = [[0.01826527, 0.25735654, 0.5267981, 0.19758009]]
EST_WEIGHT_GRAD = [[[0.63272767]]]
EST_INPUT_GRAD = [[[0.3038852]]]
SAMP_WEIGHT_GRAD = [
    [
        [0.00606238, -0.1124595, -0.06856156, -0.09809236],
        [0.21167414, -0.09069775, 0.06856156, -0.22549618],
        [-0.48846674, 0.32499215, -0.32262178, 0.09809236],
        [0.27073021, -0.12183491, 0.32262178, 0.22549618],
    ]
]
SAMP_INPUT_GRAD = [
    [
        [-0.05844702, -0.10621091],
        [0.38798796, -0.19544083],
        [-0.34561132, 0.09459601],
        [0.01607038, 0.20705573],
    ]
]


def assert_printed(value, printed, atol: float = HALF_ULP_8) -> None:
    """``value`` is a float64 array that prints as ``printed`` with 8 decimals."""
    assert isinstance(value, np.ndarray) and value.dtype == np.float64
    printed = np.asarray(printed, dtype=float)
    assert value.shape == printed.shape
    np.testing.assert_allclose(value, printed, rtol=0, atol=atol)


# ---- cells [1] - [6]: the two circuits and networks --------------------------------------------


def cell_2_circuit() -> tuple[QuantumCircuit, list[Parameter]]:
    params1 = [Parameter("input1"), Parameter("weight1")]
    qc1 = QuantumCircuit(1)
    qc1.h(0)
    qc1.ry(params1[0], 0)
    qc1.rx(params1[1], 0)
    return qc1, params1


def cell_5_circuit() -> tuple[QuantumCircuit, ParameterVector, ParameterVector]:
    inputs2 = ParameterVector("input", 2)
    weights2 = ParameterVector("weight", 4)
    qc2 = QuantumCircuit(2)
    qc2.ry(inputs2[0], 0)
    qc2.ry(inputs2[1], 1)
    qc2.cx(0, 1)
    qc2.ry(weights2[0], 0)
    qc2.ry(weights2[1], 1)
    qc2.cx(0, 1)
    qc2.ry(weights2[2], 0)
    qc2.ry(weights2[3], 1)
    return qc2, inputs2, weights2


def cell_3_observable(qc1: QuantumCircuit) -> SparsePauliOp:
    return SparsePauliOp.from_list([("Y" * qc1.num_qubits, 1)])


def cell_4_estimator_qnn() -> EstimatorQNN:
    qc1, params1 = cell_2_circuit()
    return EstimatorQNN(
        circuit=qc1,
        observables=cell_3_observable(qc1),
        input_params=[params1[0]],
        weight_params=[params1[1]],
    )


def cell_6_sampler_qnn() -> SamplerQNN:
    qc2, inputs2, weights2 = cell_5_circuit()
    return SamplerQNN(circuit=qc2, input_params=inputs2, weight_params=weights2)


def parity(x: int) -> int:
    """Cell [22]'s interpret (a lambda there)."""
    return "{:b}".format(x).count("1") % 2  # noqa: UP032 - the tutorial's spelling


@pytest.fixture
def draws() -> dict[str, np.ndarray]:
    """Cells [1], [7], [9]: the seed, then the four draws in the tutorial's order."""
    algorithm_globals.random_seed = 42
    estimator_qnn, sampler_qnn = cell_4_estimator_qnn(), cell_6_sampler_qnn()
    return {
        "est_input": algorithm_globals.random.random(estimator_qnn.num_inputs),
        "est_weights": algorithm_globals.random.random(estimator_qnn.num_weights),
        "samp_input": algorithm_globals.random.random(sampler_qnn.num_inputs),
        "samp_weights": algorithm_globals.random.random(sampler_qnn.num_weights),
    }


def test_cells_4_and_6_construct_qml_networks() -> None:
    estimator_qnn, sampler_qnn = cell_4_estimator_qnn(), cell_6_sampler_qnn()
    # the tutorial prints <qiskit_machine_learning.neural_networks....EstimatorQNN at 0x...>
    assert isinstance(estimator_qnn, QmlEstimatorQNN)
    assert isinstance(sampler_qnn, QmlSamplerQNN)


def test_cell_5_parameter_names() -> None:
    _, inputs2, weights2 = cell_5_circuit()
    assert [str(item) for item in inputs2.params] == ["input[0]", "input[1]"]
    assert [str(item) for item in weights2.params] == [
        "weight[0]",
        "weight[1]",
        "weight[2]",
        "weight[3]",
    ]


# ---- cells [7] - [10]: sizes and random inputs --------------------------------------------------


def test_cells_8_and_10_sizes_and_seeded_draws(draws: dict[str, np.ndarray]) -> None:
    estimator_qnn, sampler_qnn = cell_4_estimator_qnn(), cell_6_sampler_qnn()
    assert (estimator_qnn.num_inputs, estimator_qnn.num_weights) == (1, 1)
    assert (sampler_qnn.num_inputs, sampler_qnn.num_weights) == (2, 4)
    assert_printed(draws["est_input"], EST_INPUT)
    assert_printed(draws["est_weights"], EST_WEIGHTS)
    assert_printed(draws["samp_input"], SAMP_INPUT)
    assert_printed(draws["samp_weights"], SAMP_WEIGHTS)


def test_seeded_draws_equal_numpy_default_rng_42(draws: dict[str, np.ndarray]) -> None:
    """algorithm_globals.random is numpy's default_rng(seed): the same draws in the same order."""
    rng = np.random.default_rng(42)
    for key, size in (("est_input", 1), ("est_weights", 1), ("samp_input", 2), ("samp_weights", 4)):
        np.testing.assert_array_equal(draws[key], rng.random(size))


# ---- cells [11] - [14]: forward passes ---------------------------------------------------------


def test_cell_11_estimator_forward(draws: dict[str, np.ndarray]) -> None:
    forward = cell_4_estimator_qnn().forward(draws["est_input"], draws["est_weights"])
    assert forward.shape == (1, 1)
    assert_printed(forward, EST_FORWARD)


def test_cell_12_sampler_forward(draws: dict[str, np.ndarray]) -> None:
    forward = cell_6_sampler_qnn().forward(draws["samp_input"], draws["samp_weights"])
    assert forward.shape == (1, 4)
    assert_printed(forward, SAMP_FORWARD)


def test_cell_13_estimator_forward_batched(draws: dict[str, np.ndarray]) -> None:
    x = draws["est_input"]
    forward = cell_4_estimator_qnn().forward([x, x], draws["est_weights"])
    assert forward.shape == (2, 1)
    assert_printed(forward, EST_FORWARD * 2)


def test_cell_14_sampler_forward_batched(draws: dict[str, np.ndarray]) -> None:
    x = draws["samp_input"]
    forward = cell_6_sampler_qnn().forward([x, x], draws["samp_weights"])
    assert forward.shape == (2, 4)
    assert_printed(forward, SAMP_FORWARD * 2)


# ---- cells [15] - [19]: backward passes, then input_gradients = True -----------------------------


def test_cell_15_estimator_backward_without_input_gradients(draws) -> None:
    input_grad, weight_grad = cell_4_estimator_qnn().backward(
        draws["est_input"], draws["est_weights"]
    )
    assert input_grad is None  # "Input gradients for EstimatorQNN: None. Shape: None"
    assert weight_grad.shape == (1, 1, 1)
    assert_printed(weight_grad, EST_WEIGHT_GRAD)


def test_cell_16_sampler_backward_without_input_gradients(draws) -> None:
    input_grad, weight_grad = cell_6_sampler_qnn().backward(
        draws["samp_input"], draws["samp_weights"]
    )
    assert input_grad is None
    assert weight_grad.shape == (1, 4, 4)
    assert_printed(weight_grad, SAMP_WEIGHT_GRAD)


def test_cells_17_to_19_input_gradients_switched_on_after_construction(draws) -> None:
    estimator_qnn, sampler_qnn = cell_4_estimator_qnn(), cell_6_sampler_qnn()
    ex, ew, sx, sw = (draws[k] for k in ("est_input", "est_weights", "samp_input", "samp_weights"))
    # as in the tutorial, the networks were used before the switch ([15], [16])
    assert estimator_qnn.backward(ex, ew)[0] is None
    assert sampler_qnn.backward(sx, sw)[0] is None
    assert estimator_qnn.input_gradients is False and sampler_qnn.input_gradients is False
    # [17]
    estimator_qnn.input_gradients = True
    sampler_qnn.input_gradients = True
    assert estimator_qnn.input_gradients is True and sampler_qnn.input_gradients is True
    # [18]
    input_grad, weight_grad = estimator_qnn.backward(ex, ew)
    assert input_grad.shape == (1, 1, 1) and weight_grad.shape == (1, 1, 1)
    assert_printed(input_grad, EST_INPUT_GRAD)
    assert_printed(weight_grad, EST_WEIGHT_GRAD)
    # [19]
    input_grad, weight_grad = sampler_qnn.backward(sx, sw)
    assert input_grad.shape == (1, 4, 2) and weight_grad.shape == (1, 4, 4)
    assert_printed(input_grad, SAMP_INPUT_GRAD)
    assert_printed(weight_grad, SAMP_WEIGHT_GRAD)
    # the forward pass is unchanged by the switch
    assert_printed(estimator_qnn.forward(ex, ew), EST_FORWARD)
    assert_printed(sampler_qnn.forward(sx, sw), SAMP_FORWARD)


# ---- cells [20] - [23]: several observables, parity interpret -----------------------------------


def test_cells_20_21_estimator_with_two_observables(draws) -> None:
    qc1, params1 = cell_2_circuit()
    observable1 = cell_3_observable(qc1)
    observable2 = SparsePauliOp.from_list([("Z" * qc1.num_qubits, 1)])
    estimator_qnn2 = EstimatorQNN(
        circuit=qc1,
        observables=[observable1, observable2],
        input_params=[params1[0]],
        weight_params=[params1[1]],
    )
    ex, ew = draws["est_input"], draws["est_weights"]
    forward = cell_4_estimator_qnn().forward(ex, ew)
    forward2 = estimator_qnn2.forward(ex, ew)
    _, weight_grad = cell_4_estimator_qnn().backward(ex, ew)
    input_grad2, weight_grad2 = estimator_qnn2.backward(ex, ew)
    # the printed shapes
    assert forward.shape == (1, 1)
    assert forward2.shape == (1, 2)
    assert weight_grad.shape == (1, 1, 1)
    assert weight_grad2.shape == (1, 2, 1)
    assert input_grad2 is None
    # not printed: the Y column is cell [11]'s network; the Z column from the statevector
    assert_printed(forward2[:, :1], EST_FORWARD)
    assert_printed(weight_grad2[:, :1], EST_WEIGHT_GRAD)
    bound = qc1.assign_parameters({params1[0]: ex[0], params1[1]: ew[0]})
    z = Statevector(bound).expectation_value(observable2).real
    np.testing.assert_allclose(forward2[0, 1], z, atol=1e-12)


def test_cells_22_23_sampler_with_parity_interpret(draws) -> None:
    qc2, inputs2, weights2 = cell_5_circuit()
    output_shape = 2  # parity = 0, 1
    sampler_qnn2 = SamplerQNN(
        circuit=qc2,
        input_params=inputs2,
        weight_params=weights2,
        interpret=parity,
        output_shape=output_shape,
    )
    sx, sw = draws["samp_input"], draws["samp_weights"]
    sampler_qnn = cell_6_sampler_qnn()
    forward = sampler_qnn.forward(sx, sw)
    forward2 = sampler_qnn2.forward(sx, sw)
    _, weight_grad = sampler_qnn.backward(sx, sw)
    input_grad2, weight_grad2 = sampler_qnn2.backward(sx, sw)
    # the printed shapes
    assert forward.shape == (1, 4)
    assert forward2.shape == (1, 2)
    assert weight_grad.shape == (1, 4, 4)
    assert weight_grad2.shape == (1, 2, 4)
    assert input_grad2 is None
    # not printed: parity sums of printed numbers (so twice the rounding); 00, 11 are even
    printed_forward, printed_grad = np.array(SAMP_FORWARD)[0], np.array(SAMP_WEIGHT_GRAD)[0]
    assert_printed(
        forward2,
        [[printed_forward[0] + printed_forward[3], printed_forward[1] + printed_forward[2]]],
        atol=2 * HALF_ULP_8,
    )
    assert_printed(
        weight_grad2,
        [[printed_grad[0] + printed_grad[3], printed_grad[1] + printed_grad[2]]],
        atol=2 * HALF_ULP_8,
    )

"""The first acceptance test: every number qiskit's "Quantum Neural Networks" tutorial prints
(../shared/seed/01_neural_networks_tutorial.txt), with gpuqnn's networks, to the printed digits."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.utils import algorithm_globals

from gpuqnn import EstimatorQNN, SamplerQNN


def _printed(value: np.ndarray | None, expected: list | None, atol: float = 6e-9) -> None:
    """Equal to the tutorial's printout, which shows 8 decimals."""
    if expected is None:
        assert value is None
        return
    np.testing.assert_allclose(value, np.array(expected), atol=atol, rtol=0)


@pytest.fixture(scope="module")
def tutorial() -> dict:
    algorithm_globals.random_seed = 42
    params1 = [Parameter("input1"), Parameter("weight1")]
    qc1 = QuantumCircuit(1)
    qc1.h(0)
    qc1.ry(params1[0], 0)
    qc1.rx(params1[1], 0)
    observable1 = SparsePauliOp.from_list([("Y" * qc1.num_qubits, 1)])
    estimator_qnn = EstimatorQNN(circuit=qc1, observables=observable1,
                                 input_params=[params1[0]], weight_params=[params1[1]])

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
    sampler_qnn = SamplerQNN(circuit=qc2, input_params=inputs2, weight_params=weights2)

    state = {
        "qc1": qc1, "params1": params1, "observable1": observable1, "qc2": qc2,
        "inputs2": inputs2, "weights2": weights2,
        "estimator_qnn": estimator_qnn, "sampler_qnn": sampler_qnn,
        "estimator_input": algorithm_globals.random.random(estimator_qnn.num_inputs),
        "estimator_weights": algorithm_globals.random.random(estimator_qnn.num_weights),
        "sampler_input": algorithm_globals.random.random(sampler_qnn.num_inputs),
        "sampler_weights": algorithm_globals.random.random(sampler_qnn.num_weights),
    }
    return state


SAMPLER_WEIGHT_GRAD = [[[0.00606238, -0.1124595, -0.06856156, -0.09809236],
                        [0.21167414, -0.09069775, 0.06856156, -0.22549618],
                        [-0.48846674, 0.32499215, -0.32262178, 0.09809236],
                        [0.27073021, -0.12183491, 0.32262178, 0.22549618]]]


def test_cells_3_to_23(tutorial: dict) -> None:
    """Runs the cells in the tutorial's order (input_gradients is switched on midway)."""
    t = tutorial
    est, samp = t["estimator_qnn"], t["sampler_qnn"]
    # [8], [10]
    assert (est.num_inputs, est.num_weights, samp.num_inputs, samp.num_weights) == (1, 1, 2, 4)
    _printed(t["estimator_input"], [0.77395605])
    _printed(t["estimator_weights"], [0.43887844])
    _printed(t["sampler_input"], [0.85859792, 0.69736803])
    _printed(t["sampler_weights"], [0.09417735, 0.97562235, 0.7611397, 0.78606431])
    ex, ew, sx, sw = (t["estimator_input"], t["estimator_weights"], t["sampler_input"],
                      t["sampler_weights"])
    # [11], [12]
    forward = est.forward(ex, ew)
    _printed(forward, [[0.2970094]])
    assert forward.shape == (1, 1) and forward.dtype == np.float64
    sampler_forward = samp.forward(sx, sw)
    _printed(sampler_forward, [[0.01826527, 0.25735654, 0.5267981, 0.19758009]])
    assert sampler_forward.shape == (1, 4)
    # [13], [14]
    batched = est.forward([ex, ex], ew)
    _printed(batched, [[0.2970094], [0.2970094]])
    assert batched.shape == (2, 1)
    sampler_batched = samp.forward([sx, sx], sw)
    _printed(sampler_batched, [[0.01826527, 0.25735654, 0.5267981, 0.19758009]] * 2)
    assert sampler_batched.shape == (2, 4)
    # [15], [16]
    input_grad, weight_grad = est.backward(ex, ew)
    _printed(input_grad, None)
    _printed(weight_grad, [[[0.63272767]]])
    assert weight_grad.shape == (1, 1, 1)
    input_grad, weight_grad = samp.backward(sx, sw)
    _printed(input_grad, None)
    _printed(weight_grad, SAMPLER_WEIGHT_GRAD)
    assert weight_grad.shape == (1, 4, 4)
    # [17] - [19]
    est.input_gradients = True
    samp.input_gradients = True
    input_grad, weight_grad = est.backward(ex, ew)
    _printed(input_grad, [[[0.3038852]]])
    _printed(weight_grad, [[[0.63272767]]])
    input_grad, weight_grad = samp.backward(sx, sw)
    _printed(input_grad, [[[-0.05844702, -0.10621091], [0.38798796, -0.19544083],
                           [-0.34561132, 0.09459601], [0.01607038, 0.20705573]]])
    assert input_grad.shape == (1, 4, 2)
    _printed(weight_grad, SAMPLER_WEIGHT_GRAD)
    # [20], [21]: several observables
    observable2 = SparsePauliOp.from_list([("Z" * t["qc1"].num_qubits, 1)])
    est2 = EstimatorQNN(circuit=t["qc1"], observables=[t["observable1"], observable2],
                        input_params=[t["params1"][0]], weight_params=[t["params1"][1]])
    assert est2.forward(ex, ew).shape == (1, 2)
    _, weight_grad2 = est2.backward(ex, ew)
    assert weight_grad2.shape == (1, 2, 1)
    _printed(weight_grad2[:, :1], [[[0.63272767]]])
    # [22], [23]: parity interpret

    def parity(x: int) -> int:
        return f"{x:b}".count("1") % 2

    samp2 = SamplerQNN(circuit=t["qc2"], input_params=t["inputs2"],
                       weight_params=t["weights2"], interpret=parity, output_shape=2)
    forward2 = samp2.forward(sx, sw)
    assert forward2.shape == (1, 2)
    # not printed by the tutorial: sums of printed numbers, so twice the rounding
    _printed(forward2, [[0.01826527 + 0.19758009, 0.25735654 + 0.5267981]], atol=1.2e-8)
    _, weight_grad2 = samp2.backward(sx, sw)
    assert weight_grad2.shape == (1, 2, 4)
    grad = np.array(SAMPLER_WEIGHT_GRAD)[0]
    _printed(weight_grad2, [[grad[0] + grad[3], grad[1] + grad[2]]], atol=1.2e-8)

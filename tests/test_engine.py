"""The engine against qiskit's Statevector and qiskit-machine-learning, gate by gate and on
random parameterised circuits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN
from qiskit_machine_learning.neural_networks import SamplerQNN as QmlSamplerQNN

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._compile import compile_circuit
from gpuqnn._sim.backend import select_backend
from gpuqnn._sim.block_circuit import BlockCircuit

from circuits import assert_same_passes

TOL = {"complex128": 1e-10, "complex64": 2e-5}
STANDARD = sorted(
    name
    for name, gate in get_standard_gate_name_mapping().items()
    if name not in ("measure", "reset", "delay", "barrier") and hasattr(gate, "num_qubits")
)
NUM_QUBITS = 4


def _prepared(rng: np.random.Generator) -> QuantumCircuit:
    """A 4-qubit circuit leaving a generic entangled state."""
    qc = QuantumCircuit(NUM_QUBITS)
    for q in range(NUM_QUBITS):
        qc.u(*rng.uniform(0, 2 * np.pi, 3), q)
    for q in range(NUM_QUBITS - 1):
        qc.cx(q, q + 1)
    for q in range(NUM_QUBITS):
        qc.u(*rng.uniform(0, 2 * np.pi, 3), q)
    return qc


def _final_state(circuit: QuantumCircuit, values: dict, dtype: str) -> np.ndarray:
    """Our engine's final state for one set of parameter values, in the circuit's qubits."""
    parameters = list(circuit.parameters)
    program = compile_circuit(circuit, parameters)
    engine = BlockCircuit(program, select_backend("cpu", dtype))
    angles = program.angles.angles(np.array([[values[p] for p in parameters]], dtype=float))
    psi = engine.evolve(angles)[0]
    # embed the simulated qubits back into the circuit's register (idle qubits are |0>)
    full = np.zeros(2**circuit.num_qubits, dtype=complex)
    index = np.zeros(psi.shape[0], dtype=np.int64)
    for q, pos in enumerate(program.qubit_map):
        if pos >= 0:
            index |= ((np.arange(psi.shape[0]) >> pos) & 1) << q
    full[index] = psi
    return full


def _assert_same_state(ours: np.ndarray, reference: np.ndarray, tol: float) -> None:
    """Equal up to a global phase (which compilation may drop)."""
    overlap = np.vdot(reference, ours)
    assert abs(abs(overlap) - 1.0) < 10 * tol, f"fidelity {abs(overlap) ** 2}"
    np.testing.assert_allclose(ours * np.conj(overlap) / abs(overlap), reference, atol=10 * tol)


CASES = [(name, False) for name in STANDARD] + [
    (name, True) for name in STANDARD if get_standard_gate_name_mapping()[name].params
]


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
@pytest.mark.parametrize(
    ("name", "symbolic"), CASES, ids=[f"{n}-{'symbolic' if s else 'bound'}" for n, s in CASES]
)
def test_standard_gate_matches_statevector(name: str, symbolic: bool, dtype: str) -> None:
    rng = np.random.default_rng(sum(map(ord, name)))
    gate_cls = type(get_standard_gate_name_mapping()[name])
    template = get_standard_gate_name_mapping()[name]
    nparams = len(template.params)
    values = rng.uniform(-np.pi, np.pi, nparams)
    params = [Parameter(f"t{i}") for i in range(nparams)]
    gate = gate_cls(*(params if symbolic else values)) if nparams else template
    qc = _prepared(rng)
    qubits = [int(q) for q in rng.permutation(NUM_QUBITS)[: gate.num_qubits]]
    qc.append(gate, qubits)
    binding = dict(zip(params, values, strict=True))
    reference = Statevector(qc.assign_parameters(binding) if symbolic else qc).data
    ours = _final_state(qc, binding if symbolic else {}, dtype)
    _assert_same_state(ours, reference, TOL[dtype])


@pytest.mark.parametrize("annotated", [False, True], ids=["gate", "annotated"])
@pytest.mark.parametrize("name", ["rx", "ry", "rz", "p", "rzz", "rxx", "u", "h", "sx", "swap"])
def test_multi_controlled_gates(name: str, annotated: bool) -> None:
    rng = np.random.default_rng(7)
    template = get_standard_gate_name_mapping()[name]
    theta = Parameter("theta")
    params = [theta, *rng.uniform(-1, 1, len(template.params) - 1)] if template.params else []
    gate = type(template)(*params) if params else template
    controlled = gate.control(2, ctrl_state="10", annotated=annotated)
    qc = _prepared(rng)
    qc.append(controlled, [3, 0, 1, 2][: controlled.num_qubits])
    value = 0.7
    bind = {theta: value} if template.params else {}
    reference = Statevector(qc.assign_parameters(bind)).data
    _assert_same_state(_final_state(qc, bind, "complex128"), reference, 1e-10)


def _random_network(seed: int, num_qubits: int = 3):
    """A random circuit over the native gate set with input/weight expressions."""
    rng = np.random.default_rng(seed)
    x = ParameterVector("x", 2)
    w = ParameterVector("w", 4)
    exprs = [
        x[0],
        2 * x[1],
        x[0] + w[0],
        x[0] * x[1],
        w[1] ** 2,
        w[2].sin(),
        (np.pi - x[0]) * (np.pi - x[1]),
        -0.5 * w[3] + 0.3,
        w[0],
        w[1],
        w[2],
        w[3],
    ]
    qc = QuantumCircuit(num_qubits)
    one = ["rx", "ry", "rz", "p", "u", "r"]
    two = ["crx", "cry", "crz", "cp", "rxx", "ryy", "rzz", "rzx", "cu", "cu1"]
    fixed = ["h", "cx", "cz", "swap", "ccx", "sx", "t", "y", "ch", "cswap", "iswap", "ecr"]
    mapping = get_standard_gate_name_mapping()
    used = set()
    for _ in range(18):
        kind = rng.choice(["one", "two", "fixed"], p=[0.4, 0.35, 0.25])
        name = rng.choice({"one": one, "two": two, "fixed": fixed}[kind])
        template = mapping[name]
        params = []
        for _ in template.params:
            k = int(rng.integers(len(exprs)))
            used.add(k)
            params.append(exprs[k])
        qubits = [int(q) for q in rng.permutation(num_qubits)[: template.num_qubits]]
        qc.append(type(template)(*params) if params else template, qubits)
    for k, expr in enumerate(exprs):  # every parameter must appear
        if k not in used:
            qc.ry(expr, k % num_qubits)
    return qc, list(x), list(w)


def _observables(num_qubits: int) -> list[SparsePauliOp]:
    return [
        SparsePauliOp.from_list([("Z" * num_qubits, 1.0)]),
        SparsePauliOp.from_list(
            [
                ("XYZ"[:num_qubits], 0.5),
                ("IZX"[:num_qubits], -1.5),
                ("YYI"[:num_qubits], 0.25),
                ("III"[:num_qubits], 0.1),
            ]
        ),
    ]


@pytest.mark.parametrize("seed", range(4))
def test_random_estimator_network_matches_qml(seed: int) -> None:
    qc, x, w = _random_network(seed)
    kwargs = {
        "circuit": qc,
        "observables": _observables(3),
        "input_params": x,
        "weight_params": w,
        "input_gradients": True,
    }
    ours, ref = EstimatorQNN(**kwargs), QmlEstimatorQNN(**kwargs)
    rng = np.random.default_rng(seed)
    inputs, weights = rng.uniform(-2, 2, (3, 2)), rng.uniform(-2, 2, 4)
    assert_same_passes(ours, ref, inputs, weights, atol=1e-9)


@pytest.mark.parametrize("seed", range(4, 7))
def test_random_sampler_network_matches_qml(seed: int) -> None:
    qc, x, w = _random_network(seed)
    kwargs = {
        "circuit": qc,
        "input_params": x,
        "weight_params": w,
        "input_gradients": True,
        "interpret": lambda k: (k % 2, (k >> 1) % 3),
        "output_shape": (2, 3),
    }
    ours, ref = SamplerQNN(**kwargs), QmlSamplerQNN(**kwargs)
    rng = np.random.default_rng(seed)
    inputs, weights = rng.uniform(-2, 2, (2, 2)), rng.uniform(-2, 2, 4)
    assert_same_passes(ours, ref, inputs, weights, atol=1e-9)


@pytest.mark.parametrize("seed", range(7, 12))
def test_random_network_gradients_match_finite_differences(seed: int) -> None:
    qc, x, w = _random_network(seed)
    qnn = EstimatorQNN(
        circuit=qc,
        observables=_observables(3),
        input_params=x,
        weight_params=w,
        input_gradients=True,
    )
    rng = np.random.default_rng(seed)
    inputs, weights = rng.uniform(-2, 2, (2, 2)), rng.uniform(-2, 2, 4)
    input_grad, weight_grad = qnn.backward(inputs, weights)
    step = 1e-5
    for j in range(2):
        dx = np.zeros(2)
        dx[j] = step
        fd = (qnn.forward(inputs + dx, weights) - qnn.forward(inputs - dx, weights)) / (2 * step)
        np.testing.assert_allclose(input_grad[:, :, j], fd, atol=1e-7, rtol=0)
    for j in range(4):
        dw = np.zeros(4)
        dw[j] = step
        fd = (qnn.forward(inputs, weights + dw) - qnn.forward(inputs, weights - dw)) / (2 * step)
        np.testing.assert_allclose(weight_grad[:, :, j], fd, atol=1e-7, rtol=0)


@pytest.mark.parametrize("seed", range(12, 15))
def test_complex64_agrees_with_complex128(seed: int) -> None:
    qc, x, w = _random_network(seed)
    kwargs = {
        "circuit": qc,
        "observables": _observables(3),
        "input_params": x,
        "weight_params": w,
        "input_gradients": True,
    }
    single, double = EstimatorQNN(**kwargs, dtype="complex64"), EstimatorQNN(**kwargs)
    rng = np.random.default_rng(seed)
    inputs, weights = rng.uniform(-2, 2, (3, 2)), rng.uniform(-2, 2, 4)
    assert_same_passes(single, double, inputs, weights, atol=1e-4, rtol=1e-4)


_GATES_1Q = ["h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "sxdg", "rx", "ry", "rz", "p", "u"]
_GATES_2Q = [
    "cx",
    "cy",
    "cz",
    "ch",
    "swap",
    "iswap",
    "ecr",
    "dcx",
    "crx",
    "cry",
    "crz",
    "cp",
    "rxx",
    "ryy",
    "rzz",
    "rzx",
    "cu",
    "xx_plus_yy",
    "xx_minus_yy",
    "csx",
]
_GATES_3Q = ["ccx", "cswap", "ccz", "rccx"]


@st.composite
def _circuits(draw: st.DrawFn) -> tuple[QuantumCircuit, list[float]]:
    """Random circuits of 1-5 qubits over the standard gates, with symbolic angles."""
    num_qubits = draw(st.integers(1, 5))
    mapping = get_standard_gate_name_mapping()
    names = (
        _GATES_1Q + (_GATES_2Q if num_qubits > 1 else []) + (_GATES_3Q if num_qubits > 2 else [])
    )
    qc = QuantumCircuit(num_qubits)
    values: list[float] = []
    for _ in range(draw(st.integers(1, 12))):
        template = mapping[draw(st.sampled_from(names))]
        qubits = draw(st.permutations(range(num_qubits)))[: template.num_qubits]
        params = []
        for _ in template.params:
            values.append(draw(st.floats(-4, 4, allow_nan=False)))
            params.append(Parameter(f"a{len(values)}"))
        qc.append(type(template)(*params) if params else template, qubits)
    return qc, values


@settings(max_examples=60, deadline=None)
@given(_circuits())
def test_random_circuits_match_statevector(case: tuple[QuantumCircuit, list[float]]) -> None:
    qc, values = case
    binding = dict(
        zip(qc.parameters, [values[int(p.name[1:]) - 1] for p in qc.parameters], strict=True)
    )
    reference = Statevector(qc.assign_parameters(binding)).data
    _assert_same_state(_final_state(qc, binding, "complex128"), reference, 1e-10)

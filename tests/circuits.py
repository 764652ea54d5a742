"""Random parameterised circuits and a comparison of two networks' passes, shared by tests."""

from __future__ import annotations

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.quantum_info import SparsePauliOp

MAPPING = get_standard_gate_name_mapping()
ONE_PARAM = ["rx", "ry", "rz", "p"]
ONE_FIXED = ["h", "x", "y", "z", "s", "sdg", "t", "sx", "sxdg"]
TWO = ["cx", "cz", "swap", "rzz", "crz", "cp", "crx", "cry", "rxx", "ryy", "iswap", "ch", "cu"]
THREE = ["ccx", "cswap", "ccz"]


def layered_network(seed: int, num_qubits: int, layers: int = 3):
    """Random layers of single-qubit gates on random subsets of qubits (parametric and fixed,
    several per qubit), between random entanglers; inputs and weights in sums, scalings and
    products, some used by several gates."""
    rng = np.random.default_rng(seed)
    x = ParameterVector("x", 2)
    w = ParameterVector("w", 5)
    exprs = [
        x[0],
        2 * x[1],
        x[0] + w[0],
        x[0] * x[1],
        w[1],
        w[2],
        -0.5 * w[3] + 0.3,
        w[4],
        w[1] * w[2],
    ]
    qc = QuantumCircuit(num_qubits)
    used: set[int] = set()

    def angle():
        k = int(rng.integers(len(exprs)))
        used.add(k)
        return exprs[k]

    for _ in range(layers):
        subset = rng.permutation(num_qubits)[: int(rng.integers(1, num_qubits + 1))]
        for q in sorted(int(q) for q in subset):
            for _ in range(int(rng.integers(1, 3))):
                if rng.random() < 0.6:
                    getattr(qc, str(rng.choice(ONE_PARAM)))(angle(), q)
                else:
                    qc.append(MAPPING[str(rng.choice(ONE_FIXED))], [q])
        names = TWO + (THREE if num_qubits >= 3 else [])
        for _ in range(int(rng.integers(1, num_qubits + 1)) if num_qubits > 1 else 0):
            name = str(rng.choice(names))
            template = MAPPING[name]
            qubits = [int(q) for q in rng.permutation(num_qubits)[: template.num_qubits]]
            params = [angle() for _ in template.params]
            qc.append(type(template)(*params) if params else template, qubits)
    for k, expr in enumerate(exprs):  # every parameter appears
        if k not in used:
            qc.ry(expr, k % num_qubits)
    return qc, list(x), list(w)


def observables(num_qubits: int, rng: np.random.Generator) -> list[SparsePauliOp]:
    """Z on all qubits, and a random multi-term X/Y/Z sum."""
    terms = ["".join(rng.choice(list("IXYZ"), num_qubits)) for _ in range(4)]
    return [
        SparsePauliOp("Z" * num_qubits),
        SparsePauliOp.from_list(
            [(t, float(c)) for t, c in zip(terms, rng.normal(size=4), strict=True)]
        ),
    ]


def assert_same_passes(ours, reference, inputs, weights, atol: float, rtol: float = 0.0) -> None:
    """``ours`` and ``reference`` agree on forward values and both gradients, to ``atol`` (and
    ``rtol``): same shapes, float64 results, ``None`` gradients alike."""
    forward = ours.forward(inputs, weights)
    assert forward.dtype == np.float64
    np.testing.assert_allclose(forward, reference.forward(inputs, weights), rtol=rtol, atol=atol)
    backward = zip(ours.backward(inputs, weights), reference.backward(inputs, weights), strict=True)
    for a, b in backward:
        if b is None:
            assert a is None
            continue
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)

"""Noisy networks (issue 21): gpuqnn's ``EstimatorQNN(noise_model=...)`` against
qiskit-machine-learning's ``EstimatorQNN`` over qiskit-aer's exact density-matrix
``EstimatorV2`` with the same noise model, side by side in one run.

The workload is the zz8 network (``zz_feature_map(8)`` + ``real_amplitudes(8, reps=3)``, Z^8)
with depolarizing and thermal relaxation errors after every gate, a backward pass with input
gradients. Both sides are first checked against each other on the reference samples; then
rounds alternate between the two sides, the best time of each is kept, and the reference
(about 20 s per sample) runs on ``--ref-batch`` samples and is scaled to the batch linearly,
as ``bench_qnn`` scales its slow peers. Every side runs on ``--threads`` threads (gpuqnn's
workers, qiskit-aer's ``max_parallel_threads``, BLAS). With ``--pennylane``, PennyLane's
``default.mixed`` with torch backprop runs the same circuit with each error as a
``QubitChannel`` of qiskit-aer's Kraus operators, and is timed for one vector-Jacobian product
(what a training step needs: less than gpuqnn's per-sample Jacobians) on the reference
samples.

    python -m benchmarks.bench_noise --quick                 # smoke run, seconds
    python -m benchmarks.bench_noise                          # batch 16, 1 thread (~1 min)
    python -m benchmarks.bench_noise --pennylane --ref-batch 2  # + PennyLane (~1.5 min)
    python -m benchmarks.bench_noise --batch 256 --rounds 2   # the issue's batch (~8 min)
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    import _as_script  # type: ignore[import-not-found]  # noqa: F401

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.threads import fix_threads


def noise_model() -> Any:
    """Depolarizing and thermal relaxation errors after every gate of the network."""
    from qiskit_aer.noise import NoiseModel, depolarizing_error, thermal_relaxation_error

    relax = thermal_relaxation_error(80e3, 60e3, 50)
    model = NoiseModel()
    one = depolarizing_error(1e-3, 1).compose(relax)
    model.add_all_qubit_quantum_error(one, ["h", "ry", "p"])
    two = depolarizing_error(1e-2, 2).compose(relax.tensor(relax))
    model.add_all_qubit_quantum_error(two, ["cx"])
    return model


def networks(threads: int) -> tuple[Any, Any, int, int, Any]:
    """gpuqnn's noisy network and the qiskit-machine-learning reference over qiskit-aer."""
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator
    from qiskit_machine_learning.neural_networks import EstimatorQNN as QmlEstimatorQNN

    from gpuqnn import EstimatorQNN
    from gpuqnn.examples import zz_real_amplitudes

    circuit, feature_map, ansatz = zz_real_amplitudes(8)
    # h, p, cx and ry: gates qiskit-aer runs as they are, so both sides put errors alike
    inputs, weights = list(feature_map.parameters), list(ansatz.parameters)
    model = noise_model()
    ours = EstimatorQNN(
        circuit=circuit,
        input_params=inputs,
        weight_params=weights,
        input_gradients=True,
        noise_model=model,
        threads=threads,
    )
    options = {"method": "density_matrix", "noise_model": model, "max_parallel_threads": threads}
    reference = QmlEstimatorQNN(
        circuit=circuit,
        estimator=AerEstimator(options={"backend_options": options}),
        input_params=inputs,
        weight_params=weights,
        input_gradients=True,
        default_precision=0.0,
    )
    return ours, reference, len(inputs), len(weights), model


def pennylane_mixed(network: Any, model: Any) -> Callable[[np.ndarray, np.ndarray], Any]:
    """PennyLane ``default.mixed`` with torch backprop on the same circuit and noise: each gate,
    then its error as a ``QubitChannel`` of qiskit-aer's Kraus operators. Returns the vector-
    Jacobian product ``(x, w) -> (x.grad, w.grad)`` of the outputs contracted with a fixed
    cotangent (what a training step needs; less than gpuqnn's per-sample Jacobians)."""
    import pennylane as qml
    import torch
    from qiskit.quantum_info import Kraus

    from benchmarks.peers.translation import compile_expression

    circuit = network.circuit
    n = circuit.num_qubits
    steps = []
    for instruction in circuit.data:
        operation = instruction.operation
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        angles = [compile_expression(p, torch) for p in operation.params]
        error = model._default_quantum_errors.get(operation.name)
        kraus = None if error is None else Kraus(error.to_quantumchannel()).data
        steps.append((operation.name, qubits, angles, kraus))
    # p as rz: equal up to a global phase, which a density matrix does not see (PennyLane's
    # PhaseShift detaches a broadcast angle from the torch graph)
    gates = {"h": qml.Hadamard, "p": qml.RZ, "ry": qml.RY, "cx": qml.CNOT}
    inputs = [p.name for p in network.input_params]
    weights = [p.name for p in network.weight_params]
    observable = qml.prod(*[qml.PauliZ(wire) for wire in range(n)])

    @qml.qnode(qml.device("default.mixed", wires=n), interface="torch", diff_method="backprop")
    def qnode(x: Any, w: Any) -> Any:
        env = {name: x[:, j] for j, name in enumerate(inputs)}
        env.update({name: w[j] for j, name in enumerate(weights)})
        for name, qubits, angles, kraus in steps:
            wires = [n - 1 - q for q in qubits]  # qiskit qubit q is wire n - 1 - q
            gates[name](*[angle(env) for angle in angles], wires=wires)
            if kraus is not None:  # qiskit's matrices are little-endian over the qubits
                qml.QubitChannel(kraus, wires=wires[::-1])
        return qml.expval(observable)

    def vjp(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xt = torch.tensor(x, requires_grad=True)
        wt = torch.tensor(w, requires_grad=True)
        out = qnode(xt, wt)
        cotangent = torch.tensor(np.linspace(0.5, 1.5, x.shape[0]))
        (out * cotangent).sum().backward()
        return xt.grad.numpy(), wt.grad.numpy()

    return vjp


def best_time(call: Callable[[], Any], best: float) -> float:
    """The smaller of ``best`` and the time of one ``call``."""
    start = time.perf_counter()
    call()
    return min(best, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="gpuqnn's samples per pass")
    parser.add_argument("--ref-batch", type=int, default=1, help="the reference's samples")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=1, help="threads of every side")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 2, 1 round")
    parser.add_argument(
        "--pennylane",
        action="store_true",
        help="also PennyLane default.mixed with torch backprop (a VJP) on --ref-batch samples",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.ref_batch, args.rounds = 2, 1, 1
    print(fix_threads(args.threads))
    ours, reference, num_inputs, num_weights, model = networks(args.threads)
    pennylane = pennylane_mixed(ours, model) if args.pennylane else None
    rng = np.random.default_rng(0)
    x = rng.uniform(0, np.pi, (args.batch, num_inputs))
    w = rng.uniform(-1, 1, num_weights)
    x_ref = x[: args.ref_batch]
    with threadpool_limits(args.threads):
        ours_best = reference_best = pennylane_best = float("inf")
        for round_ in range(args.rounds):
            ours_best = best_time(lambda: ours.backward(x, w), ours_best)
            start = time.perf_counter()
            theirs = reference.backward(x_ref, w)
            reference_best = min(reference_best, time.perf_counter() - start)
            if pennylane is not None:
                start = time.perf_counter()
                products = pennylane(x_ref, w)
                pennylane_best = min(pennylane_best, time.perf_counter() - start)
            if round_ == 0:  # the peers' first round is the check too
                mine = ours.backward(x_ref, w)
                pairs = zip(mine, theirs, strict=True)
                error = max(float(np.max(np.abs(a - b))) for a, b in pairs)
                print(f"check: qiskit-ml+aer's gradients agree to {error:.1e}")
                if pennylane is not None:
                    cotangent = np.linspace(0.5, 1.5, len(x_ref))
                    expected = (
                        np.einsum("b,bi->bi", cotangent, mine[0][:, 0]),
                        np.einsum("b,bw->w", cotangent, mine[1][:, 0]),
                    )
                    pairs = zip(products, expected, strict=True)
                    pl_error = max(float(np.max(np.abs(a - b))) for a, b in pairs)
                    print(f"check: PennyLane's vector-Jacobian products agree to {pl_error:.1e}")
                    error = max(error, pl_error)
    per_sample_ours = ours_best / args.batch
    per_sample_ref = reference_best / args.ref_batch
    print("zz8 estimator, depolarizing + thermal relaxation, backward with input gradients")
    print(f"{'side':<58}{'s/sample':>10}")
    label = f"gpuqnn noise_model (density matrix, batch {args.batch})"
    print(f"{label:<58}{per_sample_ours:>10.4f}")
    samples = f"{args.ref_batch} sample" + ("s" if args.ref_batch > 1 else "")
    label = f"qiskit-ml over qiskit-aer EstimatorV2 density_matrix ({samples})"
    print(f"{label:<58}{per_sample_ref:>10.4f}")
    if pennylane is not None:
        per_sample_pl = pennylane_best / args.ref_batch
        label = f"PennyLane default.mixed + torch backprop, VJP ({samples})"
        print(f"{label:<58}{per_sample_pl:>10.4f}")
    print(f"ratio qiskit-ml+aer / gpuqnn: {per_sample_ref / per_sample_ours:.1f}x")
    if pennylane is not None:
        print(f"ratio PennyLane default.mixed / gpuqnn: {per_sample_pl / per_sample_ours:.1f}x")
    return 0 if error < 1e-8 else 1


if __name__ == "__main__":
    raise SystemExit(main())

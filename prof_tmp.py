import time, numpy as np
from gpuqnn.examples import zz_real_amplitudes
from gpuqnn._compile import compile_circuit
from gpuqnn._native import NativeRunner, load_core
from gpuqnn._sim.backend import select_backend
from gpuqnn._sim.block_circuit import BlockCircuit
from gpuqnn._sim.readout import PauliReadout
from gpuqnn._sim.buffers import Buffers
from qiskit.quantum_info import SparsePauliOp
qc, fm, an = zz_real_amplitudes(8, reps=2)
p = compile_circuit(qc, list(qc.parameters))
be = select_backend("cpu", "complex128")
ro = PauliReadout([SparsePauliOp("Z"*8)], p.qubit_map, p.num_qubits, be)
for isa in load_core().isas():
    r = NativeRunner(load_core(), BlockCircuit(p, be), ro, isa)
    a = np.random.default_rng(0).uniform(0, 6, (256, p.angles.num_slots))
    t = []
    for _ in range(5):
        s = time.perf_counter(); r.forward(a, Buffers(np)); t.append(time.perf_counter() - s)
    print(isa, "fwd ms", min(t) * 1e3)
    t = []
    for _ in range(3):
        s = time.perf_counter(); r.adjoint(a, list(range(60)), Buffers(np), False, np.ones((256,1))); t.append(time.perf_counter() - s)
    print(isa, "vjp ms", min(t) * 1e3)

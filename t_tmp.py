import time, numpy as np, sys
from gpuqnn import EstimatorQNN
from gpuqnn.examples import zz_real_amplitudes
def best(f, n=7):
    t = []
    for _ in range(n):
        s = time.perf_counter(); f(); t.append(time.perf_counter() - s)
    return min(t) * 1e3
nq = int(sys.argv[1]) if len(sys.argv) > 1 else 8
qc, fm, an = zz_real_amplitudes(nq, reps=2)
for dt in ["complex128", "complex64"]:
  nets = {e: EstimatorQNN(circuit=qc, input_params=fm.parameters, weight_params=an.parameters, input_gradients=True, engine=e, threads=1, dtype=dt) for e in ["native", "numpy"]}
  for B in [16, 256]:
    x, w = np.random.default_rng(0).uniform(0, 6, (B, nq)), np.random.default_rng(1).uniform(0, 6, an.num_parameters)
    g = np.ones((B, 1))
    for e, n in nets.items():
        print(dt, B, e, "fwd %.3f ms  bwd %.3f ms  vjp %.3f ms" % (best(lambda: n.forward(x, w)), best(lambda: n.backward(x, w)), best(lambda: n.vjp(x, w, g))))

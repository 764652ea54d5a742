"""The strict emulation of the host build (``statevector.cuh``'s ``gq_strict``): snapshot phases,
same-byte write detection, seeded random thread order and all-32-lanes warp collectives.

A deliberately broken tiny kernel shows what it catches that running threads one after the
other (the plain emulation, in either order) passes; the benchmark circuits' generated kernels
run under it against the plain emulation and the NumPy engine. The random programs of
``programs.py`` run under it in ``test_cuda_kernels.py`` and ``test_cuda_adjoint.py`` (their
``order`` parameter, ``engines.THREAD_ORDERS``).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.workloads import zz_kernel_tables
from gpuqnn._cuda.codegen import GeneratedKernel
from gpuqnn._cuda.launchers import Launch
from gpuqnn._cuda.source import kernel_source
from gpuqnn._sim.adjoint import adjoint_gradients
from gpuqnn._sim.block_circuit import BlockCircuit

from engines import HostFusedLauncher, HostKernels

pytestmark = pytest.mark.gpu_logic

THREADS = 64  # two warps
_TINY = r"""
// One block of 64 threads; x: (64,) inputs, out: (64,) outputs; shared: 64 doubles.
GQ_DEVICE void tiny_body(const gq_ctx& ctx, unsigned char* smem, const double* x, double* out,
                         int variant) {
  double* a = reinterpret_cast<double*>(smem);
  GQ_EACH_THREAD(t) { a[t] = variant == 3 ? -1.0 : 0.0; }
  GQ_SYNC();
  if (variant == 0) {  // correct: every lane of each warp adds into its warp's cell
    GQ_EACH_THREAD(t) { gq_warp_add(ctx, a, t, x[t] > 0 ? x[t] : 0.0); }
  } else if (variant == 1) {  // a shuffle in divergent code: only some lanes reach it
    GQ_EACH_THREAD(t) {
      if (x[t] > 0) gq_warp_add(ctx, a, t, x[t]);
    }
  } else if (variant == 2) {  // a lost update: every thread adds into one shared cell
    GQ_EACH_THREAD(t) { a[0] += x[t] > 0 ? x[t] : 0.0; }
  } else if (variant == 3) {  // reads its own write, and a neighbour's without a barrier
    GQ_EACH_THREAD(t) {
      a[t] = x[t];
      out[t] = a[t] + a[t ^ 1];
    }
  } else {  // a barrier inside divergent code
    GQ_EACH_THREAD(t) {
      if (t == 0) GQ_SYNC();
    }
  }
  GQ_SYNC();
  if (variant != 3) GQ_BLOCK_FOR(i, 64) out[i] = a[i];
  GQ_SYNC();
}
#ifdef GPUQNN_HOST
extern "C" int tiny(const double* x, double* out, int variant, long long grid, int block,
                    long long shared, int mode) {
  return gq_host_launch(grid, block, shared, mode, [&](const gq_ctx& ctx, unsigned char* smem) {
    tiny_body(ctx, smem, x, out, variant);
  });
}
#endif
"""


def _tiny(kernels: HostKernels, variant: int, **order) -> np.ndarray:
    source = "#define GQ_SPECIALISED 1\n" + kernel_source() + _TINY
    kernel = GeneratedKernel(source, "tiny", THREADS, 8 * THREADS, ("ptr", "ptr", "i32"), "tiny", 0)
    x = np.linspace(-1.0, 2.0, THREADS)
    out = np.full(THREADS, np.nan)
    launch = Launch("tiny", 1, THREADS, 8 * THREADS, (x, out, variant))
    kernels.specialised(kernel).execute(launch, **order)
    return out


PLAIN = [{}, {"reverse": True}]


def test_a_correct_warp_sum_passes_both_emulations(kernels: HostKernels) -> None:
    x = np.linspace(-1.0, 2.0, THREADS)
    expected = [np.maximum(x[:32], 0).sum(), np.maximum(x[32:], 0).sum()]
    for order in [*PLAIN, {"strict": 1}, {"strict": 2}]:
        np.testing.assert_allclose(_tiny(kernels, 0, **order)[:2], expected, rtol=1e-15)


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        (1, "not reached by all 32 lanes"),
        (2, "two threads of a phase wrote the same shared-memory byte"),
    ],
    ids=["divergent-shuffle", "lost-update"],
)
def test_strict_catches_races_the_plain_emulation_passes(
    kernels: HostKernels, variant: int, message: str
) -> None:
    """Run one thread after the other, a shuffle reached by some lanes and threads adding into
    one shared cell both give the right sums, in either order; the strict emulation fails
    the launch, whatever its seed."""
    x = np.linspace(-1.0, 2.0, THREADS)
    cells = [np.maximum(x[:32], 0).sum(), np.maximum(x[32:], 0).sum()]
    expected = cells if variant == 1 else [sum(cells)]
    for order in PLAIN:
        out = _tiny(kernels, variant, **order)
        np.testing.assert_allclose(out[: len(expected)], expected, rtol=1e-14)
    for seed in (0, 5):
        with pytest.raises(RuntimeError, match=message):
            _tiny(kernels, variant, strict=seed)


def test_strict_phases_see_shared_memory_as_it_was_when_they_started(kernels: HostKernels) -> None:
    """A thread reads its own write at once, another thread's only after the barrier: the
    strict result is the same for every seed, the plain ones depend on the order."""
    x = np.linspace(-1.0, 2.0, THREADS)
    snapshot = x - 1.0  # a[t] is x[t] (own write), a[t ^ 1] still -1
    for seed in (0, 1, 2):
        np.testing.assert_array_equal(_tiny(kernels, 3, strict=seed), snapshot)
    forward, reverse = _tiny(kernels, 3), _tiny(kernels, 3, reverse=True)
    assert not np.array_equal(forward, snapshot) and not np.array_equal(reverse, snapshot)


@pytest.mark.parametrize("order", [*PLAIN, {"strict": 3}], ids=["forward", "reverse", "strict"])
def test_a_barrier_in_divergent_code_fails_the_launch(kernels: HostKernels, order: dict) -> None:
    with pytest.raises(RuntimeError, match="barrier .GQ_SYNC. inside a thread loop"):
        _tiny(kernels, 4, **order)


def test_strict_seed_is_checked(kernels: HostKernels) -> None:
    with pytest.raises(ValueError, match="strict must be a seed"):
        _tiny(kernels, 0, strict=-1)


@pytest.mark.parametrize("dtype", ["complex128", "complex64"])
def test_benchmark_kernels_pass_the_strict_emulation(kernels: HostKernels, dtype: str) -> None:
    """The zz8 estimator's generated forward (with shifts) and adjoint (a backward's slots; two
    warps per block) kernels: the strict emulation agrees with the plain one to rounding (the
    warp sums in the device's shuffle order) and with the NumPy engine."""
    kp, slots = zz_kernel_tables(8, dtype)
    rng = np.random.default_rng(8)
    base = rng.uniform(0, 2 * np.pi, (3, kp.num_slots))
    shift_slot = np.array([-1, slots[0], slots[-1]], np.int32)
    shift_value = np.array([0.0, np.pi / 2, -np.pi / 2])
    strict = HostFusedLauncher(kernels, kp, dtype, max_blocks=2, strict=8)
    plain = HostFusedLauncher(kernels, kp, dtype, max_blocks=2)
    assert strict.adjoint_kernel(slots, False).threads == THREADS
    np.testing.assert_array_equal(
        strict.run(base, shift_slot, shift_value), plain.run(base, shift_slot, shift_value)
    )
    got = strict.adjoint(base, slots)
    np.testing.assert_allclose(got, plain.adjoint(base, slots), atol=1e-13, rtol=0)
    readout = kp.readout
    circuit = BlockCircuit(kp.program, readout.backend)
    angles = base.astype(readout.backend.real_dtype)
    expected = adjoint_gradients(circuit, readout, angles, slots, False)
    tol = 1e-10 if dtype == "complex128" else 1e-6
    np.testing.assert_allclose(got, np.asarray(expected), atol=tol, rtol=0)

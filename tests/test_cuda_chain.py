"""Issue 18, item 8: a program deeper than the cap on passes per kernel runs as a chain of
generated kernels (each compiled on its own, so that no first call compiles for long), with the
same outputs and derivatives as one kernel, on the host build of the kernels."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from gpuqnn._cuda.codegen import ADJOINT_PART_KERNEL, FORWARD_PART_KERNEL
from gpuqnn._cuda.passes import MAX_KERNEL_PASSES, pass_spans
from gpuqnn._cuda.tables import encode_tables
from gpuqnn._sim.adjoint import adjoint_gradients
from gpuqnn._sim.block_circuit import BlockCircuit

from engines import HostFusedLauncher, HostKernels
from programs import engine_outputs, make_readout, random_program, random_shifts

pytestmark = pytest.mark.gpu_logic

TOL = {"complex128": 1e-10, "complex64": 1e-6}


def test_pass_spans_cover_the_passes_in_nearly_equal_parts() -> None:
    assert pass_spans(72) == [(0, 72)] and MAX_KERNEL_PASSES == 72
    assert pass_spans(73) == [(0, 36), (36, 73)]
    assert pass_spans(10, 4) == [(0, 3), (3, 6), (6, 10)]
    assert pass_spans(7, None) == [(0, 7)]
    assert pass_spans(0, 4) == [(0, 0)]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="max_passes must be a positive int or None"):
            pass_spans(10, bad)


def _launches(launcher: HostFusedLauncher) -> list[str]:
    names: list[str] = []
    run = launcher._execute_generated
    launcher._execute_generated = lambda kernel, launch: (  # type: ignore[method-assign]
        names.append(kernel.name),
        run(kernel, launch),
    )
    return names


@pytest.mark.parametrize(
    ("n", "ops", "readout_kind", "dtype", "vjp"),
    [
        (3, 12, "pauli", "complex128", True),
        pytest.param(4, 30, "pauli", "complex128", False, marks=pytest.mark.slow),
        pytest.param(4, 30, "pieces", "complex64", False, marks=pytest.mark.slow),
        pytest.param(4, 30, "direct", "complex128", True, marks=pytest.mark.slow),
    ],
)
def test_a_deep_program_splits_into_chained_kernels_with_the_same_results(
    kernels: HostKernels, n: int, ops: int, readout_kind: str, dtype: str, vjp: bool
) -> None:
    """A program capped at a third of its passes per kernel: the forward pass (with parameter
    shifts) is a chain of forward parts, the adjoint a chain of forward parts, the tail and the
    earlier adjoint parts (one storing the states for the next); outputs and derivatives equal
    the NumPy engine's, in the strict emulation. (Slow: every part is a g++
    build; CI runs the smallest case.)"""
    seed = 11
    program = random_program(seed, n, ops)
    readout = make_readout(readout_kind, n, seed, dtype)
    kp = encode_tables(program, readout)
    cap = -(-len(kp.passes) // 3)
    chained = HostFusedLauncher(kernels, kp, dtype, max_passes=cap, strict=seed, max_blocks=2)
    spans = pass_spans(len(kp.passes), cap)
    assert len(spans) == 3
    assert [k.span for k in chained.forward_chain] == spans
    rng = np.random.default_rng(seed)
    k = program.angles.num_slots
    base = rng.uniform(-np.pi, np.pi, (3, k))
    shift_slot, shift_value = random_shifts(rng, k, 3)

    threads: list[str] = []
    build = chained._build_generated
    chained._build_generated = lambda kernel: (  # type: ignore[method-assign]
        threads.append(threading.current_thread().name),
        build(kernel),
    )
    names = _launches(chained)
    got = chained.run(base, shift_slot, shift_value)
    assert names == [FORWARD_PART_KERNEL] * len(spans)
    assert len(threads) == len(spans)  # a chain's kernels compile at once where cores allow
    if (os.cpu_count() or 1) > 1:  # on pool threads (how many of them: the scheduler's choice)
        assert all(name.startswith("ThreadPoolExecutor") for name in threads), threads
    expected = engine_outputs(program, readout, "complex128", base, shift_slot, shift_value)
    np.testing.assert_allclose(got, expected, atol=TOL[dtype], rtol=0)
    assert chained.state_bytes(5) == 5 * kp.dim * np.dtype(dtype).itemsize

    slots = [int(s) for s in rng.permutation(k)]
    cotangent = rng.normal(size=(3, kp.num_outputs)) if vjp else None
    chain = chained.adjoint_chain(slots, vjp)
    names.clear()
    got = chained.adjoint(base, slots, cotangent)
    assert names == [kernel.name for kernel in chain]
    adjoint_parts = names.count(ADJOINT_PART_KERNEL)
    assert names[: len(spans) - 1] == [FORWARD_PART_KERNEL] * (len(spans) - 1)
    assert adjoint_parts >= 2, names  # the tail and at least one earlier part
    assert chained.adjoint_kernel(slots, vjp) is chain[len(spans) - 1]
    circuit = BlockCircuit(program, readout.backend)
    real = readout.backend.real_dtype
    g = None if cotangent is None else cotangent.astype(real)
    reference = np.asarray(
        adjoint_gradients(circuit, readout, base.astype(real), slots, False, cotangent=g)
    )
    scale = max(1.0, float(np.abs(reference).max()))
    np.testing.assert_allclose(got, reference, atol=TOL[dtype] * scale, rtol=0)
    outputs = 1 if vjp else kp.num_outputs
    assert chained.adjoint_state_bytes(slots, vjp) == kp.dim * np.dtype(dtype).itemsize * (
        1 + 2 * outputs
    )

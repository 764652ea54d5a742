"""Issue 18, item 9: the fused kernels keep states in a swizzled shared-memory layout
(``layout.swizzle``), so that a warp's reads in a pass on low qubits spread over the 32 banks.
Counted on the access pattern of the generated item loop (thread t takes item t, amplitude
``spread(t) | offset_j`` for each local index j), with the model of how a warp's 4-, 8- and
16-byte accesses are served (``layout.wavefronts``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gpuqnn._cuda.codegen import generate_adjoint, generate_forward
from gpuqnn._cuda.layout import swizzle, swizzle_bits, wavefronts
from gpuqnn._cuda.tables import DEFAULT_SHARED_LIMIT, encode_tables

from programs import make_readout, random_program

ITEMSIZES = {"complex128": 16, "complex64": 8}


def _spread(i: int, positions: tuple[int, ...]) -> int:
    """``i`` with a zero bit inserted at each of ``positions``: codegen's ``_spread``."""
    for p in sorted(positions):
        i = ((i >> p) << (p + 1)) | (i & ((1 << p) - 1))
    return i


def _conflict(targets: tuple[int, ...], itemsize: int, swizzled: bool) -> float:
    """The worst, over an op's local indices j, of a warp's wavefronts per ideal (1: free of
    conflicts) for a pass on ``targets``."""
    ideal = 32 * itemsize // 128
    worst = 0
    for j in range(1 << len(targets)):
        offset = sum(((j >> t) & 1) << q for t, q in enumerate(targets))
        slots = [_spread(lane, targets) | offset for lane in range(32)]
        if swizzled:
            slots = [swizzle(x, itemsize) for x in slots]
        worst = max(worst, wavefronts(slots, itemsize))
    return worst / ideal


def test_the_bank_model() -> None:
    """One 4-byte word per lane in distinct banks: one wavefront; the same bank, different
    words: 32; 16-byte lanes are served a quarter warp at a time (4 wavefronts at best)."""
    assert wavefronts(list(range(32)), 4) == 1
    assert wavefronts([32 * lane for lane in range(32)], 4) == 32
    assert wavefronts([lane % 2 for lane in range(32)], 4) == 1  # same word: a broadcast
    assert wavefronts(list(range(32)), 16) == 4 and wavefronts(list(range(32)), 8) == 2
    assert wavefronts([8 * lane for lane in range(32)], 16) == 32  # one bank group


@pytest.mark.parametrize("dtype", sorted(ITEMSIZES))
def test_dense_passes_on_the_lowest_qubits_are_free_of_bank_conflicts(dtype: str) -> None:
    """The issue's case, a 3-qubit dense pass on qubits 0-2: each thread's 8 amplitudes start
    at ``8 t``, so with the plain layout every lane of a phase reads the same bank group (8-way
    in both dtypes); swizzled, none conflicts. So for 1 and 2 qubits from qubit 0."""
    itemsize = ITEMSIZES[dtype]
    assert _conflict((0, 1, 2), itemsize, swizzled=False) == 8
    for targets in [(0,), (0, 1), (0, 1, 2)]:
        assert _conflict(targets, itemsize, swizzled=True) == 1, targets


@pytest.mark.parametrize("dtype", sorted(ITEMSIZES))
def test_the_swizzle_never_adds_conflicts_and_cuts_them_overall(dtype: str) -> None:
    """Over every pass on 1-3 of 8 qubits (and a phase run's consecutive amplitudes) the
    swizzled layout is never worse than the plain one, and the mean of each pass's worst
    conflict degree drops from 2.2 to 1.5 (complex128) and 2.8 to 1.8 (complex64). What
    remains (2-way; 4-way in complex64 on qubits 2 and 3) is on passes whose targets skip a
    low qubit."""
    itemsize = ITEMSIZES[dtype]
    plain, swizzled = [], []
    for k in (1, 2, 3):
        for targets in itertools.combinations(range(8), k):
            plain.append(_conflict(targets, itemsize, swizzled=False))
            swizzled.append(_conflict(targets, itemsize, swizzled=True))
    assert all(s <= p for s, p in zip(swizzled, plain, strict=True))
    expected = {"complex128": (2.18, 1.48, 2), "complex64": (2.76, 1.77, 4)}[dtype]
    assert np.mean(plain) == pytest.approx(expected[0], abs=0.01)
    assert np.mean(swizzled) == pytest.approx(expected[1], abs=0.01)
    assert max(plain) == 8 and max(swizzled) == expected[2]
    run = list(range(64))  # a phase run: thread t at t, t + threads, ...
    assert wavefronts([swizzle(x, itemsize) for x in run], itemsize) == wavefronts(run, itemsize)


@pytest.mark.parametrize("dtype", sorted(ITEMSIZES))
def test_the_swizzle_is_a_permutation_within_rows_of_banks(dtype: str) -> None:
    itemsize = ITEMSIZES[dtype]
    bits = swizzle_bits(itemsize)
    assert 1 << bits == 128 // itemsize
    for dim in (1, 2, 8, 64, 4096):
        moved = [swizzle(x, itemsize) for x in range(dim)]
        assert sorted(moved) == list(range(dim))
        assert all(m >> bits == x >> bits for x, m in enumerate(moved))


@pytest.mark.parametrize("dtype", sorted(ITEMSIZES))
def test_the_generated_kernels_use_the_modelled_swizzle(dtype: str) -> None:
    """The forward and adjoint kernels address their states through the swizzled accessor,
    with the L the model uses (the host build and the tests against NumPy then check that
    every access goes through it)."""
    program = random_program(3, 5)
    kp = encode_tables(program, make_readout("pauli", 5, 3, dtype))
    accessor = f"gqs_swizzled<cplx, {swizzle_bits(ITEMSIZES[dtype])}>"
    forward = generate_forward(kp, dtype).source
    adjoint = generate_adjoint(kp, dtype, [0], False, DEFAULT_SHARED_LIMIT).source
    assert f"const {accessor} psi{{" in forward
    assert f"const {accessor} psi{{" in adjoint and f"const {accessor} lam{{" in adjoint
    assert "x ^ ((x >> L) & ((1LL << L) - 1))" in forward

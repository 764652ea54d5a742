"""The process-wide pieces of the CPU passes: the shared worker pool, the BLAS limit, fork safety
and options checked once at the boundary."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn._internals import simulator_of
from gpuqnn._sim import threads
from gpuqnn._sim.backend import select_backends
from gpuqnn._sim.executor import ChunkExecutor, Sizing
from gpuqnn.examples import parity, zz_real_amplitudes

QUBITS = 10
BATCH = 256  # 10 qubits x 256 samples: enough states for every core to get a worker


def _network(**kwargs) -> EstimatorQNN:
    qc, feature_map, ansatz = zz_real_amplitudes(QUBITS, reps=1)
    return EstimatorQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
        **kwargs,
    )


def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, np.pi, (BATCH, QUBITS)), rng.uniform(0, np.pi, 2 * QUBITS)


def _blas_threads() -> list[int]:
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_a_pass_uses_several_workers_here() -> None:
    """The tests below exercise the pool only if a pass takes more than one worker."""
    if threads.available_cores() < 2:
        pytest.skip("one core: passes run on the calling thread")
    network = _network()
    sizing = simulator_of(network).executor.sizing(1 << 20, "a row", BATCH, states=1)
    assert sizing.workers >= 2


def test_two_networks_in_two_threads_give_the_serial_results() -> None:
    first, second = _network(), _network(gradient_method="parameter_shift")
    data = [_data(1), _data(2)]
    serial = [
        (first.forward(*data[0]), first.backward(*data[0])),
        (second.forward(*data[1]), second.backward(*data[1])),
    ]
    results: list = [None, None]
    errors: list = []
    barrier = threading.Barrier(2)

    def work(i: int, network: EstimatorQNN) -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(3):
                results[i] = (network.forward(*data[i]), network.backward(*data[i]))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i, n)) for i, n in enumerate((first, second))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not errors and all(not w.is_alive() for w in workers)
    for (out, (gi, gw)), (ref_out, (ref_gi, ref_gw)) in zip(results, serial, strict=True):
        # chunk sizes follow the free memory, so only the rounding may differ
        np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-12)
        np.testing.assert_allclose(gi, ref_gi, rtol=0, atol=1e-12)
        np.testing.assert_allclose(gw, ref_gw, rtol=0, atol=1e-12)


def _multi_threaded_blas() -> list[int]:
    threads_now = _blas_threads()
    if not threads_now or max(threads_now) < 2:
        pytest.skip("BLAS runs one thread here: there is no limit to observe")
    return threads_now


def test_workers_run_single_threaded_blas_and_the_user_keeps_their_setting() -> None:
    before = _multi_threaded_blas()
    _network().backward(*_data(3))  # a multi-worker pass
    assert _blas_threads() == before
    with threads.blas_limited():
        in_worker = threads.worker_pool().submit(_blas_threads).result(timeout=30)
    assert set(in_worker) == {1}
    assert _blas_threads() == before


def test_a_pass_ending_in_one_thread_keeps_the_limit_for_another_still_running() -> None:
    """The limit is reference-counted: held until the last concurrent pass ends. (Observed
    through the count and the limiter: OpenBLAS's own reading of a count set from another
    thread is not reliable across builds.)"""
    before = _multi_threaded_blas()
    entered, release = threading.Event(), threading.Event()

    def long_pass() -> None:
        with threads.blas_limited():
            entered.set()
            release.wait(timeout=30)

    other = threading.Thread(target=long_pass)
    other.start()
    assert entered.wait(timeout=30)
    with threads.blas_limited():
        assert threads._shared.users == 2
    assert threads._shared.users == 1 and threads._shared.limiter is not None  # still held
    release.set()
    other.join(timeout=30)
    assert threads._shared.users == 0 and threads._shared.limiter is None
    assert _blas_threads() == before  # the last pass out restored the user's setting


def test_simulators_share_one_pool() -> None:
    _network().forward(*_data(4))
    pool = threads.worker_pool()
    _network(gradient_method="parameter_shift").backward(*_data(5))
    assert threads.worker_pool() is pool


# ---- fork ---------------------------------------------------------------------------------------
_FORKED: dict = {}


def _forward_in_child(seed: int) -> np.ndarray:
    network = _FORKED["network"]
    return network.forward(*_data(seed))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)
def test_a_forked_pool_computes_after_the_parent_used_its_workers() -> None:
    network = _network()
    expected = [network.forward(*_data(seed)) for seed in (6, 7)]  # the parent's workers ran
    _FORKED["network"] = network
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            got = pool.map_async(_forward_in_child, (6, 7)).get(timeout=120)
    finally:
        _FORKED.clear()
    for out, ref in zip(got, expected, strict=True):
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)
def test_a_dataloader_with_forked_workers_feeds_a_torch_connector_model() -> None:
    """The dataset's workers run a network in forked children (features from a quantum layer),
    and the parent trains a TorchConnector model on them afterwards."""
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, Dataset  # noqa: PLC0415

    from gpuqnn import TorchConnector  # noqa: PLC0415

    features = _network()
    inputs, weights = _data(8)
    expected = features.forward(inputs, weights)  # the parent used its workers first

    class QuantumFeatures(Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int):
            rows = inputs[i * 64 : (i + 1) * 64]
            return torch.from_numpy(features.forward(rows, weights)), i

    loader = DataLoader(
        QuantumFeatures(), batch_size=None, num_workers=2, multiprocessing_context="fork"
    )
    got = {i: batch for batch, i in loader}
    for i in range(4):
        np.testing.assert_allclose(
            got[i].numpy(), expected[i * 64 : (i + 1) * 64], rtol=0, atol=1e-12
        )
    qc, feature_map, ansatz = zz_real_amplitudes(2, reps=1)
    sampler = SamplerQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        interpret=parity,
        output_shape=2,
        input_gradients=True,
    )
    model = torch.nn.Sequential(torch.nn.Linear(1, 2), TorchConnector(sampler))
    loss = model(got[0].float()).sum()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def _forward_in_child_with_the_lock_taken(seed: int) -> np.ndarray:
    return _FORKED["network"].forward(*_data(seed))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)
def test_a_child_forked_while_a_simulator_lock_is_held_gets_it_free() -> None:
    """Another thread held the network's buffer lock at the fork: the child's copy of it must
    not stay locked forever."""
    network = _network()
    expected = network.forward(*_data(11))
    lock = simulator_of(network).executor._lock
    _FORKED["network"] = network
    try:
        with lock, multiprocessing.get_context("fork").Pool(1) as pool:
            got = pool.map_async(_forward_in_child_with_the_lock_taken, (11,)).get(timeout=60)
    finally:
        _FORKED.clear()
    np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-12)


# ---- options, checked once --------------------------------------------------------------------
def test_integral_float_max_memory_is_accepted() -> None:
    assert _network(max_memory=8e6).max_memory == 8_000_000
    with pytest.raises(ValueError, match=r"max_memory must be a positive whole number.*8\.5"):
        _network(max_memory=8.5)


def test_device_cuda_means_the_current_device() -> None:
    try:
        network = _network(device="cuda")
    except RuntimeError as exc:  # no GPU here: the reason, not a rejected option
        assert "device='cuda' needs a CUDA GPU" in str(exc)
    else:
        assert network.device.startswith("cuda:")
    with pytest.raises(ValueError, match=r"device must be 'auto', .*got 'cuda:x'"):
        _network(device="cuda:x")


def test_seeded_shots_repeat_per_call() -> None:
    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=1)
    sampler = SamplerQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        shots=100,
        seed=7,
    )
    x, w = np.full((4, 3), 0.3), np.full(ansatz.num_parameters, 0.2)
    first, second = sampler.forward(x, w), sampler.forward(x, w)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first[0], first[1])  # rows still draw different shots
    np.testing.assert_array_equal(sampler.backward(x, w)[1], sampler.backward(x, w)[1])


# ---- threads, BLAS on every big pass, devices under torchrun -----------------------------------
def test_threads_option_and_omp_num_threads(monkeypatch) -> None:
    assert _network(threads=1).threads == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what torchrun, Ray and Dask set
    one = _network()
    assert one.threads == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert _network().threads == threads.available_cores()
    with pytest.raises(ValueError, match="threads must be a positive int, got 0"):
        _network(threads=0)
    reference = _network(threads=2)
    x, w = _data(9)
    np.testing.assert_allclose(one.forward(x, w), reference.forward(x, w), rtol=0, atol=1e-12)
    for a, b in zip(one.backward(x, w), reference.backward(x, w), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_a_single_worker_pass_also_holds_blas_to_one_thread(monkeypatch) -> None:
    import gpuqnn._sim.executor as executor_module  # noqa: PLC0415

    seen = []
    original = executor_module.pass_limits

    def spy():
        seen.append(1)
        return original()

    monkeypatch.setattr(executor_module, "pass_limits", spy)
    network = _network(threads=1)
    x, w = _data(10)
    network.backward(x, w)  # 10 qubits x 256 samples: a big pass on one worker
    assert seen
    seen.clear()
    network.forward(x[:1], w)  # one small state: not worth a BLAS call
    assert not seen


def test_gpus_under_torchrun_follow_the_local_rank() -> None:
    from gpuqnn._sim.backend import default_cuda_device, processes_per_device  # noqa: PLC0415

    assert default_cuda_device(4, current=0, env={}) == 0
    assert default_cuda_device(4, current=2, env={}) == 2  # the current device otherwise
    assert default_cuda_device(4, current=0, env={"LOCAL_RANK": "3"}) == 3
    with pytest.raises(RuntimeError, match="LOCAL_RANK=3"):  # the one rule: no wrap-around
        default_cuda_device(2, current=0, env={"LOCAL_RANK": "3"})
    narrowed = {"LOCAL_RANK": "3", "CUDA_VISIBLE_DEVICES": "5"}
    assert default_cuda_device(1, current=0, env=narrowed) == 0  # already narrowed to one
    ranks = {"LOCAL_WORLD_SIZE": "8"}
    assert processes_per_device(4, gpu=True, env=ranks) == 2
    assert processes_per_device(8, gpu=True, env=ranks) == 1
    assert processes_per_device(1, gpu=True, env={**ranks, "CUDA_VISIBLE_DEVICES": "2"}) == 1
    assert processes_per_device(1, gpu=False, env=ranks) == 8
    assert processes_per_device(1, gpu=False, env={}) == 1


def test_the_default_budget_is_a_share_of_the_free_memory() -> None:
    from dataclasses import replace  # noqa: PLC0415

    from gpuqnn._sim.executor import ChunkExecutor  # noqa: PLC0415

    backend = simulator_of(_network()).backend
    alone = ChunkExecutor(backend, QUBITS)
    shared = ChunkExecutor(replace(backend, share=4), QUBITS)
    assert shared.budget() <= alone.budget() / 3  # free memory moves a little
    bounded_alone = ChunkExecutor(backend, QUBITS, max_memory=1 << 20)
    bounded_shared = ChunkExecutor(replace(backend, share=4), QUBITS, max_memory=1 << 20)
    assert bounded_shared.budget() == bounded_alone.budget()  # an explicit bound is per process


def test_malloc_thresholds_from_the_environment_are_held_during_passes(monkeypatch) -> None:
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert threads._Malloc.from_environment() is None  # nothing set: malloc is left alone
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # what Dask's workers set
    found = threads._Malloc.from_environment()
    if found is None:
        pytest.skip("not glibc")
    assert (found.trim, found.mmap) == (65536, 128 * 1024)
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(
        threads._shared,
        "malloc",
        threads._Malloc(lambda option, value: calls.append((option, value)) or 1, 65536, 131072),
    )
    with threads.malloc_held():
        with threads.malloc_held():  # a second pass at once changes nothing
            assert len(calls) == 2
        assert len(calls) == 2  # still held for the first
    assert calls == [(-3, 64 << 20), (-1, 1 << 30), (-1, 65536), (-3, 131072)]
    assert threads._shared.malloc_users == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_fork_waits_for_another_threads_running_pass() -> None:
    """OpenBLAS's fork handler shuts its thread pool down; a BLAS call in flight in another
    thread then waits forever for its workers (the parent hung in 2 of 4 runs). A pass holds
    the fork gate, so a fork from another thread starts only once the pass is done."""
    backend = select_backends("cpu", "complex128")[0]
    executor = ChunkExecutor(backend, 2, workers=1)
    started, release = threading.Event(), threading.Event()

    def task(start: int, stop: int) -> None:
        started.set()
        release.wait(10)

    running = threading.Thread(target=executor.run, args=(task, 1, Sizing(1, 1)))
    running.start()
    assert started.wait(10)
    forked_at: list[float] = []

    def fork() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        forked_at.append(time.monotonic())
        os.waitpid(pid, 0)

    forking = threading.Thread(target=fork)
    forking.start()
    time.sleep(0.3)
    released_at = time.monotonic()
    release.set()
    forking.join(10)
    running.join(10)
    assert forked_at and forked_at[0] >= released_at


_FORK_WHILE_PASSES_RUN = """
import os, threading, numpy as np
from gpuqnn import EstimatorQNN
from gpuqnn.examples import zz_real_amplitudes
circuit, features, ansatz = zz_real_amplitudes(8)
network = EstimatorQNN(
    circuit=circuit, input_params=features.parameters, weight_params=ansatz.parameters
)
x = np.random.default_rng(0).uniform(size=(64, features.num_parameters))
w = np.random.default_rng(1).uniform(size=ansatz.num_parameters)
stop = threading.Event()
def passes():
    while not stop.is_set():
        network.forward(x, w)
        network.backward(x, w)
thread = threading.Thread(target=passes)
thread.start()
for _ in range(20):
    pid = os.fork()
    if pid == 0:
        np.ones((300, 300)) @ np.ones((300, 300))  # the child's BLAS works too
        os._exit(0)
    os.waitpid(pid, 0)
    np.ones((300, 300)) @ np.ones((300, 300))
stop.set()
thread.join()
print("done")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forking_repeatedly_while_a_thread_runs_passes_does_not_hang() -> None:
    """The reported hang, under a watchdog: 20 forks while another thread runs passes."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _FORK_WHILE_PASSES_RUN],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.returncode == 0 and "done" in done.stdout, done.stderr[-2000:]


@pytest.mark.parametrize("value", ["abc", "-1", "2.5"])
def test_a_non_number_omp_num_threads_is_ignored_with_a_warning(monkeypatch, value) -> None:
    """As torch does: the network runs on the available cores and says why."""
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    monkeypatch.setattr(threads, "_warned_omp", set(), raising=False)
    with pytest.warns(RuntimeWarning, match="ignoring OMP_NUM_THREADS"):
        network = _network()
        assert network.threads == threads.available_cores()
    x, w = _data(3)
    assert network.forward(x[:4], w).shape[0] == 4

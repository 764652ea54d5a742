"""gpuqnn.distributed: DDP training against one process on the same global batches, the
shared-weight warning where a model is passed to torch.multiprocessing.spawn, the device and
core helpers, and Ray batch inference against network.forward (order, memmap, Parquet)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from gpuqnn import EstimatorQNN, SamplerQNN
from gpuqnn import distributed as gd
from gpuqnn.examples import zz_real_amplitudes

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "ddp_train.py"
# small and quick: 3 qubits, 64 samples, 4 steps of 16 rows
EXAMPLE_ARGS = ["--qubits", "3", "--samples", "64", "--global-batch", "16", "--steps", "4"]


def load_example(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rank_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def run_torchrun(
    tmp_path: Path, extra: list[str], nproc: int = 2, quiet: bool = True
) -> tuple[dict, str]:
    """Run the example under torchrun (``--standalone``: a free port); returns rank 0's
    checkpoint and the ranks' output (stdout, then stderr)."""
    checkpoint = tmp_path / f"ddp{nproc}.pt"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc_per_node={nproc}", str(EXAMPLE), *EXAMPLE_ARGS, *extra]
    command += ["--quiet"] if quiet else []
    command += ["--checkpoint", str(checkpoint)]
    result = subprocess.run(
        command, env=rank_env(), capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    import torch  # noqa: PLC0415

    return torch.load(checkpoint), result.stdout + result.stderr


def single_process(tmp_path: Path, extra: list[str], quiet: bool = True) -> dict:
    """The example in this process, as one rank: the reference."""
    import torch  # noqa: PLC0415

    checkpoint = tmp_path / "single.pt"
    example = load_example(EXAMPLE)
    flags = ["--quiet"] if quiet else []
    assert example.main([*EXAMPLE_ARGS, *extra, *flags, "--checkpoint", str(checkpoint)]) == 0
    return torch.load(checkpoint)


def assert_same_parameters(reference: dict, trained: dict, start: dict) -> None:
    assert list(reference) == list(trained)
    for key in reference:
        np.testing.assert_allclose(trained[key].numpy(), reference[key].numpy(), rtol=0, atol=1e-10)
    # and training moved every parameter: the comparison is not between two untrained models
    for key in reference:
        assert not np.allclose(reference[key].numpy(), start[key].detach().numpy()), key


def as_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment as a one-process run of the example's."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for name in ("LOCAL_RANK", "LOCAL_WORLD_SIZE", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


# ---- torch.distributed ---------------------------------------------------------------------


def test_ddp_on_two_gloo_ranks_trains_and_reports_like_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """torchrun, 2 gloo ranks on the CPU, 8 epochs of 4 steps (DistributedSampler + set_epoch):
    the same parameters as one process on the same global batches, to 1e-10, and no
    shared-weight warning, since each rank builds its model. The example shows that it learns:
    after every epoch rank 0 prints the loss and accuracy on the whole training set, global
    figures (every rank holds the same parameters) equal to what one process prints, the
    accuracy ending well above chance (0.5; two moons, 8 seeded epochs: 0.875). One torchrun
    for both checks: each costs a process group's start and teardown."""
    pytest.importorskip("torch")
    extra = ["--epochs", "8", "--steps", "0", "--lr", "0.1", "--device", "cpu"]
    trained, output = run_torchrun(tmp_path, extra, quiet=False)
    as_one_process(monkeypatch)
    capsys.readouterr()
    reference = single_process(tmp_path, extra, quiet=False)
    one = capsys.readouterr()

    example = load_example(EXAMPLE)
    start = example.build_model(3, 1, 0, "cpu").state_dict()
    assert_same_parameters(reference, trained, start)
    assert "shared memory" not in output

    summary = re.compile(r"^epoch (\d+): training loss (\d\.\d+), training accuracy (\d\.\d+)$")

    def epochs(text: str) -> np.ndarray:
        found = [summary.match(line) for line in text.splitlines()]
        return np.array([[float(v) for v in m.groups()] for m in found if m is not None])

    ranks, alone = epochs(output), epochs(one.out)
    assert ranks.shape == (8, 3)
    np.testing.assert_allclose(ranks, alone, rtol=0, atol=2e-6)
    losses, accuracies = ranks[:, 1], ranks[:, 2]
    assert losses[-1] < losses[0]
    assert accuracies[-1] >= 0.75 and accuracies[-1] > accuracies[0]


def _spawned_rank(rank: int, model: object, init_file: str, out_dir: str) -> None:
    """A rank given a model built in the parent (the pitfall): records its warnings."""
    import torch  # noqa: PLC0415
    import torch.distributed as dist  # noqa: PLC0415

    os.environ["OMP_NUM_THREADS"] = "1"
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = torch.full((4, 2), 0.3, dtype=torch.float64)
        model(x).sum().backward()
        model(x).sum().backward()  # warned once per connector
    shared = model[1].weight.is_shared()
    dist.barrier()
    dist.destroy_process_group()
    lines = [str(w.message) for w in caught if "shared memory" in str(w.message)]
    Path(out_dir, f"rank{rank}.txt").write_text(f"{shared}\n{len(lines)}\n" + "\n".join(lines))


def test_model_passed_to_spawn_warns_in_each_rank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.multiprocessing.spawn moves a model's weights into shared memory: the connector
    says so in each rank, naming the fix."""
    torch = pytest.importorskip("torch")
    import torch.multiprocessing as mp  # noqa: PLC0415

    from gpuqnn import TorchConnector  # noqa: PLC0415

    qc, fm, an = zz_real_amplitudes(2, reps=1)
    qnn = EstimatorQNN(
        circuit=qc, input_params=fm.parameters, weight_params=an.parameters, input_gradients=True
    )
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 2), TorchConnector(qnn, dtype="input"), torch.nn.Linear(1, 1)
    ).double()
    assert not model[1].weight.is_shared()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the ranks
    mp.spawn(
        _spawned_rank,
        args=(model, str(tmp_path / "init"), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    for rank in range(2):
        shared, count, *messages = (tmp_path / f"rank{rank}.txt").read_text().splitlines()
        assert shared == "True"
        assert count == "1"
        assert f"rank {rank} of 2" in messages[0]
        assert "Build the model" in messages[0]


def test_check_shared_weights_only_inside_a_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    import torch.distributed as dist  # noqa: PLC0415

    from gpuqnn import TorchConnector  # noqa: PLC0415

    qc, fm, an = zz_real_amplitudes(2, reps=1)
    qnn = EstimatorQNN(circuit=qc, input_params=fm.parameters, weight_params=an.parameters)
    connector = TorchConnector(qnn, dtype="input")
    x = torch.zeros(3, 2, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        connector(x)  # not shared, no process group
        connector.share_memory()  # Hogwild-style sharing without a process group: fine
        connector(x)
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "get_world_size", lambda group=None: 1)
        connector(x)  # a group of one rank: nothing is stepped twice
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(dist, "get_rank", lambda group=None: 1)
    with pytest.warns(UserWarning, match=r"rank 1 of 2 .*shared memory.*inside each rank"):
        connector(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        connector(x)  # once per connector


@pytest.mark.parametrize(
    ("env", "count", "expected"),
    [
        ({}, 0, "cpu"),
        ({"LOCAL_RANK": "1"}, 0, "cpu"),
        ({"LOCAL_RANK": "1"}, 4, "cuda:1"),
        ({}, 2, "cuda:0"),
        ({"LOCAL_RANK": "3", "CUDA_VISIBLE_DEVICES": "5"}, 1, "cuda:0"),
        ({"LOCAL_RANK": "0"}, 1, "cuda:0"),
    ],
)
def test_local_device(
    monkeypatch: pytest.MonkeyPatch, env: dict, count: int, expected: str
) -> None:
    for name in ("LOCAL_RANK", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(gd._torch, "_cuda_device_count", lambda: count)
    assert gd.local_device() == expected


def test_local_device_refuses_more_ranks_than_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(gd._torch, "_cuda_device_count", lambda: 2)
    with pytest.raises(RuntimeError, match=r"LOCAL_RANK=2 .* 2 CUDA device.*nproc_per_node=2"):
        gd.local_device()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
@pytest.mark.parametrize(("cores", "size"), [(8, 2), (8, 3), (2, 2), (3, 2), (1, 2), (2, 4)])
def test_pin_local_cores_splits_the_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, size: int
) -> None:
    pinned: list[set[int]] = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(10, 10 + cores)))
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, kept: pinned.append(set(kept)))
    shares = [gd.pin_local_cores(rank, size) for rank in range(size)]
    assert shares == pinned
    assert all(len(share) >= 1 for share in shares)
    assert set().union(*shares) == set(range(10, 10 + cores))
    if cores >= size:  # disjoint, balanced
        assert sum(len(s) for s in shares) == cores
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
    with pytest.raises(ValueError, match="local_rank"):
        gd.pin_local_cores(size, size)


@pytest.mark.gpu
@pytest.mark.multi_gpu
def test_ddp_on_two_gpus_with_nccl_trains_like_one_process(tmp_path: Path) -> None:
    """torchrun, 2 NCCL ranks, one GPU each: the same parameters as one process on the CPU."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("cupy")
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA devices")
    extra = ["--epochs", "2", "--steps", "6"]
    trained, stderr = run_torchrun(tmp_path, [*extra, "--backend", "nccl"])
    reference = single_process(tmp_path, [*extra, "--device", "cpu"])
    start = load_example(EXAMPLE).build_model(3, 1, 0, "cpu").state_dict()
    assert_same_parameters(reference, {k: v.cpu() for k, v in trained.items()}, start)
    assert "shared memory" not in stderr


def test_importing_gpuqnn_distributed_imports_neither_ray_nor_torch() -> None:
    code = (
        "import sys, gpuqnn, gpuqnn.distributed; "
        "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ---- Ray: predict --------------------------------------------------------------------------


def estimator(num_qubits: int = 3) -> EstimatorQNN:
    qc, fm, an = zz_real_amplitudes(num_qubits, reps=1)
    return EstimatorQNN(circuit=qc, input_params=fm.parameters, weight_params=an.parameters)


def blockwise(network: object, x: np.ndarray, w: np.ndarray, batch: int) -> np.ndarray:
    """network.forward block by block: what predict's actors compute, bit for bit."""
    return np.concatenate([network.forward(x[s : s + batch], w) for s in range(0, len(x), batch)])


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import ray`` fails: an argument error must come before Ray is needed."""
    monkeypatch.setitem(sys.modules, "ray", None)


@pytest.mark.usefixtures("no_ray")
def test_predict_checks_arguments_before_any_work(tmp_path: Path) -> None:
    qnn = estimator()
    x, w = np.zeros((10, 3)), np.zeros(qnn.num_weights)
    cases = [
        ({"x": np.zeros((10, 2))}, r"x must have shape \(N, num_inputs=3\)"),
        ({"x": np.zeros(30)}, r"x must have shape \(N, num_inputs\)"),
        ({"x": np.zeros((10, 3), dtype=complex)}, "real numbers"),
        ({"weights": np.zeros(2)}, "num_weights=6"),
        ({"weights": np.full(6, np.nan)}, "finite"),
        ({"batch_size": 0}, "batch_size must be a positive int"),
        ({"batch_size": True}, "batch_size must be a positive int"),
        ({"batch_size": 2.5}, "batch_size must be a positive int"),
        ({"num_actors": 0}, "num_actors must be a positive int"),
        ({"num_gpus_per_actor": -1}, "num_gpus_per_actor"),
        ({"cpus_per_actor": 0}, "cpus_per_actor"),
        ({"out": np.zeros((10, 2))}, r"out must be a writeable float64 array of shape \(10, 1\)"),
        ({"out": np.zeros((10, 1), dtype=np.float32)}, "float64"),
        ({"columns": ["a"]}, "columns selects Parquet columns"),
        ({"x": tmp_path / "x.csv"}, "no file"),
    ]
    (tmp_path / "x.txt").write_text("")
    cases.append(({"x": tmp_path / "x.txt"}, r"\.npy or \.parquet"))
    read_only = np.zeros((10, 1))
    read_only.flags.writeable = False
    cases.append(({"out": read_only}, "read-only"))
    for change, message in cases:
        kwargs = {"x": x, "weights": w, **change}
        error = FileNotFoundError if "no file" in message else ValueError
        with pytest.raises(error, match=message):
            gd.predict(qnn, kwargs.pop("x"), kwargs.pop("weights"), **kwargs)
    with pytest.raises(TypeError, match="qiskit-machine-learning network"):
        gd.predict(object(), x, w)
    # valid arguments: only now is Ray needed, and the error names the extra
    with pytest.raises(ImportError, match=r"gpuqnn\[ray\]"):
        gd.predict(qnn, x, w)
    # nothing to do needs no Ray
    assert gd.predict(qnn, np.zeros((0, 3)), w).shape == (0, 1)


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_predict_on_two_ray_actors_matches_forward_in_order(
    ray_local: object, capsys: pytest.CaptureFixture[str]
) -> None:
    qnn = estimator()
    rng = np.random.default_rng(3)
    x, w = rng.uniform(0, np.pi, (1000, 3)), rng.uniform(-1, 1, qnn.num_weights)
    y = gd.predict(qnn, x, w, batch_size=97, num_actors=2, progress=True)
    assert y.shape == (1000, 1) and y.dtype == np.float64
    np.testing.assert_array_equal(y, blockwise(qnn, x, w, 97))  # each row its own, in order
    np.testing.assert_allclose(y, qnn.forward(x, w), rtol=0, atol=1e-13)
    assert "gpuqnn predict" in capsys.readouterr().err
    # shuffled rows come back shuffled the same way
    order = rng.permutation(1000)
    y2 = gd.predict(qnn, x[order], w, batch_size=128, num_actors=2, progress=False)
    np.testing.assert_allclose(y2, y[order], rtol=0, atol=1e-13)


def test_predict_streams_npy_and_parquet_into_a_memmap(ray_local: object, tmp_path: Path) -> None:
    """A SamplerQNN (4 outputs) over a .npy memmap and a Parquet file (columns chosen and
    reordered), written into an np.memmap given as out."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    qc, fm, an = zz_real_amplitudes(2, reps=1)
    qnn = SamplerQNN(circuit=qc, input_params=fm.parameters, weight_params=an.parameters)
    rng = np.random.default_rng(4)
    x, w = rng.uniform(0, np.pi, (500, 2)), rng.uniform(-1, 1, qnn.num_weights)
    np.save(tmp_path / "x.npy", x)
    pq.write_table(
        pa.table({"label": np.arange(500), "b": x[:, 1], "a": x[:, 0]}),
        tmp_path / "x.parquet",
        row_group_size=120,
    )
    reference = blockwise(qnn, x, w, 64)
    out = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float64, shape=(500, 4))
    result = gd.predict(qnn, tmp_path / "x.npy", w, batch_size=64, num_actors=2, out=out)
    assert result is out
    out.flush()
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), reference)
    from_parquet = gd.predict(
        qnn, str(tmp_path / "x.parquet"), w, batch_size=64, columns=["a", "b"], progress=False
    )
    np.testing.assert_allclose(from_parquet, reference, rtol=0, atol=1e-13)
    np.testing.assert_allclose(from_parquet.sum(axis=1), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="no column 'c'"):
        gd.predict(qnn, tmp_path / "x.parquet", w, columns=["a", "c"])
    with pytest.raises(ValueError, match=r"num_inputs=2\), got 3 columns"):
        gd.predict(qnn, tmp_path / "x.parquet", w)


def test_predict_warns_when_the_cluster_is_too_small(
    ray_local: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More actors than the cluster's CPUs would wait forever on a fixed cluster: a warning
    says so (here the cluster is made to look smaller than it is, so the run still ends)."""
    qnn = estimator()
    x, w = np.full((40, 3), 0.5), np.zeros(qnn.num_weights)
    monkeypatch.setattr(ray_local, "cluster_resources", lambda: {"CPU": 1.0})
    with pytest.warns(UserWarning, match=r"2 actor\(s\) need 2 CPUs, more than this Ray cluster"):
        y = gd.predict(qnn, x, w, batch_size=10, num_actors=2, progress=False)
    np.testing.assert_array_equal(y, blockwise(qnn, x, w, 10))


def test_predict_reraises_an_actor_error(ray_local: object) -> None:
    qnn = estimator()
    x = np.zeros((10, 3))
    x[7, 1] = np.nan  # found by the network in the actor
    with pytest.raises(ValueError, match="NaN|nan|finite"):
        gd.predict(qnn, x, np.zeros(qnn.num_weights), batch_size=4, num_actors=1, progress=False)


@pytest.mark.slow
def test_predict_a_million_samples_from_a_memmap(tmp_path: Path) -> None:
    """examples/ray_predict.py: 10**6 rows of a 4-qubit network, memmap in and out, in bounded
    driver memory; spot-checked against network.forward."""
    pytest.importorskip("ray")
    command = [sys.executable, str(ROOT / "examples" / "ray_predict.py")]
    command += ["--samples", "1000000", "--dir", str(tmp_path)]
    result = subprocess.run(
        command, env=rank_env(), capture_output=True, text=True, timeout=3000, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    difference = re.search(r"max \|difference\| (\S+)", result.stdout)
    assert difference is not None, result.stdout
    assert float(difference.group(1)) < 1e-12

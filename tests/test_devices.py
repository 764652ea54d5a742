"""The one LOCAL_RANK rule: gpuqnn.distributed.local_device and a network's device="auto"
(select_backend) give the same device for the same environment, and refuse alike."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gpuqnn import distributed as gd
from gpuqnn._devices import env_index, local_rank_device
from gpuqnn._sim import backend as backend_module

ENVIRONMENTS = [
    {},
    {"LOCAL_RANK": "0"},
    {"LOCAL_RANK": "1"},
    {"LOCAL_RANK": "3"},
    {"LOCAL_RANK": "3", "CUDA_VISIBLE_DEVICES": "5"},
    {"LOCAL_RANK": ""},
]


def _fake_gpus(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], count: int) -> None:
    """``count`` visible CUDA devices (current: 0) for both entry points, and ``env``."""
    for name in ("LOCAL_RANK", "CUDA_VISIBLE_DEVICES", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runtime = SimpleNamespace(getDeviceCount=lambda: count, getDevice=lambda: 0)
    cupy = SimpleNamespace(cuda=SimpleNamespace(runtime=runtime))
    probe = backend_module.CupyProbe(cupy, (), True)  # type: ignore[arg-type]
    monkeypatch.setattr(backend_module, "probe_cupy", lambda index: probe)
    monkeypatch.setattr(gd._torch, "_cuda_device_count", lambda: count)


def _outcome(call: object) -> str:
    try:
        return str(call())  # type: ignore[operator]
    except (RuntimeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_both_entry_points_give_the_same_device(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], count: int
) -> None:
    _fake_gpus(monkeypatch, env, count)
    helper = _outcome(gd.local_device)
    network = _outcome(lambda: backend_module.select_backend("auto").name)
    assert helper == network
    rank = int(env.get("LOCAL_RANK") or 0)
    if count == 1:
        assert helper == "cuda:0"
    elif rank < count:
        assert helper == f"cuda:{rank}"
    else:
        assert helper.startswith("RuntimeError")


@pytest.mark.parametrize("device", ["auto", "gpu", "cuda"])
def test_more_ranks_than_devices_is_refused_by_both(
    monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    _fake_gpus(monkeypatch, {"LOCAL_RANK": "2"}, 2)
    pattern = r"LOCAL_RANK=2 .* 2 CUDA device.*nproc_per_node=2.*CUDA_VISIBLE_DEVICES"
    with pytest.raises(RuntimeError, match=pattern):
        gd.local_device()
    with pytest.raises(RuntimeError, match=pattern):
        backend_module.select_backend(device)


@pytest.mark.parametrize("value", ["x", "-1", "1.5"])
def test_a_malformed_local_rank_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    for count in (0, 1, 2):
        _fake_gpus(monkeypatch, {"LOCAL_RANK": value}, count)
        with pytest.raises(ValueError, match=f"LOCAL_RANK='{value}'"):
            gd.local_device()
    with pytest.raises(ValueError, match=f"LOCAL_RANK='{value}'"):
        backend_module.select_backend("auto")
    with pytest.raises(ValueError, match=f"LOCAL_RANK='{value}'"):
        gd.pin_local_cores()


def test_the_rule() -> None:
    assert local_rank_device(4, {}) is None  # not under torchrun: the caller's default
    assert local_rank_device(1, {"LOCAL_RANK": "7"}) == 0  # one visible device: device 0
    assert local_rank_device(4, {"LOCAL_RANK": "3"}) == 3
    with pytest.raises(RuntimeError, match="LOCAL_RANK=4"):
        local_rank_device(4, {"LOCAL_RANK": "4"})
    with pytest.raises(ValueError, match="count"):
        local_rank_device(0, {})
    assert env_index("LOCAL_WORLD_SIZE", {"LOCAL_WORLD_SIZE": " 8 "}) == 8
    assert env_index("LOCAL_WORLD_SIZE", {}) is None


def test_the_cpu_is_not_affected(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_gpus(monkeypatch, {"LOCAL_RANK": "5"}, 2)
    assert backend_module.select_backend("cpu").xp is np
    monkeypatch.setattr(gd._torch, "_cuda_device_count", lambda: 0)
    assert gd.local_device() == "cpu"


def test_local_world_size_is_read_by_the_same_rule_as_local_rank() -> None:
    """The memory share under torchrun reads LOCAL_WORLD_SIZE as LOCAL_RANK is read: a
    malformed value is an error naming the variable, not silently one process."""
    from gpuqnn._sim.backend import processes_per_device  # noqa: PLC0415

    assert processes_per_device(1, gpu=False, env={"LOCAL_WORLD_SIZE": "4"}) == 4
    with pytest.raises(ValueError, match="LOCAL_WORLD_SIZE='four' must be a non-negative"):
        processes_per_device(1, gpu=False, env={"LOCAL_WORLD_SIZE": "four"})

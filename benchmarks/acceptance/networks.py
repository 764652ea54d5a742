"""Stage 4: gpuqnn's EstimatorQNN and SamplerQNN on the device against qiskit-machine-learning's
own networks (forward, and backward with input gradients), and gpuqnn's TorchConnector with
tensors on the device against the CPU network's Jacobians contracted by hand."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
from qiskit.quantum_info import SparsePauliOp

from benchmarks.acceptance.kernels import TOLERANCE
from benchmarks.acceptance.plan import Plan
from benchmarks.acceptance.runner import StageContext

CONFIGS = (
    ("complex128", "auto"),
    ("complex128", "parameter_shift"),
    ("complex128", "adjoint"),
    ("complex64", "auto"),
)
"""(dtype, gradient_method) of the gpuqnn networks checked: on a GPU the fused forward,
parameter-shift and adjoint kernels."""

SAMPLES = 5
PARTS = ("forward", "input_grads", "weight_grads")


def network_kwargs(kind: str) -> dict[str, Any]:
    """A small network: ``zz_feature_map(3)`` + ``real_amplitudes(3, reps=2)``, two observables
    (estimator) or the parity interpret (sampler), with input gradients."""
    from gpuqnn.examples import parity, zz_real_amplitudes  # noqa: PLC0415

    qc, feature_map, ansatz = zz_real_amplitudes(3, reps=2)
    kwargs: dict[str, Any] = {
        "circuit": qc,
        "input_params": list(feature_map.parameters),
        "weight_params": list(ansatz.parameters),
        "input_gradients": True,
    }
    if kind == "estimator":
        kwargs["observables"] = [
            SparsePauliOp("ZZI"),
            SparsePauliOp.from_list([("XIY", 0.5), ("IZZ", -1.0)]),
        ]
    else:
        kwargs.update(interpret=parity, output_shape=2)
    return kwargs


def sample_data(num_weights: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(SAMPLES, 3) inputs, (W,) weights and a (SAMPLES, 2) cotangent, seeded."""
    rng = np.random.default_rng(44)
    return (
        rng.uniform(-1.0, 1.0, (SAMPLES, 3)),
        rng.uniform(-np.pi, np.pi, num_weights),
        rng.uniform(0.5, 1.5, (SAMPLES, 2)),
    )


def _max_diff(ours: Any, theirs: Any) -> float:
    if ours is None or theirs is None:
        return 0.0 if ours is None and theirs is None else float("inf")
    a, b = np.asarray(ours), np.asarray(theirs)
    return float("inf") if a.shape != b.shape else float(np.max(np.abs(a - b), initial=0.0))


def network_checks(kind: str, device: str, ctx: StageContext) -> list[dict[str, Any]]:
    """Each configuration of gpuqnn's ``kind`` network on ``device`` against
    qiskit-machine-learning's."""
    import qiskit_machine_learning.neural_networks as qml_networks  # noqa: PLC0415

    import gpuqnn  # noqa: PLC0415

    kwargs = network_kwargs(kind)
    name = "EstimatorQNN" if kind == "estimator" else "SamplerQNN"
    inputs, weights, _ = sample_data(len(kwargs["weight_params"]))
    reference = getattr(qml_networks, name)(**kwargs)
    expected = (reference.forward(inputs, weights), *reference.backward(inputs, weights))
    records = []
    for dtype, method in CONFIGS:
        network = getattr(gpuqnn, name)(
            **kwargs, device=device, dtype=dtype, gradient_method=method
        )
        got = (network.forward(inputs, weights), *network.backward(inputs, weights))
        errors = [_max_diff(g, e) for g, e in zip(got, expected, strict=True)]
        record = {
            "network": name,
            "dtype": dtype,
            "gradient_method": method,
            "resolved": str(network.resolved_gradient_method()),
            "device": network.device,
            "max_abs_error": dict(zip(PARTS, errors, strict=True)),
            "tolerance": TOLERANCE[dtype],
        }
        record["passed"] = max(errors) <= TOLERANCE[dtype] and _on(network.device, device)
        if not record["passed"]:
            ctx.fail(f"{name} {dtype} {method} on {network.device}: errors {errors}")
        records.append(record)
    return records


def _on(actual: str, wanted: str) -> bool:
    return actual.startswith("cuda") if wanted == "cuda" else actual == wanted


def connector_check(kind: str, device: str, ctx: StageContext) -> dict[str, Any]:
    """gpuqnn's TorchConnector around the ``device`` network with tensors on that device:
    outputs and the input and weight gradients of ``sum(cotangent * outputs)`` against the CPU
    network's forward and its Jacobians contracted with the cotangent."""
    if importlib.util.find_spec("torch") is None:
        return {"status": "skipped", "reason": "torch is not installed"}
    import torch  # noqa: PLC0415 - optional

    import gpuqnn  # noqa: PLC0415

    if device == "cuda" and not torch.cuda.is_available():
        return {"status": "skipped", "reason": f"torch {torch.__version__} has no CUDA device"}
    kwargs = network_kwargs(kind)
    cls = gpuqnn.EstimatorQNN if kind == "estimator" else gpuqnn.SamplerQNN
    inputs, weights, cotangent = sample_data(len(kwargs["weight_params"]))
    tensor_device = torch.device(device)
    model = gpuqnn.TorchConnector(
        cls(**kwargs, device=device), initial_weights=weights, dtype=torch.float64
    ).to(tensor_device)
    x = torch.tensor(inputs, dtype=torch.float64, device=tensor_device, requires_grad=True)
    out = model(x)
    (out * torch.tensor(cotangent, device=tensor_device)).sum().backward()
    cpu = cls(**kwargs, device="cpu")
    input_jacobian, weight_jacobian = cpu.backward(inputs, weights)
    expected = {
        "outputs": cpu.forward(inputs, weights),
        "input_grads": np.einsum("bo,boi->bi", cotangent, input_jacobian),
        "weight_grads": np.einsum("bo,bop->p", cotangent, weight_jacobian),
    }
    got = {"outputs": out, "input_grads": x.grad, "weight_grads": model.weight.grad}
    devices = {key: str(value.device) for key, value in got.items()}
    errors = {key: _max_diff(got[key].detach().cpu().numpy(), expected[key]) for key in expected}
    passed = max(errors.values()) <= TOLERANCE["complex128"] and all(
        d.startswith(tensor_device.type) for d in devices.values()
    )
    if not passed:
        ctx.fail(f"TorchConnector({kind}) on {device}: errors {errors}, devices {devices}")
    return {
        "status": "passed" if passed else "FAILED",
        "tensor_device": str(x.device),
        "result_devices": devices,
        "max_abs_error": errors,
        "tolerance": TOLERANCE["complex128"],
    }


def networks_stage(plan: Plan):
    """Stage 4: the networks and the TorchConnector on the run's device."""

    def run(ctx: StageContext) -> dict[str, Any]:
        device = plan.device
        networks = network_checks("estimator", device, ctx) + network_checks("sampler", device, ctx)
        connectors = {kind: connector_check(kind, device, ctx) for kind in ("estimator", "sampler")}
        worst = max(max(r["max_abs_error"].values()) for r in networks)
        ctx.summary = (
            f"{sum(r['passed'] for r in networks)}/{len(networks)} networks agree with "
            f"qiskit-machine-learning (worst {worst:.1e}); TorchConnector: "
            + ", ".join(f"{k} {v['status']}" for k, v in connectors.items())
        )
        return {
            "device": device,
            "reference": "qiskit-machine-learning's EstimatorQNN/SamplerQNN (default exact "
            "primitives); the TorchConnector against gpuqnn's CPU network",
            "samples": SAMPLES,
            "networks": networks,
            "torch_connector": connectors,
        }

    return run

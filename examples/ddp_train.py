"""Train Linear -> TorchConnector(EstimatorQNN) -> Linear with DistributedDataParallel.

Run it with torchrun (one process per device: GPUs where there are some, else CPU cores)::

    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py
    torchrun --standalone --nproc_per_node=4 examples/ddp_train.py --backend nccl  # 4 GPUs

or directly, as one process::

    python examples/ddp_train.py

Both see the same global batches: a ``DistributedSampler`` with the same seed deals rank r the
rows ``r, r + W, r + 2W, ...`` of one shuffled order, so a step's W local batches of
``global_batch / W`` rows are together the same ``global_batch`` rows that one process takes,
and DDP's mean of the ranks' mean-loss gradients is the one process's gradient. The trained
parameters therefore agree with the one-process run up to rounding (the test suite checks 1e-10).

Every rank builds its own model: a model built before ``torch.multiprocessing.spawn`` and
passed to the ranks would have its weights in shared memory, one tensor stepped by every rank.
Rank 0 saves the checkpoint (``state_dict`` of the model, not of the DDP wrapper, so it loads
into a plain model).

After each epoch rank 0 prints the loss and the accuracy on the whole training set (stdout).
After a step every rank holds the same parameters, so these are global figures without a
collective of their own; each step's loss on rank 0's local batch goes to stderr (unless
``--quiet``)::

    epoch 0: training loss 0.512345, training accuracy 0.805
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from gpuqnn import EstimatorQNN, TorchConnector
from gpuqnn.distributed import local_device, pin_local_cores
from gpuqnn.examples import two_moons, zz_real_amplitudes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qubits", type=int, default=4, help="width of the quantum layer")
    parser.add_argument("--reps", type=int, default=1, help="real_amplitudes repetitions")
    parser.add_argument("--samples", type=int, default=256, help="training set size")
    parser.add_argument(
        "--global-batch", type=int, default=32, help="rows per step over all ranks together"
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=0, help="stop after this many steps (0: all)")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backend", default="gloo", help="process group backend: gloo (CPU), nccl (GPUs)"
    )
    parser.add_argument(
        "--device", default="auto", help="auto: gpuqnn.distributed.local_device(); or cpu"
    )
    parser.add_argument("--checkpoint", default="", help="rank 0 saves the state_dict here")
    parser.add_argument("--quiet", action="store_true", help="no per-step loss lines")
    return parser.parse_args(argv)


def build_model(qubits: int, reps: int, seed: int, device: str) -> torch.nn.Module:
    """Linear(2, qubits) -> TorchConnector(EstimatorQNN) -> Linear(1, 1), float64, seeded (every
    rank builds the same start; DDP also broadcasts rank 0's parameters)."""
    circuit, feature_map, ansatz = zz_real_amplitudes(qubits, reps=reps)
    qnn = EstimatorQNN(
        circuit=circuit,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
        device=device,
    )
    torch.manual_seed(seed)
    initial = np.random.default_rng(seed).uniform(-1, 1, qnn.num_weights)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, qubits),
        TorchConnector(qnn, initial_weights=initial, dtype="input"),
        torch.nn.Linear(1, 1),
    )
    return model.double().to(device)


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Loss and accuracy of ``model`` on the whole set (every rank holds the same parameters,
    so rank 0 alone computes them: no collective, nothing for the other ranks to wait on)."""
    with torch.no_grad():
        logits = model(x).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    return float(loss), float(((logits > 0).double() == y).double().mean())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world_size > 1
    pin_local_cores()  # this rank's share of the node's cores, before any thread starts
    device = local_device() if args.device == "auto" else args.device
    if distributed:
        if device.startswith("cuda"):
            torch.cuda.set_device(device)
        dist.init_process_group(args.backend)
    rank = dist.get_rank() if distributed else 0
    if args.global_batch % world_size:
        raise SystemExit(f"--global-batch {args.global_batch} is not a multiple of {world_size}")

    model = build_model(args.qubits, args.reps, args.seed, device)  # built inside each rank
    trained: torch.nn.Module = model
    if distributed:
        trained = DistributedDataParallel(
            model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None
        )
    optimizer = torch.optim.Adam(trained.parameters(), lr=args.lr)

    x, y = two_moons(args.samples, seed=args.seed)
    dataset = TensorDataset(torch.tensor(x), torch.tensor(y, dtype=torch.float64))
    sampler = DistributedSampler(
        dataset,
        num_replicas=world_size,
        rank=rank,
        shuffle=True,
        seed=args.seed,
        drop_last=True,
    )
    loader = DataLoader(
        dataset, batch_size=args.global_batch // world_size, sampler=sampler, drop_last=True
    )

    features, labels = dataset.tensors
    step, started = 0, time.perf_counter()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
        epoch_steps = 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            logits = trained(xb).squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yb)
            loss.backward()  # DDP averages the gradients over the ranks here
            optimizer.step()
            step, epoch_steps = step + 1, epoch_steps + 1
            if rank == 0 and not args.quiet:
                print(f"epoch {epoch} step {step} local loss {loss.item():.6f}", file=sys.stderr)
            if step == args.steps:
                break
        if rank == 0 and epoch_steps:
            train_loss, train_accuracy = evaluate(model, features.to(device), labels.to(device))
            print(
                f"epoch {epoch}: training loss {train_loss:.6f}, "
                f"training accuracy {train_accuracy:.3f}"
            )
        if step == args.steps:
            break

    if rank == 0:
        seconds = time.perf_counter() - started
        print(
            f"{step} steps of {args.global_batch} rows on {world_size} process(es) "
            f"({device}) in {seconds:.2f} s"
        )
        if args.checkpoint:
            torch.save(model.state_dict(), args.checkpoint)  # the plain model's keys
    if distributed:
        dist.barrier()  # the checkpoint is written before any rank leaves
        # DDP's reducer holds the process group, and DDP sits in reference cycles: drop it and
        # collect, so that destroy_process_group tears gloo's threads down now, while the
        # interpreter is whole, and not during its finalization (where they can abort the rank)
        del trained, optimizer
        gc.collect()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())

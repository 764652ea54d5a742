"""Beyond one device: helpers for training under ``torch.distributed`` and batch inference on Ray.

gpuqnn parallelises over samples: every sample's statevector fits one device, so more devices
mean more samples at once, never a bigger circuit. Two engines spread the samples:

- **torch.distributed** (training): one process per device started by ``torchrun``, each
  building its own model, with ``DistributedDataParallel`` averaging the gradients. Helpers:
  :func:`local_device` (this rank's device), :func:`pin_local_cores` (this rank's share of the
  node's CPU cores) and :func:`check_shared_weights` (called by
  :class:`gpuqnn.TorchConnector` on every forward pass: warns when the weight sits in shared
  memory inside a process group, the sign of a model passed to ``torch.multiprocessing.spawn``
  instead of built in each rank).
- **Ray** (inference): :func:`predict` evaluates a network on a large input array, a NumPy
  memmap or a Parquet file, on a pool of Ray actors, in input order and in bounded memory.

The recipe and the pitfalls are in ``docs/distributed.md``. Importing this package imports
neither torch nor Ray: each is imported by the function that needs it.
"""

from __future__ import annotations

# the private names are re-exported for benchmarks/bench_scale.py, which keeps a pool of actors
from ._ray import _ActorPool as _ActorPool
from ._ray import _NoProgress as _NoProgress
from ._ray import _Source as _Source
from ._ray import predict
from ._torch import check_shared_weights, local_device, pin_local_cores

__all__ = ["check_shared_weights", "local_device", "pin_local_cores", "predict"]

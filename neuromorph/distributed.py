"""Training across processes and machines with ``torch.distributed`` (DistributedDataParallel).

``torchrun --nproc-per-node N -m neuromorph train ...`` (and ``--nnodes``/``--rdzv-endpoint`` for several machines)
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; :func:`context` reads them and joins the
process group (gloo on a CPU, NCCL on GPUs). Every rank draws the same shuffled order of the epoch (the seeded
generator), and takes every ``WORLD_SIZE``-th sample of each global batch, so the ranks together see exactly the
batches one process would; DDP averages the gradients, which equals the gradient of the global batch's mean loss
when the batch divides evenly among the ranks. Rank 0 alone writes checkpoints and metrics.
Without those variables (or with ``WORLD_SIZE=1``) nothing changes: one process, no process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from neuromorph.errors import NeuromorphError


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    def share(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's samples of an encoded global batch (``x`` time-major ``[T, B, ...]``, ``labels`` ``[B]``):
        every ``world``-th one, starting at ``rank``."""
        if not self.active:
            return x, labels
        return x[:, self.rank :: self.world], labels[self.rank :: self.world]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over all ranks (in place; unchanged in one process)."""
        if self.active:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model that the training step calls: DDP around it across ranks, the model itself alone."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)


def is_main_process() -> bool:
    """Whether this process is rank 0 (or the only one), from the environment torchrun sets."""
    return _env_int("RANK", 0) == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise NeuromorphError(f"environment variable {name}={value!r} must be an integer") from None


def context(device: torch.device) -> tuple[Context, torch.device]:
    """Join the process group that torchrun (or the caller) describes in the environment; returns the context and
    the device this rank computes on (``cuda:LOCAL_RANK`` on GPUs)."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Context(), device
    rank = _env_int("RANK", 0)
    if device.type == "cuda":
        device = torch.device("cuda", _env_int("LOCAL_RANK", 0))
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world)
        except (RuntimeError, ValueError) as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise NeuromorphError(f"cannot join the {backend} process group (rank {rank} of {world}): "
                                  f"{first}") from None
    return Context(rank=torch.distributed.get_rank(), world=torch.distributed.get_world_size()), device

"""Data-parallel training over processes started by `torchrun`: one process per device (or per CPU
core), DistributedDataParallel averaging gradients, and losses that see the global batch.

`torchrun --nproc-per-node N -m siamese train ...` sets `RANK`, `WORLD_SIZE`, `LOCAL_RANK` and the
rendezvous address; `Distributed.from_env` reads them and joins the process group (NCCL on CUDA,
gloo on the CPU). Every rank runs the same batch sampler from the same seed and keeps its own
contiguous slice of each global batch (`ShardedBatchSampler`), so the global batch is exactly the
batch one process would draw. A method gathers what its loss needs from every rank with
`gather_with_grad`: the forward pass concatenates the ranks' tensors in rank order, the backward
pass sums each rank's gradient of its own rows over the ranks; with DDP's averaging of parameter
gradients, one step equals one step of a single process on the global batch.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from siamese.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600
"""How long a collective waits for a missing rank before the run fails (instead of hanging)."""


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel run.

    Attributes:
        rank: this process, 0..world_size-1 (rank 0 logs, writes and validates).
        world_size: processes in the run.
        local_rank: this process on its node (its GPU with NCCL).
        backend: "nccl" or "gloo".
    """

    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that logs, shows progress and writes files."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> Distributed | None:
        """The run `torchrun` started this process in, or None outside one (or with one process).

        Raises:
            ConfigError: CUDA asked for but this node has fewer GPUs than local processes.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda" and local >= torch.cuda.device_count():
            raise ConfigError(f"local rank {local} has no GPU: this node has {torch.cuda.device_count()}")
        return cls(rank, world, local, "nccl" if device.type == "cuda" else "gloo")

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: its own GPU on CUDA, else `device`."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    def start(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """Join the process group (a no-op when it is joined already)."""
        if dist.is_initialized():
            return
        if self.backend == "nccl":
            torch.cuda.set_device(self.local_rank)
        dist.init_process_group(self.backend, timeout=datetime.timedelta(seconds=timeout_s))
        logger.info("rank %d of %d joined (%s)", self.rank, self.world_size, self.backend)

    def stop(self, together: bool = True) -> None:
        """Leave the process group; `together`: after every rank got here (a normal end: no rank
        tears its connections down while another still uses them), else at once (a failure)."""
        if dist.is_initialized():
            if together:
                dist.barrier()
            dist.destroy_process_group()

    def share(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (a picklable object: a run directory, a decision)."""
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self, loader: Any, batch_size: int, seed: int) -> None:
        """Make a training loader of global batches of `batch_size` yield this rank's slice of each
        (its batch sampler a `ResumableBatchSampler`), with augmentation randomness of its own.

        Raises:
            ConfigError: the batch does not split evenly over the ranks.
        """
        self.local_batch(batch_size)
        resumable = loader.batch_sampler
        resumable.inner = ShardedBatchSampler(resumable.inner, self.rank, self.world_size)
        if loader.generator is not None:
            loader.generator.manual_seed(seed + 7919 * self.rank)

    def local_batch(self, global_batch: int) -> int:
        """Each rank's share of a global batch.

        Raises:
            ConfigError: the batch does not split evenly.
        """
        if global_batch % self.world_size:
            raise ConfigError(
                f"the batch ({global_batch}) must split evenly over {self.world_size} processes"
            )
        return global_batch // self.world_size


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each rank the sum over ranks of the gradient of its rows."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return tuple(parts)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack([g.contiguous() for g in grads])  # (W, *x.shape)
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return stacked[dist.get_rank()]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's `x` concatenated on dim 0 in rank order; gradients flow back to each rank's
    own rows (summed over the ranks, whose losses are the same global loss)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    return torch.cat(_GatherWithGrad.apply(x))


@torch.no_grad()
def gather(x: torch.Tensor) -> torch.Tensor:
    """Every rank's `x` concatenated on dim 0 in rank order, without gradient (labels, keys)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def row_offset(rows: int) -> int:
    """Where this rank's `rows` rows start in a gathered tensor (ranks hold equal shares)."""
    return dist.get_rank() * rows if dist.is_initialized() else 0


class ShardedBatchSampler(Sampler[list[int]]):
    """Rank `rank`'s contiguous slice of every batch of `inner` (drawn identically on every rank
    from the same seed and epoch), so the ranks' slices together are the batch one process draws.

    Args:
        inner: the global batch sampler (its batches must split evenly).
        rank: this rank.
        world_size: the number of ranks.
    """

    def __init__(self, inner: Sampler[list[int]], rank: int, world_size: int) -> None:
        self.inner = inner
        self.rank = rank
        self.world_size = world_size

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the global sampler."""
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.inner:
            batch = list(batch)
            if len(batch) % self.world_size:
                raise ConfigError(f"a batch of {len(batch)} does not split over {self.world_size} processes")
            share = len(batch) // self.world_size
            yield batch[self.rank * share : (self.rank + 1) * share]

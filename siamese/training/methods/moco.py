"""MoCo v2 (He et al. 2020; Chen et al. 2020): a momentum key encoder and a queue of negative keys."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from siamese.errors import ConfigError
from siamese.losses.infonce import InfoNCELoss
from siamese.models.heads import ProjectionHead
from siamese.models.memory_bank import FeatureQueue
from siamese.training.distributed import gather, gather_with_grad, row_offset
from siamese.training.methods.base import Batch, StepOutput, check_sizes
from siamese.training.methods.momentum_method import MomentumMethod


class MoCoMethod(MomentumMethod):
    """Query `q = g(f(x1))`, key `k = g'(f'(x2))` from the momentum copy, InfoNCE against the queue.

    The loss is computed against the queue as it was BEFORE this batch, so a batch's own keys are
    never its negatives; the keys are enqueued (FIFO) after the optimiser step. The queue starts
    empty (the first step has no negatives and no gradient), never with random keys. BatchNorm leakage
    (a batch's statistics telling a query which key is its own) is prevented as in MoCo with
    shuffled sub-batches: the key encoder sees the batch permuted and split into
    `shuffle_groups` groups, each normalised with its own statistics, then un-permuted.

    Args:
        encoder: the shared (query) encoder that checkpoints keep.
        loss: the objective; None = `InfoNCELoss` with its defaults (temperature 0.2, MoCo v2's).
        distance: pair distance of verification; None = cosine.
        projection_dim: output size of the MLP head (MoCo v2: 2 layers, no BatchNorm).
        hidden_dim: hidden size of the head.
        queue_size: number of negative keys kept.
        momentum: EMA coefficient of the key encoder (0.999 in the paper at batch 256).
        momentum_end: final EMA coefficient (cosine schedule); equal to `momentum` = constant.
        shuffle_groups: sub-batches of the shuffled-BN key pass (1 = plain BatchNorm).
    """

    loss_class = InfoNCELoss

    def __init__(
        self,
        encoder: nn.Module,
        loss: nn.Module | None = None,
        distance: str | None = None,
        projection_dim: int = 128,
        hidden_dim: int = 512,
        queue_size: int = 4096,
        momentum: float = 0.99,
        momentum_end: float = 0.99,
        shuffle_groups: int = 2,
    ) -> None:
        super().__init__(encoder, loss, distance, momentum, momentum_end)
        check_sizes(projection_dim=projection_dim, hidden_dim=hidden_dim, shuffle_groups=shuffle_groups)
        if queue_size < 0:
            raise ConfigError(f"queue size must be >= 0, got {queue_size}")
        self.projector = ProjectionHead(self.embedding_dim(), hidden_dim, projection_dim, batch_norm=False)
        self.init_momentum()
        self.queue = FeatureQueue(queue_size, projection_dim)
        self.shuffle_groups = int(shuffle_groups)
        self._keys: torch.Tensor | None = None

    @torch.no_grad()
    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised keys `(N, P)` of the momentum encoder for the global batch, with shuffled
        BatchNorm: one process splits the permuted batch into `shuffle_groups` groups; a
        data-parallel run permutes the global batch across ranks (MoCo's own shuffle), each rank
        encoding its slice of it."""
        if not dist.is_initialized() or dist.get_world_size() == 1:
            perm = torch.randperm(len(x), device=x.device)
            groups = min(self.shuffle_groups, max(len(x) // 2, 1))
            k = torch.cat([self.target(chunk) for chunk in x[perm].chunk(groups)])  # (N, P), shuffled
            return F.normalize(k[torch.argsort(perm)], dim=1)
        everything = gather(x)  # (N, C, H, W), every rank's images
        perm = torch.randperm(len(everything), device=x.device)
        dist.broadcast(perm, src=0)  # one permutation for all ranks
        mine = everything[perm][row_offset(len(x)) : row_offset(len(x)) + len(x)]
        k = gather(self.target(mine))  # (N, P), in permuted order
        return F.normalize(k[torch.argsort(perm)], dim=1)

    def training_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.view_list()[:2]
        h = self.embed(x1)  # (n, D)
        q = gather_with_grad(F.normalize(self.projector(h), dim=1))  # (N, P), every rank's queries
        k = self.keys(x2)  # (N, P), no gradient
        loss = self.loss(q, k, self.queue.features())
        self._keys = k  # enqueued once per global batch, the same on every rank
        return StepOutput(loss, h)

    def on_after_optimizer_step(self, step: int, total_steps: int) -> None:
        super().on_after_optimizer_step(step, total_steps)
        if self._keys is not None:
            self.queue.enqueue(self._keys)
            self._keys = None

"""SwAV (Caron et al. 2020): swapped prediction of Sinkhorn-Knopp cluster codes between views."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siamese.errors import ConfigError
from siamese.losses.swav import SwAVLoss
from siamese.models.heads import ProjectionHead, Prototypes
from siamese.models.memory_bank import FeatureQueue
from siamese.training.distributed import gather, gather_with_grad
from siamese.training.methods.base import Batch, Method, StepOutput, check_sizes


class SwAVMethod(Method):
    """Views -> encoder -> projector -> normalised `z` -> scores against normalised prototypes.

    Codes come from the global views' scores by Sinkhorn-Knopp (equipartition over the batch,
    plus queued features when `queue_size > 0`); every view predicts the codes of the other global
    views. Prototypes are re-normalised after every step and receive no gradient for the first
    `freeze_prototypes` steps. Multi-crop batches (2 global + N small crops) come as a list of view
    batches, the global ones first.

    Args:
        encoder: the shared encoder that checkpoints keep.
        loss: the objective; None = `SwAVLoss` with its defaults (its temperature, Sinkhorn
            epsilon and iterations are loss options).
        distance: pair distance of verification; None = cosine.
        projection_dim: projector output size.
        hidden_dim: projector hidden size.
        prototypes: number of prototypes K.
        freeze_prototypes: optimiser steps during which prototypes are not updated.
        queue_size: queued projections used in the Sinkhorn step (0 = none); helps small batches.
        n_global: global views per image.
    """

    loss_class = SwAVLoss
    multi_crop = True

    def __init__(
        self,
        encoder: nn.Module,
        loss: nn.Module | None = None,
        distance: str | None = None,
        projection_dim: int = 128,
        hidden_dim: int = 512,
        prototypes: int = 300,
        freeze_prototypes: int = 300,
        queue_size: int = 0,
        n_global: int = 2,
    ) -> None:
        super().__init__(encoder, loss, distance)
        check_sizes(
            projection_dim=projection_dim, hidden_dim=hidden_dim, prototypes=prototypes, n_global=n_global
        )
        if min(queue_size, freeze_prototypes) < 0:
            raise ConfigError(
                f"queue size and freeze prototypes must be >= 0, got {queue_size}, {freeze_prototypes}"
            )
        self.projector = ProjectionHead(self.embedding_dim(), hidden_dim, projection_dim)
        self.prototypes = Prototypes(projection_dim, prototypes)
        self.queue = FeatureQueue(queue_size, projection_dim) if queue_size else None
        self.freeze_prototypes = int(freeze_prototypes)
        self.n_global = int(n_global)
        self._queued: torch.Tensor | None = None

    def training_step(self, batch: Batch) -> StepOutput:
        views = batch.view_list()
        embeddings = [self.embed(x) for x in views]  # one pass per crop size
        z = [F.normalize(self.projector(h), dim=1) for h in embeddings]  # (N, P) per view
        # every rank's scores: Sinkhorn's equipartition is over the global batch
        scores = [gather_with_grad(self.prototypes(v)) for v in z]  # (N, K) per view
        queue_scores = None
        if self.queue is not None and len(self.queue):
            with torch.no_grad():
                queued = self.prototypes(self.queue.features())  # (Q, K)
            queue_scores = [queued] * self.n_global
        loss = self.loss(scores, n_global=self.n_global, queue_scores=queue_scores)
        self._queued = torch.cat([gather(v.detach()) for v in z[: self.n_global]])
        return StepOutput(loss, embeddings[0])

    def on_before_optimizer_step(self, step: int, total_steps: int) -> None:
        self.prototypes.freeze_grad(step, self.freeze_prototypes)

    def on_after_optimizer_step(self, step: int, total_steps: int) -> None:
        self.prototypes.normalize_()
        if self.queue is not None and self._queued is not None:
            self.queue.enqueue(self._queued)
        self._queued = None

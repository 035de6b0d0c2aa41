"""BYOL (Grill et al. 2020): an online network predicts a momentum target's projection; no negatives."""

from __future__ import annotations

import torch
from torch import nn

from siamese.losses.byol import BYOLLoss
from siamese.models.heads import PredictionHead, ProjectionHead
from siamese.training.methods.base import Batch, StepOutput, check_sizes
from siamese.training.methods.momentum_method import MomentumMethod


class BYOLMethod(MomentumMethod):
    """Online `q(g(f(x)))` against target `g'(f'(x'))`, symmetric `2 - 2 cos` loss.

    The target (encoder and projector) is an EMA of the online ones with a coefficient rising
    from `momentum` to 1 by a cosine schedule; it never receives gradients.

    Args:
        encoder: the shared (online) encoder that checkpoints keep.
        loss: the objective; None = `BYOLLoss`.
        distance: pair distance of verification; None = cosine.
        projection_dim: projector output size (BYOL: 256).
        hidden_dim: hidden size of projector and predictor (BYOL: 4096; smaller suits a CPU).
        momentum: starting EMA coefficient tau.
        momentum_end: final tau.
    """

    loss_class = BYOLLoss

    def __init__(
        self,
        encoder: nn.Module,
        loss: nn.Module | None = None,
        distance: str | None = None,
        projection_dim: int = 256,
        hidden_dim: int = 1024,
        momentum: float = 0.99,
        momentum_end: float = 1.0,
    ) -> None:
        super().__init__(encoder, loss, distance, momentum, momentum_end)
        check_sizes(projection_dim=projection_dim, hidden_dim=hidden_dim)
        self.projector = ProjectionHead(self.embedding_dim(), hidden_dim, projection_dim)
        self.init_momentum()
        self.predictor = PredictionHead(projection_dim, hidden_dim)

    def training_step(self, batch: Batch) -> StepOutput:
        h, z = self.forward_views(batch)  # (2N, D), (2N, P)
        p1, p2 = self.predictor(z).chunk(2)  # (N, P) each
        x = torch.cat(batch.view_list()[:2])
        with torch.no_grad():
            z1, z2 = self.target(x).chunk(2)  # (N, P) each
        return StepOutput(self.loss(p1, p2, z1, z2), h)

"""Barlow Twins (Zbontar et al. 2021): the views' cross-correlation driven to the identity."""

from __future__ import annotations

import torch
from torch import nn

from siamese.losses.barlow import BarlowTwinsLoss
from siamese.models.heads import ProjectionHead
from siamese.training.methods.base import Batch, Method, StepOutput


class BarlowTwinsMethod(Method):
    """Views -> encoder -> projector -> `BarlowTwinsLoss`; no predictor, no target, no negatives.

    The projector is the paper's 3-layer MLP (Linear-BN-ReLU twice, then Linear), 8192 wide there
    and 1024 here for a CPU. The loss sums over the projector's dimensions, so its scale grows with
    `projection_dim`; `barlow_lambda` was tuned by the paper at 8192 dimensions.

    Args:
        encoder: the shared encoder that checkpoints keep.
        projection_dim: projector output size (paper: 8192).
        hidden_dim: projector hidden size (paper: 8192).
        barlow_lambda: weight of the off-diagonal (redundancy) term (paper: 5e-3).
    """

    def __init__(
        self,
        encoder: nn.Module,
        projection_dim: int = 1024,
        hidden_dim: int = 1024,
        barlow_lambda: float = 5e-3,
    ) -> None:
        super().__init__(encoder, "cosine")
        self.projector = ProjectionHead(self.embedding_dim(), hidden_dim, projection_dim, num_layers=3)
        self.loss = BarlowTwinsLoss(barlow_lambda)

    def training_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.view_list()[:2]
        h = self.embed(torch.cat([x1, x2]))  # (2N, D)
        z1, z2 = self.projector(h).chunk(2)  # (N, P) each
        return StepOutput(self.loss(z1, z2), h)

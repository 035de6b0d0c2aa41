"""SimCLR (Chen et al. 2020): two views, a projection head, NT-Xent over the 2N views."""

from __future__ import annotations

import torch
from torch import nn

from siamese.losses.ntxent import NTXentLoss
from siamese.models.heads import ProjectionHead
from siamese.training.methods.base import Batch, Method, StepOutput


class SimCLRMethod(Method):
    """Views `x1, x2` -> encoder -> projection head -> NT-Xent with `temperature`.

    Args:
        encoder: the shared encoder that checkpoints keep.
        projection_dim: output size of the 2-layer MLP head.
        hidden_dim: hidden size of the head.
        temperature: NT-Xent temperature (0.1 suits small batches; SimCLR used 0.5 at batch 4096).
    """

    def __init__(
        self, encoder: nn.Module, projection_dim: int = 128, hidden_dim: int = 512, temperature: float = 0.1
    ) -> None:
        super().__init__(encoder, "cosine")
        self.projector = ProjectionHead(self.embedding_dim(), hidden_dim, projection_dim)
        self.loss = NTXentLoss(temperature)

    def training_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.view_list()[:2]
        h = self.embed(torch.cat([x1, x2]))  # (2N, D): one pass, BatchNorm sees both views
        z1, z2 = self.projector(h).chunk(2)  # (N, P) each
        return StepOutput(self.loss(z1, z2), h)

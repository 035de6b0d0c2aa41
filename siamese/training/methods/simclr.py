"""SimCLR (Chen et al. 2020): two views, a projection head, NT-Xent over the 2N views."""

from __future__ import annotations

from torch import nn

from siamese.losses.ntxent import NTXentLoss
from siamese.models.heads import ProjectionHead
from siamese.training.methods.base import check_sizes
from siamese.training.methods.two_view import TwoViewMethod


class SimCLRMethod(TwoViewMethod):
    """Views `x1, x2` -> encoder -> 2-layer MLP projection head -> `NTXentLoss` (its temperature
    is a loss option: 0.1 suits small batches; SimCLR used 0.5 at batch 4096).

    Args:
        encoder: the shared encoder that checkpoints keep.
        loss: the objective; None = `NTXentLoss` with its defaults.
        distance: pair distance of verification; None = cosine.
        projection_dim: output size of the head.
        hidden_dim: hidden size of the head.
    """

    loss_class = NTXentLoss

    def __init__(
        self,
        encoder: nn.Module,
        loss: nn.Module | None = None,
        distance: str | None = None,
        projection_dim: int = 128,
        hidden_dim: int = 512,
    ) -> None:
        super().__init__(encoder, loss, distance)
        check_sizes(projection_dim=projection_dim, hidden_dim=hidden_dim)
        self.projector = ProjectionHead(self.embedding_dim(), hidden_dim, projection_dim)

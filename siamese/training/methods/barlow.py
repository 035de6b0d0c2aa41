"""Barlow Twins (Zbontar et al. 2021): the views' cross-correlation driven to the identity."""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from siamese.losses.barlow import BarlowTwinsLoss
from siamese.models.heads import ProjectionHead
from siamese.training.methods.base import check_sizes
from siamese.training.methods.two_view import TwoViewMethod


class BarlowTwinsMethod(TwoViewMethod):
    """Views -> encoder -> projector -> `BarlowTwinsLoss`; no predictor, no target, no negatives.

    The projector is the paper's 3-layer MLP (Linear-BN-ReLU twice, then Linear), 8192 wide there
    and 1024 here for a CPU. The loss sums over the projector's dimensions, so its scale grows with
    `projection_dim`; the loss's `redundancy_weight` was tuned by the paper at 8192 dimensions.

    Args:
        encoder: the shared encoder that checkpoints keep.
        loss: the objective; None = `BarlowTwinsLoss` with its defaults.
        distance: pair distance of verification; None = cosine.
        projection_dim: projector output size (paper: 8192).
        hidden_dim: projector hidden size (paper: 8192).
    """

    loss_class: ClassVar[type[nn.Module] | None] = BarlowTwinsLoss

    def __init__(
        self,
        encoder: nn.Module,
        loss: nn.Module | None = None,
        distance: str | None = None,
        projection_dim: int = 1024,
        hidden_dim: int = 1024,
    ) -> None:
        super().__init__(encoder, loss, distance)
        check_sizes(projection_dim=projection_dim, hidden_dim=hidden_dim)
        self.projector = ProjectionHead(self.embedding_dim(), hidden_dim, projection_dim, num_layers=3)

"""VICReg (Bardes et al. 2022): invariance, variance and covariance terms on an expander's output."""

from __future__ import annotations

from torch import nn

from siamese.losses.vicreg import VICRegLoss
from siamese.models.heads import ProjectionHead
from siamese.training.methods.base import check_sizes
from siamese.training.methods.two_view import TwoViewMethod


class VICRegMethod(TwoViewMethod):
    """Views -> encoder -> expander -> `VICRegLoss`; no predictor, no target, no negatives.

    The expander is the paper's 3-layer MLP (Linear-BN-ReLU twice, then Linear), 8192 wide there
    and 1024 here for a CPU. The variance hinge (std >= 1 per dimension) is what prevents collapse;
    the three weights are the loss's options.

    Args:
        encoder: the shared encoder that checkpoints keep.
        loss: the objective; None = `VICRegLoss` with its defaults.
        distance: pair distance of verification; None = cosine.
        projection_dim: expander output size (paper: 8192).
        hidden_dim: expander hidden size (paper: 8192).
    """

    loss_class = VICRegLoss

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

"""VICReg (Bardes et al. 2022): invariance, variance and covariance terms on an expander's output."""

from __future__ import annotations

import torch
from torch import nn

from siamese.losses.vicreg import VICRegLoss
from siamese.models.heads import ProjectionHead
from siamese.training.methods.base import Batch, Method, StepOutput


class VICRegMethod(Method):
    """Views -> encoder -> expander -> `VICRegLoss`; no predictor, no target, no negatives.

    The expander is the paper's 3-layer MLP (Linear-BN-ReLU twice, then Linear), 8192 wide there
    and 1024 here for a CPU. The variance hinge (std >= 1 per dimension) is what prevents collapse.

    Args:
        encoder: the shared encoder that checkpoints keep.
        projection_dim: expander output size (paper: 8192).
        hidden_dim: expander hidden size (paper: 8192).
        vicreg_invariance: weight lambda of the mean squared error between the views (paper: 25).
        vicreg_variance: weight mu of the std hinge (paper: 25).
        vicreg_covariance: weight nu of the off-diagonal covariance (paper: 1).
    """

    def __init__(
        self,
        encoder: nn.Module,
        projection_dim: int = 1024,
        hidden_dim: int = 1024,
        vicreg_invariance: float = 25.0,
        vicreg_variance: float = 25.0,
        vicreg_covariance: float = 1.0,
    ) -> None:
        super().__init__(encoder, "cosine")
        self.projector = ProjectionHead(self.embedding_dim(), hidden_dim, projection_dim, num_layers=3)
        self.loss = VICRegLoss(vicreg_invariance, vicreg_variance, vicreg_covariance)

    def training_step(self, batch: Batch) -> StepOutput:
        x1, x2 = batch.view_list()[:2]
        h = self.embed(torch.cat([x1, x2]))  # (2N, D)
        z1, z2 = self.projector(h).chunk(2)  # (N, P) each
        return StepOutput(self.loss(z1, z2), h)

"""SimSiam (Chen & He 2021): a predictor on one branch and a stop-gradient on the other; no momentum."""

from __future__ import annotations

from torch import nn

from siamese.losses.simsiam import SimSiamLoss
from siamese.models.heads import PredictionHead, ProjectionHead
from siamese.training.methods.base import Batch, StepOutput, check_sizes
from siamese.training.methods.two_view import TwoViewMethod


class SimSiamMethod(TwoViewMethod):
    """Views -> encoder -> projector `z` -> predictor `p`; loss `D(p1, sg(z2))/2 + D(p2, sg(z1))/2`.

    Both branches share every weight; the stop-gradient on `z` (in `SimSiamLoss`) is what prevents
    collapse, not a momentum target. The projector is the paper's: 3 Linear layers, each followed by
    BatchNorm (the output one affine-free), ReLU on the hidden ones. The predictor is a bottleneck
    Linear-BN-ReLU-Linear (the paper's 2048 -> 512 -> 2048). The paper's 2048-d sizes are scaled by
    1/8 for a CPU, keeping its ratios.

    Args:
        encoder: the shared encoder that checkpoints keep.
        loss: the objective; None = `SimSiamLoss`.
        distance: pair distance of verification; None = cosine.
        projection_dim: projector output size (paper: 2048).
        hidden_dim: projector hidden size (paper: 2048).
        predictor_dim: predictor bottleneck width; None = `projection_dim // 4` (paper: 512).
    """

    loss_class = SimSiamLoss

    def __init__(
        self,
        encoder: nn.Module,
        loss: nn.Module | None = None,
        distance: str | None = None,
        projection_dim: int = 256,
        hidden_dim: int = 256,
        predictor_dim: int | None = None,
    ) -> None:
        super().__init__(encoder, loss, distance)
        check_sizes(projection_dim=projection_dim, hidden_dim=hidden_dim, predictor_dim=predictor_dim)
        self.projector = nn.Sequential(  # the last Linear's bias is cancelled by the output BN (inert)
            ProjectionHead(self.embedding_dim(), hidden_dim, projection_dim, num_layers=3),
            nn.BatchNorm1d(projection_dim, affine=False),
        )
        bottleneck = max(projection_dim // 4, 1) if predictor_dim is None else predictor_dim
        self.predictor = PredictionHead(projection_dim, bottleneck)

    def training_step(self, batch: Batch) -> StepOutput:
        h, z = self.forward_views(batch)  # (2N, D), (2N, P)
        p1, p2 = self.predictor(z).chunk(2)  # (N, P) each
        z1, z2 = z.chunk(2)  # (N, P) each; the loss detaches them
        return StepOutput(self.loss(p1, p2, z1, z2), h)

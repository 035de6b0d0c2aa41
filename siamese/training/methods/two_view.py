"""The two-view family: both views of each image through the encoder and a projection head."""

from __future__ import annotations

import torch
from torch import nn

from siamese.training.distributed import gather_with_grad
from siamese.training.methods.base import Batch, Method, StepOutput


class TwoViewMethod(Method):
    """Views `x1, x2` -> encoder (one pass, so BatchNorm sees both) -> `projector` -> `loss(z1, z2)`.

    A subclass sets `self.projector` (its head) and names its `loss_class`; SimCLR, Barlow Twins
    and VICReg are nothing more. Methods with a predictor or a target (SimSiam, BYOL) reuse
    `forward_views` and override `training_step`.
    """

    projector: nn.Module  # set by the subclass

    def forward_views(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder embeddings `(2N, D)` and projections `(2N, P)` of the first two views,
        view 1's rows first."""
        x1, x2 = batch.view_list()[:2]
        h = self.embed(torch.cat([x1, x2]))  # (2N, D)
        return h, self.projector(h)  # (2N, P)

    def training_step(self, batch: Batch) -> StepOutput:
        h, z = self.forward_views(batch)
        z1, z2 = z.chunk(2)  # (n, P) each
        # the loss sees the global batch (every rank's views, in a data-parallel run)
        return StepOutput(self.loss(gather_with_grad(z1), gather_with_grad(z2)), h)

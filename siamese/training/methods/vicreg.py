"""VICReg (Bardes et al. 2022): invariance, variance and covariance terms on an expander's output."""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from siamese.losses.vicreg import VICRegLoss
from siamese.training.methods.barlow import BarlowTwinsMethod


class VICRegMethod(BarlowTwinsMethod):
    """Views -> encoder -> expander -> `VICRegLoss`; no predictor, no target, no negatives.

    The same architecture as Barlow Twins (whose constructor it takes: `projection_dim` and
    `hidden_dim` of the paper's 3-layer expander, 8192 wide there and 1024 here for a CPU), with
    another loss: the variance hinge (std >= 1 per dimension) is what prevents collapse; the three
    weights are the loss's options.

    Args:
        encoder: the shared encoder that checkpoints keep.
        loss: the objective; None = `VICRegLoss` with its defaults.
        distance: pair distance of verification; None = cosine.
        projection_dim: expander output size (paper: 8192).
        hidden_dim: expander hidden size (paper: 8192).
    """

    loss_class: ClassVar[type[nn.Module] | None] = VICRegLoss

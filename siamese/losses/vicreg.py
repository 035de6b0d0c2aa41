"""VICReg's loss (Bardes et al. 2022): variance, invariance and covariance terms, no negatives.

Invariance pulls the two views' embeddings together (mean squared error); variance keeps every
dimension's std over the batch above ``gamma`` (a hinge, which prevents collapse); covariance
decorrelates the dimensions (off-diagonal covariances pushed to 0), on each branch separately.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siamese.errors import ConfigError
from siamese.losses.barlow import check_two_views, off_diagonal


def variance_term(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """``v(Z) = mean_j max(0, gamma - sqrt(Var(z_j) + eps))`` (eq. 1), unbiased variance over the batch.

    Args:
        z: one branch's embeddings, ``(N, D)``, N >= 2.
        gamma: target std of each dimension.
        eps: keeps the square root's gradient finite when a dimension has collapsed.
    """
    std = torch.sqrt(z.var(dim=0) + eps)  # (D,)
    return F.relu(gamma - std).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """``c(Z) = sum_{i != j} Cov(Z)_ij^2 / D`` (eqs. 3-4), ``Cov`` with the unbiased 1/(N-1).

    Args:
        z: one branch's embeddings, ``(N, D)``, N >= 2.
    """
    n, d = z.shape
    centred = z - z.mean(dim=0)  # (N, D)
    cov = centred.T @ centred / (n - 1)  # (D, D)
    return off_diagonal(cov).pow(2).sum() / d


class VICRegLoss(nn.Module):
    """``lambda * s(Z, Z') + mu * (v(Z) + v(Z')) / 2 + nu * (c(Z) + c(Z'))``.

    ``s`` is the mean squared error over all ``N x D`` entries (eq. 5), ``v`` the variance hinge
    (`variance_term`), ``c`` the off-diagonal covariance (`covariance_term`). Eq. 6 of the paper writes
    ``mu * (v(Z) + v(Z'))``; the authors' code averages the two variance terms (as here, and as
    lightly's ``VICRegLoss``), and the published weights 25 / 25 / 1 were tuned with that average.

    Args:
        invariance_weight: ``lambda`` (25).
        variance_weight: ``mu`` (25).
        covariance_weight: ``nu`` (1).
        gamma: target std of each dimension (1).
        eps: added to the variance before the square root (1e-4).

    Raises:
        ConfigError: if a weight, ``gamma`` or ``eps`` is negative.
    """

    def __init__(
        self,
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
    ) -> None:
        super().__init__()
        values = (invariance_weight, variance_weight, covariance_weight, gamma, eps)
        if min(values) < 0:
            raise ConfigError(f"VICReg weights, gamma and eps must be >= 0, got {values}")
        self.invariance_weight, self.variance_weight, self.covariance_weight = map(float, values[:3])
        self.gamma, self.eps = float(gamma), float(eps)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            z1: embeddings of the first view, ``(N, D)``; row ``i`` is image ``i``.
            z2: embeddings of the second view, ``(N, D)``, in the same image order.

        Returns:
            The scalar loss.

        Raises:
            ConfigError: if the views are not two ``(N, D)`` batches of the same shape with N >= 2.
        """
        check_two_views(z1, z2, "VICReg")
        invariance = F.mse_loss(z1, z2)
        variance = (variance_term(z1, self.gamma, self.eps) + variance_term(z2, self.gamma, self.eps)) / 2
        covariance = covariance_term(z1) + covariance_term(z2)
        return (
            self.invariance_weight * invariance
            + self.variance_weight * variance
            + self.covariance_weight * covariance
        )

    def extra_repr(self) -> str:
        return (
            f"invariance_weight={self.invariance_weight}, variance_weight={self.variance_weight}, "
            f"covariance_weight={self.covariance_weight}, gamma={self.gamma}, eps={self.eps}"
        )

"""Barlow Twins' redundancy-reduction loss (Zbontar et al. 2021).

The two views' embeddings are standardised over the batch (each dimension to mean 0 and std 1) and
their cross-correlation matrix ``C`` (``D x D``) is driven to the identity: the diagonal to 1 (the
views agree, invariance) and the off-diagonal to 0 (the dimensions are decorrelated, no redundancy).
"""

from __future__ import annotations

import torch
from torch import nn

from siamese.errors import ConfigError


def check_two_views(z1: torch.Tensor, z2: torch.Tensor, what: str) -> None:
    """Raise a `ConfigError` naming loss `what` unless the views are two ``(N, D)`` batches, N >= 2."""
    if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
        raise ConfigError(
            f"{what} needs two (N, D) views of the same shape with N >= 2 (batch statistics), got "
            f"{tuple(z1.shape)} and {tuple(z2.shape)}"
        )


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square matrix ``(D, D)``, flattened to ``(D * (D - 1),)``."""
    d = m.shape[0]
    return m[~torch.eye(d, dtype=torch.bool, device=m.device)]


def standardize(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``(z - mean) / sqrt(var + eps)`` per dimension over the batch, with the biased (1/N) variance.

    The biased variance makes ``z_i . z_j / N`` exactly the paper's correlation (eq. 2) when ``eps``
    is 0; ``eps`` is BatchNorm's default, as the reference code normalises with an affine-free
    ``BatchNorm1d`` (and lightly with ``F.batch_norm``).
    """
    return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)  # (N, D)


class BarlowTwinsLoss(nn.Module):
    """``sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2`` (the paper's eq. 1).

    With ``a``, ``b`` the two views standardised over the batch (`standardize`),
    ``C = a.T @ b / N``; ``C_ij`` is the correlation of dimension ``i`` of view 1 with dimension
    ``j`` of view 2, in ``[-1, 1]``. The loss is a sum over dimensions (it grows with ``D``), not a mean.

    Args:
        redundancy_weight: ``lambda``, the weight of the off-diagonal term; the paper's 5e-3 (tuned for
            its 8192-d projector; the reference code uses 0.0051; lightly's default is 5e-3 too).
        eps: added to the per-dimension variance before the square root.

    Raises:
        ConfigError: if ``redundancy_weight < 0`` or ``eps < 0``.
    """

    def __init__(self, redundancy_weight: float = 5e-3, eps: float = 1e-5) -> None:
        super().__init__()
        if redundancy_weight < 0 or eps < 0:
            raise ConfigError(f"Barlow Twins lambda and eps must be >= 0, got {redundancy_weight!r}, {eps!r}")
        self.redundancy_weight = float(redundancy_weight)
        self.eps = float(eps)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            z1: projections of the first view, ``(N, D)``; row ``i`` is image ``i``.
            z2: projections of the second view, ``(N, D)``, in the same image order.

        Returns:
            The scalar loss.

        Raises:
            ConfigError: if the views are not two ``(N, D)`` batches of the same shape with N >= 2.
        """
        check_two_views(z1, z2, "Barlow Twins")
        n = z1.shape[0]
        c = standardize(z1, self.eps).T @ standardize(z2, self.eps) / n  # (D, D)
        invariance = (1 - c.diagonal()).pow(2).sum()
        redundancy = off_diagonal(c).pow(2).sum()
        return invariance + self.redundancy_weight * redundancy

    def extra_repr(self) -> str:
        return f"redundancy_weight={self.redundancy_weight}, eps={self.eps}"

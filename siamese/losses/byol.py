"""BYOL's regression loss (Grill et al. 2020): predict the target network's projection of the other view.

``2 - 2 cos(p, z)`` is the squared Euclidean distance between the L2-normalised prediction ``p``
and target projection ``z``. The target is never differentiated: it is updated by EMA only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siamese.errors import ConfigError


def byol_loss(p: torch.Tensor, z: torch.Tensor, method: str = "BYOL") -> torch.Tensor:
    """Mean over the batch of ``2 - 2 cos(p_i, z_i)``, with ``z`` detached.

    Args:
        p: the online network's predictions, ``(N, D)``.
        z: the target network's projections of the other view, ``(N, D)``, same image order.
        method: the method named in the error message (SimSiam reuses this loss).

    Returns:
        The scalar loss, in ``[0, 4]``.

    Raises:
        ConfigError: if ``p`` and ``z`` are not 2-D tensors of the same shape.
    """
    if p.ndim != 2 or p.shape != z.shape:
        raise ConfigError(
            f"{method} needs predictions and targets of the same (N, D) shape, got {tuple(p.shape)} and "
            f"{tuple(z.shape)}"
        )
    p = F.normalize(p, dim=1)  # (N, D)
    z = F.normalize(z.detach(), dim=1)  # (N, D)
    return (2 - 2 * (p * z).sum(dim=1)).mean()


class BYOLLoss(nn.Module):
    """BYOL's symmetrised loss ``L + L~`` (the paper's eq. 2 and its swapped-views twin).

    ``p1``/``z1`` come from view 1 and ``p2``/``z2`` from view 2; the prediction of one view
    regresses the target of the other::

        loss = byol_loss(p1, z2) + byol_loss(p2, z1)

    This is the paper's sum, in ``[0, 8]``. Lightly's BYOL example instead averages negative
    cosine similarities, ``0.5 * (-cos(p1, z2) - cos(p2, z1))``; this loss equals
    ``4 + 4 *`` that one, so it has the same minimiser and four times its gradient.
    """

    def forward(self, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Compute the symmetric loss.

        Args:
            p1: online predictions of view 1, ``(N, D)``.
            p2: online predictions of view 2, ``(N, D)``.
            z1: target projections of view 1, ``(N, D)``.
            z2: target projections of view 2, ``(N, D)``.

        Returns:
            The scalar loss.

        Raises:
            ConfigError: if the shapes do not match.
        """
        return byol_loss(p1, z2) + byol_loss(p2, z1)

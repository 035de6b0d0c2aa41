"""SimSiam's loss (Chen & He 2021): symmetric negative cosine with a stop-gradient on the target.

The paper's eq. 1-2: ``D(p, z) = -cos(p, stopgrad(z))`` and
``L = D(p1, z2) / 2 + D(p2, z1) / 2``, in ``[-1, 1]``. BYOL's ``2 - 2 cos`` (`byol_loss`) is an affine
map of the same quantity, ``byol_loss(p, z) = 2 + 2 D(p, z)``, so ``D`` is computed from it rather than
written a second time.
"""

from __future__ import annotations

import torch
from torch import nn

from siamese.losses.byol import byol_loss


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-cos(p_i, z_i)``, with ``z`` detached (SimSiam's ``D``).

    Args:
        p: predictions of one view, ``(N, D)``.
        z: projections of the other view, ``(N, D)``, same image order; no gradient flows into it.

    Returns:
        The scalar loss, in ``[-1, 1]``.

    Raises:
        ConfigError: if ``p`` and ``z`` are not 2-D tensors of the same shape.
    """
    return byol_loss(p, z, method="SimSiam") / 2 - 1  # 2 - 2 cos -> -cos; byol_loss detaches z


class SimSiamLoss(nn.Module):
    """SimSiam's symmetrised loss ``D(p1, z2) / 2 + D(p2, z1) / 2``.

    ``p1``/``z1`` come from view 1 and ``p2``/``z2`` from view 2; each view's prediction matches the
    other view's (detached) projection. This is lightly's
    ``0.5 * (NegativeCosineSimilarity()(p1, z2.detach()) + ...(p2, z1.detach()))`` and a quarter of
    `BYOLLoss` minus 1 (same minimiser, a quarter of its gradient).
    """

    def forward(self, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Compute the symmetric loss.

        Args:
            p1: predictions of view 1, ``(N, D)``.
            p2: predictions of view 2, ``(N, D)``.
            z1: projections of view 1, ``(N, D)``.
            z2: projections of view 2, ``(N, D)``.

        Returns:
            The scalar loss, in ``[-1, 1]``.

        Raises:
            ConfigError: if the shapes do not match.
        """
        return (negative_cosine(p1, z2) + negative_cosine(p2, z1)) / 2

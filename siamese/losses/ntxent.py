"""NT-Xent (normalised temperature-scaled cross entropy), the SimCLR loss (Chen et al. 2020).

Two views of ``N`` images give ``2N`` embeddings. Each one is an anchor whose positive is the other
view of the same image and whose negatives are the other ``2N - 2`` embeddings of the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siamese.errors import ConfigError


class NTXentLoss(nn.Module):
    """SimCLR's NT-Xent loss over the ``2N`` views of a batch.

    With ``z`` the L2-normalised concatenation of both views, ``s_kl = z_k . z_l`` and ``tau`` the
    temperature, for each of the ``2N`` anchors ``k`` with positive ``p(k)``::

        l_k = -log( exp(s_k,p(k) / tau) / sum_{l != k} exp(s_kl / tau) )

    and the loss is the mean of ``l_k`` over all ``2N`` anchors. The denominator includes the
    positive, and the self-similarity ``s_kk`` is excluded.

    Args:
        temperature: ``tau``, scales the cosine similarities.

    Raises:
        ConfigError: if ``temperature <= 0``.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"NT-Xent temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            z1: embeddings of the first view, ``(N, D)``; row ``i`` is image ``i``.
            z2: embeddings of the second view, ``(N, D)``, in the same image order.

        Returns:
            The scalar loss.

        Raises:
            ConfigError: if the views are not 2-D tensors of the same shape with at least one row.
        """
        if z1.ndim != 2 or z1.shape != z2.shape or z1.shape[0] == 0:
            raise ConfigError(
                f"NT-Xent needs two (N, D) views of the same shape, got {tuple(z1.shape)} and "
                f"{tuple(z2.shape)}"
            )
        n = z1.shape[0]
        z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D)
        logits = z @ z.T / self.temperature  # (2N, 2N)
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        idx = torch.arange(n, device=z.device)
        targets = torch.cat([idx + n, idx])  # (2N,): the other view of the same image
        return F.cross_entropy(logits, targets)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"

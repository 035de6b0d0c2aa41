"""InfoNCE with a queue of negative keys, the MoCo loss (He et al. 2020; Chen et al. 2020, MoCo v2).

Each query has one positive key (the momentum encoder's embedding of another view of the same image)
and the ``K`` keys of a queue of earlier batches as negatives. The batch's own other keys are not
negatives, unlike NT-Xent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siamese.errors import ConfigError


def _check_inputs(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float) -> None:
    if not temperature > 0:
        raise ConfigError(f"InfoNCE temperature must be > 0, got {temperature!r}")
    if query.ndim != 2 or query.shape != key.shape:
        raise ConfigError(
            f"InfoNCE needs query and key of the same (N, D) shape, got {tuple(query.shape)} and "
            f"{tuple(key.shape)}"
        )
    if queue.ndim != 2 or queue.shape[1] != query.shape[1]:
        raise ConfigError(
            f"InfoNCE queue must be (K, {query.shape[1]}) to match the queries, got {tuple(queue.shape)}"
        )


def info_nce(
    query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2
) -> torch.Tensor:
    """MoCo's InfoNCE loss: cross entropy with the positive key at index 0.

    All three inputs are L2-normalised here. For query ``q_i``, positive ``k_i`` and queue rows
    ``n_j``::

        logits_i = [q_i . k_i, q_i . n_1, ..., q_i . n_K] / temperature
        loss = mean_i cross_entropy(logits_i, 0)

    As in MoCo's pseudocode (``k.detach()``), no gradient flows into ``key`` or ``queue``.
    An empty queue (``K = 0``) leaves only the positive logit, so the loss is exactly 0.

    Args:
        query: the online encoder's embeddings, ``(N, D)``.
        key: the momentum encoder's embeddings of the other view, ``(N, D)``, same image order.
        queue: negative keys from earlier batches, ``(K, D)``; compute the loss before enqueueing
            this batch's keys, so that a key is never its own query's negative.
        temperature: scales the cosine similarities.

    Returns:
        The scalar loss.

    Raises:
        ConfigError: if the shapes do not match or ``temperature <= 0``.
    """
    _check_inputs(query, key, queue, temperature)
    q = F.normalize(query, dim=1)  # (N, D)
    k = F.normalize(key.detach(), dim=1)  # (N, D)
    negatives = F.normalize(queue.detach().to(q.dtype), dim=1)  # (K, D)
    l_pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
    l_neg = q @ negatives.T  # (N, K)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (N, 1 + K)
    targets = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)  # (N,)
    return F.cross_entropy(logits, targets)


class InfoNCELoss(nn.Module):
    """Module form of :func:`info_nce`.

    Args:
        temperature: scales the cosine similarities (0.2 in MoCo v2).

    Raises:
        ConfigError: if ``temperature <= 0``.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"InfoNCE temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)

    def forward(self, query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
        """Compute :func:`info_nce` with this module's temperature; see there for the arguments."""
        return info_nce(query, key, queue, self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"

"""SwAV's swapped-prediction loss and its Sinkhorn-Knopp codes (Caron et al. 2020).

Each global view's prototype scores are turned into soft codes by an entropy-regularised optimal
transport that spreads the batch evenly over the prototypes (equipartition); every other view then
predicts those codes through a softmax over its own scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from siamese.errors import ConfigError


def _check_sinkhorn_args(scores: torch.Tensor, epsilon: float, iterations: int) -> None:
    if scores.ndim != 2 or 0 in scores.shape:
        raise ConfigError(f"Sinkhorn needs non-empty (B, K) scores, got {tuple(scores.shape)}")
    if not epsilon > 0:
        raise ConfigError(f"Sinkhorn epsilon must be > 0, got {epsilon!r}")
    if iterations < 1:
        raise ConfigError(f"Sinkhorn needs at least 1 iteration, got {iterations!r}")


@torch.no_grad()
def sinkhorn_plan(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """The transport plan ``P`` of SwAV's Sinkhorn-Knopp, as in the reference code.

    ``P`` starts as ``exp(scores / epsilon)`` scaled to sum to 1, then each iteration scales every
    prototype's total to ``1/K`` and then every sample's total to ``1/B``. The per-sample totals
    (``P.sum(1)``) are therefore exactly ``1/B`` on return; the per-prototype totals (``P.sum(0)``)
    approach ``1/K`` as ``iterations`` grows (3 in SwAV is only approximate). The global maximum is
    subtracted before ``exp``, which the first scaling cancels, so large scores do not overflow.

    Args:
        scores: sample-prototype similarities, ``(B, K)``.
        epsilon: entropy regularisation; smaller gives harder assignments.
        iterations: number of row-and-column scaling rounds.

    Returns:
        ``P``, ``(B, K)``, non-negative, without gradient.

    Raises:
        ConfigError: if ``scores`` is not a non-empty 2-D tensor, ``epsilon <= 0`` or
            ``iterations < 1``.
    """
    _check_sinkhorn_args(scores, epsilon, iterations)
    q = torch.exp((scores - scores.max()) / epsilon).T  # (K, B)
    q = q / q.sum()
    n_prototypes, batch = q.shape
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True) / n_prototypes  # each prototype sums to 1/K
        q = q / q.sum(dim=0, keepdim=True) / batch  # each sample sums to 1/B
    return q.T  # (B, K)


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """SwAV's soft codes ``Q = B * P``: each row is a distribution over the ``K`` prototypes.

    Args:
        scores: sample-prototype similarities, ``(B, K)``.
        epsilon: entropy regularisation; smaller gives harder assignments.
        iterations: number of Sinkhorn-Knopp scaling rounds.

    Returns:
        The codes, ``(B, K)``, rows summing to 1, without gradient.

    Raises:
        ConfigError: as :func:`sinkhorn_plan`.
    """
    return sinkhorn_plan(scores, epsilon, iterations) * scores.shape[0]


class SwAVLoss(nn.Module):
    """SwAV's swapped-prediction loss over multi-crop views.

    For each global view ``i`` with codes ``q_i = sinkhorn(scores_i)`` and every other view
    ``j != i`` (global or local)::

        l(i, j) = -mean_b sum_k q_i[b, k] * log_softmax(scores_j[b] / temperature)[k]
        loss = mean_i ( sum_{j != i} l(i, j) / (V - 1) )

    with ``V`` the number of views, as in the SwAV reference code. Codes carry no gradient.

    Args:
        temperature: softmax temperature of the predictions.
        epsilon: Sinkhorn entropy regularisation.
        sinkhorn_iterations: Sinkhorn-Knopp rounds per code computation.

    Raises:
        ConfigError: if ``temperature``, ``epsilon`` or ``sinkhorn_iterations`` is not positive.
    """

    def __init__(self, temperature: float = 0.1, epsilon: float = 0.05, sinkhorn_iterations: int = 3) -> None:
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"SwAV temperature must be > 0, got {temperature!r}")
        if not epsilon > 0:
            raise ConfigError(f"SwAV Sinkhorn epsilon must be > 0, got {epsilon!r}")
        if sinkhorn_iterations < 1:
            raise ConfigError(f"SwAV needs at least 1 Sinkhorn iteration, got {sinkhorn_iterations!r}")
        self.temperature = float(temperature)
        self.epsilon = float(epsilon)
        self.sinkhorn_iterations = int(sinkhorn_iterations)

    def forward(
        self,
        scores_per_view: list[torch.Tensor],
        n_global: int = 2,
        queue_scores: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Compute the loss.

        Args:
            scores_per_view: prototype scores of each view, each ``(B, K)``, the ``n_global``
                global (high-resolution) views first, then any local crops.
            n_global: how many leading views get codes (SwAV's ``crops_for_assign``).
            queue_scores: for each global view, prototype scores ``(Q, K)`` of queued features
                from earlier batches. They are prepended to that view's scores for the Sinkhorn
                only, so the equipartition covers ``Q + B`` samples; only the batch's codes are kept.

        Returns:
            The scalar loss.

        Raises:
            ConfigError: if there are fewer than two views, the views' shapes differ,
                ``n_global`` is out of range or ``queue_scores`` does not match.
        """
        self._check_views(scores_per_view, n_global, queue_scores)
        n_views = len(scores_per_view)
        total = scores_per_view[0].new_zeros(())
        for i in range(n_global):
            codes = self._codes(scores_per_view[i], None if queue_scores is None else queue_scores[i])
            sub = sum(self._cross_entropy(codes, scores_per_view[j]) for j in range(n_views) if j != i)
            total = total + sub / (n_views - 1)
        return total / n_global

    def _codes(self, scores: torch.Tensor, queued: torch.Tensor | None) -> torch.Tensor:
        """Sinkhorn codes for the batch rows of ``scores`` (B, K), with ``queued`` (Q, K) before them."""
        scores = scores.detach()
        if queued is None:
            return sinkhorn(scores, self.epsilon, self.sinkhorn_iterations)  # (B, K)
        stacked = torch.cat([queued.detach().to(scores.dtype), scores])  # (Q + B, K)
        return sinkhorn(stacked, self.epsilon, self.sinkhorn_iterations)[queued.shape[0] :]  # (B, K)

    def _cross_entropy(self, codes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(scores / self.temperature, dim=1)  # (B, K)
        return -(codes * log_p).sum(dim=1).mean()

    @staticmethod
    def _check_views(
        views: list[torch.Tensor], n_global: int, queue_scores: list[torch.Tensor] | None
    ) -> None:
        if len(views) < 2:
            raise ConfigError(f"SwAV needs at least 2 views, got {len(views)}")
        shape = views[0].shape
        if len(shape) != 2 or any(v.shape != shape for v in views):
            raise ConfigError(
                f"SwAV views must all be (B, K) of one shape, got {[tuple(v.shape) for v in views]}"
            )
        if not 1 <= n_global <= len(views):
            raise ConfigError(f"n_global must be between 1 and {len(views)}, got {n_global!r}")
        if queue_scores is None:
            return
        if len(queue_scores) != n_global:
            raise ConfigError(
                f"queue_scores needs one tensor per global view ({n_global}), got {len(queue_scores)}"
            )
        for queued in queue_scores:
            if queued.ndim != 2 or queued.shape[1] != shape[1]:
                raise ConfigError(f"queued scores must be (Q, {shape[1]}), got {tuple(queued.shape)}")

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, epsilon={self.epsilon}, "
            f"sinkhorn_iterations={self.sinkhorn_iterations}"
        )

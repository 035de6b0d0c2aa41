"""The contrastive (margin) loss of Hadsell, Chopra and LeCun (2006), exactly as published."""

from __future__ import annotations

import torch

from siamese.errors import ConfigError
from siamese.losses.miners import IndicesTuple, make_distance
from siamese.losses.pair_loss import PairLoss


class MarginContrastiveLoss(PairLoss):
    """Hadsell–Chopra–LeCun contrastive loss over pairs.

    For each pair considered, with ``y = 1`` for a positive (same label) and ``0`` for a negative::

        L = y * 0.5 * D**2 + (1 - y) * 0.5 * max(0, margin - D)**2

    and the loss is the mean over all pairs considered, positives and negatives together. ``D`` is
    the Euclidean distance between the raw (not normalised) embeddings, or ``1 - cos`` for
    ``distance="cosine"``.

    Without ``indices_tuple`` every ordered pair ``(i, j), i != j`` formed from the labels counts
    (each unordered pair twice, which leaves the mean unchanged). With one, only its pairs count;
    triplets ``(a, p, n)`` count as the pairs ``(a, p)`` and ``(a, n)``.

    This is not pml's ``ContrastiveLoss``, which uses unsquared hinges and averages positives and
    negatives separately over their non-zero terms.

    Args:
        margin: negatives closer than this are pushed apart.
        distance: ``"euclidean"`` or ``"cosine"``.

    Raises:
        ConfigError: if ``margin <= 0`` or the distance is unknown.
    """

    def __init__(self, margin: float = 1.0, distance: str = "euclidean") -> None:
        if not margin > 0:
            raise ConfigError(f"margin must be > 0, got {margin!r}")
        super().__init__(mat_based_loss=False, distance=make_distance(distance, normalize=False))
        self.margin = float(margin)
        self.add_to_recordable_attributes(list_of_names=["margin"], is_stat=False)

    def pair_based_loss(self, mat: torch.Tensor, indices_tuple: IndicesTuple) -> dict:
        # pml substitutes [] for an empty side; indexing with empty tensors keeps dtype and device.
        a1, p, a2, n = indices_tuple
        return self._compute_loss(mat[a1, p], mat[a2, n], indices_tuple)

    def _compute_loss(
        self, pos_pair: torch.Tensor, neg_pair: torch.Tensor, indices_tuple: IndicesTuple
    ) -> dict:
        a1, _, a2, _ = indices_tuple
        pos_dist = self._as_distance(pos_pair)  # (P,)
        neg_dist = self._as_distance(neg_pair)  # (N,)
        pos_losses = 0.5 * pos_dist.pow(2)
        neg_losses = 0.5 * torch.relu(self.margin - neg_dist).pow(2)
        return {
            "loss": {
                "losses": torch.cat([pos_losses, neg_losses]),  # (P + N,)
                "indices": torch.cat([a1, a2]),  # the anchor of each pair
                "reduction_type": "element",
            }
        }

    def _as_distance(self, pair_values: torch.Tensor) -> torch.Tensor:
        """Per-pair values of the pml distance as a dissimilarity ``D`` (``1 - s`` for cosine)."""
        return 1 - pair_values if self.distance.is_inverted else pair_values

    def extra_repr(self) -> str:
        return f"margin={self.margin}"

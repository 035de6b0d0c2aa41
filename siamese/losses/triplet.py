"""Triplet margin loss: pml's `TripletMarginLoss` with registry-friendly options."""

from __future__ import annotations

from typing import ClassVar

from pytorch_metric_learning.losses import TripletMarginLoss

from siamese.errors import ConfigError
from siamese.losses.miners import make_distance


class TripletLoss(TripletMarginLoss):
    """pml's triplet margin loss, ``max(0, d_ap - d_an + margin)`` per triplet.

    Behaviour is pml's: without ``indices_tuple`` every triplet ``(a, p, n)`` formed from the labels
    is used; a pair tuple ``(a1, p, a2, n)`` is turned into the triplets that share an anchor; the
    loss is the mean over triplets with a non-zero loss (pml's ``AvgNonZeroReducer``), and 0 when
    there are none.

    Args:
        margin: the desired gap between the anchor-negative and anchor-positive distances.
        distance: ``"euclidean"``: Euclidean distance between L2-normalised embeddings (pml's
            default); ``"cosine"``: cosine similarity, so a triplet's loss is
            ``max(0, s_an - s_ap + margin)``.

    Raises:
        ConfigError: if ``margin <= 0`` or the distance is unknown.
    """

    samplers: ClassVar[tuple[str, ...]] = ("triplets", "mperclass")

    def __init__(self, margin: float = 0.2, distance: str = "euclidean") -> None:
        if not margin > 0:
            raise ConfigError(f"margin must be > 0, got {margin!r}")
        super().__init__(margin=float(margin), distance=make_distance(distance))

    def extra_repr(self) -> str:
        return f"margin={self.margin}"

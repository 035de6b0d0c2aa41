"""(anchor, positive, negative) image triplets, each one a pure function of (seed, epoch, index)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from siamese.data.pairs import EpochSampledDataset


@dataclass(eq=False, repr=False)
class TripletDataset(EpochSampledDataset):
    """`num_triplets` triplets per epoch, triplet i drawn from `np.random.default_rng([seed, epoch, i])`.

    Anchor and positive are two different genuine images of an identity with at least two images;
    the negative is a skilled forgery of the anchor's identity with probability `forgery_fraction`
    (when it has forgeries), otherwise a genuine image of another identity (single-image
    identities appear only as such negatives). Built like `PairDataset` (the same arguments, in
    the same order, and the same errors, `set_epoch` and worker behaviour), with `num_triplets`
    items per epoch and `forgery_fraction` the probability that the negative is a forgery of the
    anchor's identity.
    """

    num_triplets: int
    forgery_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        self.num_triplets = self._start(self.num_triplets, self.forgery_fraction, self.seed, "num_triplets")

    def triplet(self, i: int) -> tuple[int, int, int]:
        """Record positions (anchor, positive, negative) of triplet i of the current epoch."""
        rng = self._rng(i)
        k, a, p = self.pools.positive_pair(rng)
        return a, p, self.pools.negative(rng, k)

    def triplets(self) -> list[tuple[int, int, int]]:
        """All triplets of the current epoch."""
        return [self.triplet(i) for i in range(self.num_triplets)]

    def __getitem__(self, i: int) -> tuple[object, object, object, int, int, int]:
        a, p, n = self.triplet(i)
        labels = self.labels
        return self._load(a), self._load(p), self._load(n), int(labels[a]), int(labels[p]), int(labels[n])


def triplet_collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int, int]],
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Collate `TripletDataset` items into one image batch plus the triplets to score.

    Returns:
        images (3B, C, H, W): anchors, then positives, then negatives; labels (3B,); and
        (a, p, n) with a = arange(B), p = B + a, n = 2B + a indexing `images`.
    """
    b = len(batch)
    triples = [item[:3] for item in batch]  # B (anchor, positive, negative) images
    images = torch.cat([torch.stack([t[j] for t in triples]) for j in range(3)])  # (3B, C, H, W)
    labels = torch.tensor([item[j] for j in range(3, 6) for item in batch], dtype=torch.long)  # (3B,)
    a = torch.arange(b)
    return images, labels, (a, a + b, a + 2 * b)

"""(anchor, positive, negative) image triplets, each one a pure function of (seed, epoch, index)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from siamese.data.datasets import Transform, check_item_index, load_transformed
from siamese.data.folder import ImageIndex
from siamese.data.images import ImageLoader
from siamese.data.pairs import IdentityPools, check_sampling_options
from siamese.errors import ConfigError


class TripletDataset(Dataset):
    """`num_triplets` triplets per epoch, triplet i drawn from `np.random.default_rng([seed, epoch, i])`.

    Anchor and positive are two different genuine images of an identity with at least two images;
    the negative is a skilled forgery of the anchor's identity with probability `forgery_fraction`
    (when it has forgeries), otherwise a genuine image of another identity (single-image
    identities appear only as such negatives). See `PairDataset` for `set_epoch` and workers.

    Args:
        index: the images.
        loader: opens a path as a Pillow image.
        transform: Pillow image -> tensor (C, H, W); None returns Pillow images.
        num_triplets: items per epoch.
        forgery_fraction: probability that the negative is a forgery of the anchor's identity.
        seed: base seed.

    Raises:
        DataError: fewer than two identities, or no identity with two images.
        ConfigError: invalid num_triplets, forgery_fraction or seed.
    """

    def __init__(
        self,
        index: ImageIndex,
        loader: ImageLoader,
        transform: Transform | None,
        num_triplets: int,
        forgery_fraction: float = 0.5,
        seed: int = 0,
    ) -> None:
        check_sampling_options(num_triplets, forgery_fraction, seed, "num_triplets")
        self.index = index
        self.loader = loader
        self.transform = transform
        self.num_triplets = int(num_triplets)
        self.forgery_fraction = forgery_fraction
        self.seed = int(seed)
        # Shared memory: set_epoch reaches DataLoader workers, persistent ones included.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.pools = IdentityPools(index, forgery_fraction)
        self.labels = index.labels()  # (N,)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose triplets are served (also in already running DataLoader workers)."""
        if epoch < 0:
            raise ConfigError(f"epoch must be non-negative, got {epoch}")
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        """The current epoch (0 until `set_epoch` is called)."""
        return int(self._epoch)

    def __len__(self) -> int:
        return self.num_triplets

    def triplet(self, i: int) -> tuple[int, int, int]:
        """Record positions (anchor, positive, negative) of triplet i of the current epoch."""
        i = check_item_index(i, self.num_triplets)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        k, a, p = self.pools.positive_pair(rng)
        return a, p, self.pools.negative(rng, k)

    def triplets(self) -> list[tuple[int, int, int]]:
        """All triplets of the current epoch."""
        return [self.triplet(i) for i in range(self.num_triplets)]

    def __getitem__(self, i: int) -> tuple[object, object, object, int, int, int]:
        positions = self.triplet(i)
        images = [
            load_transformed(self.loader, self.transform, self.index.records[j].path) for j in positions
        ]
        a, p, n = positions
        return images[0], images[1], images[2], int(self.labels[a]), int(self.labels[p]), int(self.labels[n])


def triplet_collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int, int]],
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Collate `TripletDataset` items into one image batch plus the triplets to score.

    Returns:
        images (3B, C, H, W): anchors, then positives, then negatives; labels (3B,); and
        (a, p, n) with a = arange(B), p = B + a, n = 2B + a indexing `images`.
    """
    b = len(batch)
    images = torch.cat([torch.stack([item[j] for item in batch]) for j in range(3)])  # (3B, C, H, W)
    labels = torch.tensor([item[j] for j in range(3, 6) for item in batch], dtype=torch.long)  # (3B,)
    a = torch.arange(b)
    return images, labels, (a, a + b, a + 2 * b)

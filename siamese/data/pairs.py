"""Balanced genuine/impostor image pairs, each one a pure function of (seed, epoch, index)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from siamese.data.datasets import SharedEpoch, Transform, check_item_index, load_transformed
from siamese.data.folder import ImageIndex
from siamese.data.images import ImageLoader
from siamese.errors import ConfigError, DataError


def check_sampling_options(count: int, forgery_fraction: float, seed: int, what: str) -> None:
    """Validate the common options of `PairDataset` and `TripletDataset`.

    Raises:
        ConfigError: `count` < 1, `forgery_fraction` outside [0, 1] or a negative seed.
    """
    if not isinstance(count, numbers.Integral) or count < 1:
        raise ConfigError(f"{what} must be a positive integer, got {count!r}")
    if not 0.0 <= forgery_fraction <= 1.0:
        raise ConfigError(f"forgery_fraction must be in [0, 1], got {forgery_fraction}")
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")


class IdentityPools:
    """Genuine and forgery record positions per identity, prepared once for seeded sampling.

    Positives come only from identities with at least two genuine images (two different ones);
    anchors of impostor pairs may come from any identity; negatives are a skilled forgery of the
    anchor's identity (with probability `forgery_fraction`, when it has forgeries) or a genuine
    image of another identity. Forgeries are never anchors or positives.

    Raises:
        DataError: no identity with two images, or fewer than two identities.
    """

    def __init__(self, index: ImageIndex, forgery_fraction: float) -> None:
        groups = index.by_identity()
        forged = index.forgeries_by_identity()
        self.names = [name for name, positions in groups.items() if positions]
        self.genuine = [np.asarray(groups[name], dtype=np.int64) for name in self.names]
        self.forged = [np.asarray(forged.get(name, []), dtype=np.int64) for name in self.names]
        self.with_positives = [k for k, g in enumerate(self.genuine) if len(g) >= 2]
        self.forgery_fraction = forgery_fraction
        if len(self.names) < 2:
            raise DataError(f"need at least 2 identities with genuine images, got {len(self.names)}")
        if not self.with_positives:
            raise DataError("no identity has 2 or more images, so no genuine pair can be formed")

    def positive_pair(self, rng: np.random.Generator) -> tuple[int, int, int]:
        """(identity k, anchor, positive): two different genuine images of one identity."""
        k = self.with_positives[rng.integers(len(self.with_positives))]
        a, p = rng.choice(len(self.genuine[k]), size=2, replace=False)
        return k, int(self.genuine[k][a]), int(self.genuine[k][p])

    def anchor(self, rng: np.random.Generator) -> tuple[int, int]:
        """(identity k, anchor): a genuine image of any identity (identity drawn uniformly)."""
        k = int(rng.integers(len(self.names)))
        return k, int(self.genuine[k][rng.integers(len(self.genuine[k]))])

    def negative(self, rng: np.random.Generator, k: int) -> int:
        """A negative for identity k: one of its forgeries or another identity's genuine image."""
        use_forgery = rng.random() < self.forgery_fraction
        if use_forgery and len(self.forged[k]):
            return int(self.forged[k][rng.integers(len(self.forged[k]))])
        other = int(rng.integers(len(self.names) - 1))
        other += other >= k  # skip k without rejection sampling
        return int(self.genuine[other][rng.integers(len(self.genuine[other]))])


@dataclass(eq=False, repr=False)
class EpochSampledDataset(SharedEpoch, Dataset):
    """Shared machinery of `PairDataset` and `TripletDataset`: `count` items per epoch, item i of
    an epoch drawn from `np.random.default_rng([seed, epoch, i])`.

    A subclass is a dataclass that adds its items-per-epoch field, `forgery_fraction` and `seed`
    after these fields, and calls `_start` from `__post_init__`; so one field list is the
    constructor `(index, loader, transform, <count>, forgery_fraction=0.5, seed=0)` of each.
    `set_epoch` reaches DataLoader workers, persistent ones included (`SharedEpoch`).

    Args:
        index: the images.
        loader: opens a path as a Pillow image.
        transform: Pillow image -> tensor (C, H, W); None returns Pillow images.
    """

    index: ImageIndex
    loader: ImageLoader
    transform: Transform | None

    def _start(self, count: int, forgery_fraction: float, seed: int, what: str) -> int:
        """Validate the sampling options, prepare the identity pools and return `count` as an int.

        Raises:
            DataError: fewer than two identities, or no identity with two images.
            ConfigError: invalid count (named `what` in the message), forgery_fraction or seed.
        """
        check_sampling_options(count, forgery_fraction, seed, what)
        self.count = int(count)
        self.seed = int(seed)
        self._init_epoch()
        self.pools = IdentityPools(self.index, forgery_fraction)
        self.labels = self.index.labels()  # (N,)
        return self.count

    def __len__(self) -> int:
        return self.count

    def _rng(self, i: int) -> np.random.Generator:
        """The generator of item i of the current epoch (after checking i)."""
        i = check_item_index(i, self.count)
        return np.random.default_rng([self.seed, self.epoch, i])

    def _load(self, position: int) -> object:
        return load_transformed(self.loader, self.transform, self.index.records[position])


@dataclass(eq=False, repr=False)
class PairDataset(EpochSampledDataset):
    """`num_pairs` image pairs per epoch: even items genuine, odd items impostor.

    Pair i is drawn from `np.random.default_rng([seed, epoch, i])`, so it does not depend on access
    order, workers or other items; `set_epoch` gives a new set of pairs. Impostors use a skilled
    forgery of the anchor's identity with probability `forgery_fraction` (when it has forgeries),
    otherwise another identity's genuine image. Identities with one image are only used in impostors.
    The epoch lives in shared memory, so `set_epoch` (called before iterating the DataLoader for
    that epoch) also reaches persistent DataLoader workers.

    Args:
        index, loader, transform: as `EpochSampledDataset`.
        num_pairs: items per epoch.
        forgery_fraction: probability that an impostor is a forgery of the anchor's identity.
        seed: base seed.

    Raises:
        DataError: fewer than two identities, or no identity with two images.
        ConfigError: invalid num_pairs, forgery_fraction or seed.
    """

    num_pairs: int
    forgery_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        self.num_pairs = self._start(self.num_pairs, self.forgery_fraction, self.seed, "num_pairs")

    def pair(self, i: int) -> tuple[int, int, bool]:
        """Record positions and is_same of pair i of the current epoch."""
        rng = self._rng(i)
        if i % 2 == 0:
            _, a, p = self.pools.positive_pair(rng)
            return a, p, True
        k, a = self.pools.anchor(rng)
        return a, self.pools.negative(rng, k), False

    def pairs(self) -> list[tuple[int, int, bool]]:
        """All pairs of the current epoch."""
        return [self.pair(i) for i in range(self.num_pairs)]

    def __getitem__(self, i: int) -> tuple[object, object, int, int, bool]:
        a, b, is_same = self.pair(i)
        return self._load(a), self._load(b), int(self.labels[a]), int(self.labels[b]), is_same


def pair_collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, int, int, bool]],
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """Collate `PairDataset` items into one image batch plus the pairs to score.

    Returns:
        images (2B, C, H, W): all first images, then all second images; labels (2B,); and
        indices_tuple (a1, p, a2, n): genuine pairs (a1[j], p[j]) and impostor pairs (a2[j], n[j])
        indexing `images`, with a1 = i, p = B + i for genuine items and a2 = i, n = B + i otherwise.
    """
    b = len(batch)
    images = torch.cat([torch.stack([item[0] for item in batch]), torch.stack([item[1] for item in batch])])
    first_labels, second_labels = [item[2] for item in batch], [item[3] for item in batch]
    labels = torch.tensor(first_labels + second_labels, dtype=torch.long)  # (2B,)
    is_same = torch.tensor([bool(item[4]) for item in batch], dtype=torch.bool)  # (B,)
    idx = torch.arange(b)
    a1, a2 = idx[is_same], idx[~is_same]
    return images, labels, (a1, a1 + b, a2, a2 + b)

"""M-images-per-identity batches (pytorch-metric-learning's `MPerClassSampler`), optionally with forgeries."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from siamese.data.folder import ImageIndex
from siamese.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


class IdentityBatchSampler(Sampler[list[int]]):
    """Batch sampler: each batch holds `batch_size // m` identities with `m` genuine images each.

    Built on pytorch-metric-learning's `MPerClassSampler` over the genuine records among
    `positions` whose identity has at least two images (identities with fewer than `m` images are
    sampled with replacement by it). `MPerClassSampler` draws from `c_f.NUMPY_RANDOM` (numpy's
    global RNG by default); `__iter__` temporarily points that at a `RandomState` seeded from
    `(seed, epoch)` and restores it afterwards, so every epoch is reproducible and numpy's global
    state is untouched. Call `set_epoch` before each epoch.

    With `forgeries_per_batch > 0`, each batch is followed by up to that many skilled forgeries
    (drawn without replacement, seeded) of identities present in the batch; fewer when those
    identities have fewer forgeries among `positions`.

    Yields lists of dataset indices, i.e. indices into `positions`: build the `ImageDataset` with
    the same `positions` (its default, all records, is `range(len(index))`). Forgeries can only be
    appended if `positions` includes forgery records.

    Args:
        index: the images.
        positions: record positions served by the dataset, genuine and forged.
        batch_size: genuine images per batch; a multiple of `m`, at least `2 * m`.
        m: images per identity in a batch.
        length: genuine samples per epoch (rounded down to a multiple of `batch_size`).
        seed: base seed.
        forgeries_per_batch: forgeries appended to each batch.

    Raises:
        ConfigError: bad batch_size, m, length, seed or forgeries_per_batch.
        DataError: fewer than `batch_size // m` identities with two or more images.
    """

    def __init__(
        self,
        index: ImageIndex,
        positions: Sequence[int],
        batch_size: int,
        m: int,
        length: int,
        seed: int,
        forgeries_per_batch: int = 0,
    ) -> None:
        _check_options(batch_size, m, length, seed, forgeries_per_batch)
        self.batch_size, self.m, self.length = int(batch_size), int(m), int(length)
        self.seed, self.forgeries_per_batch = int(seed), int(forgeries_per_batch)
        self.epoch = 0
        labels = index.labels()
        records = index.records
        genuine: dict[int, list[int]] = {}
        self.forgeries: dict[int, list[int]] = {}  # genuine label -> dataset indices of its forgeries
        identity_label = {name: k for k, name in enumerate(index.identities)}
        for j, pos in enumerate(positions):
            record = records[pos]
            if record.forgery:
                self.forgeries.setdefault(identity_label[record.identity], []).append(j)
            else:
                genuine.setdefault(int(labels[pos]), []).append(j)
        if self.forgeries_per_batch and not self.forgeries:
            logger.warning(
                "forgeries_per_batch=%d but `positions` holds no forgeries; pass the dataset's positions "
                "including forgery records (e.g. range(len(index)) for an ImageDataset of the whole index)",
                self.forgeries_per_batch,
            )
        usable = {k: v for k, v in genuine.items() if len(v) >= 2}
        needed = self.batch_size // self.m
        if len(usable) < needed:
            raise DataError(
                f"batch_size {batch_size} with m={m} needs {needed} identities with 2 or more images, "
                f"but only {len(usable)} are available; lower batch_size or raise m"
            )
        self.dataset_indices = np.asarray([j for v in usable.values() for j in v], dtype=np.int64)
        self.sample_labels = np.asarray([k for k, v in usable.items() for _ in v], dtype=np.int64)
        self._label_of = np.full(len(positions), -1, dtype=np.int64)  # dataset index -> genuine label
        self._label_of[self.dataset_indices] = self.sample_labels
        self._num_batches = (self.length - self.length % self.batch_size) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (and so the batches) `__iter__` produces."""
        if epoch < 0:
            raise ConfigError(f"epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._num_batches

    def _mper_class_indices(self) -> np.ndarray:
        """One epoch of `MPerClassSampler` output (indices into the sample lists), seeded."""
        from pytorch_metric_learning.samplers import MPerClassSampler
        from pytorch_metric_learning.utils import common_functions as c_f

        # A fresh sampler each epoch: MPerClassSampler shuffles its label list in place.
        try:
            sampler = MPerClassSampler(
                self.sample_labels, self.m, batch_size=self.batch_size, length_before_new_iter=self.length
            )
        except AssertionError as exc:
            raise DataError(f"cannot build identity batches: {exc}") from exc
        previous = c_f.NUMPY_RANDOM
        c_f.NUMPY_RANDOM = np.random.RandomState([self.seed, self.epoch])
        try:
            return np.fromiter(iter(sampler), dtype=np.int64)
        finally:
            c_f.NUMPY_RANDOM = previous

    def __iter__(self) -> Iterator[list[int]]:
        order = self.dataset_indices[self._mper_class_indices()]
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        for start in range(0, self._num_batches * self.batch_size, self.batch_size):
            batch = order[start : start + self.batch_size].tolist()
            if self.forgeries_per_batch:
                batch += self._forgeries_for(batch, rng)
            yield batch

    def _forgeries_for(self, batch: list[int], rng: np.random.Generator) -> list[int]:
        present = np.unique(self._label_of[batch])
        candidates = [j for k in present.tolist() for j in self.forgeries.get(k, [])]
        if not candidates:
            return []
        take = min(self.forgeries_per_batch, len(candidates))
        return rng.choice(np.asarray(candidates), size=take, replace=False).tolist()


def _check_options(batch_size: int, m: int, length: int, seed: int, forgeries_per_batch: int) -> None:
    if m < 1:
        raise ConfigError(f"m (images per identity) must be at least 1, got {m}")
    if batch_size % m or batch_size < 2 * m:
        raise ConfigError(f"batch_size must be a multiple of m={m} and at least {2 * m}, got {batch_size}")
    if length < batch_size:
        raise ConfigError(
            f"length (samples per epoch) must be at least batch_size={batch_size}, got {length}"
        )
    if seed < 0:
        raise ConfigError(f"seed must be non-negative, got {seed}")
    if forgeries_per_batch < 0:
        raise ConfigError(f"forgeries_per_batch must be non-negative, got {forgeries_per_batch}")


identity_batch_sampler = IdentityBatchSampler
"""Factory spelling of `IdentityBatchSampler` (same arguments); pass it as a DataLoader's `batch_sampler`."""


def batch_collate(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, None]:
    """Collate `ImageDataset` items: images (B, C, H, W), labels (B,) and no indices tuple."""
    images = torch.stack([item[0] for item in batch])  # (B, C, H, W)
    labels = torch.tensor([item[1] for item in batch], dtype=torch.long)  # (B,)
    return images, labels, None


class ShuffledBatchSampler(Sampler[list[int]]):
    """Batches of a random permutation of `range(n)` drawn from `(seed, epoch)`, the last partial
    batch dropped.

    Unlike a `RandomSampler` with a generator, the order of an epoch does not depend on how many
    epochs ran before in this process, so a resumed run sees the batches an uninterrupted one would.

    Args:
        n: dataset size.
        batch_size: items per batch.
        seed: base seed.

    Raises:
        ConfigError: fewer than `batch_size` items.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0) -> None:
        if batch_size < 1 or n < batch_size:
            raise ConfigError(f"batch size {batch_size} exceeds the {n} images found")
        self.n, self.batch_size, self.seed, self.epoch = int(n), int(batch_size), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (and so the order) `__iter__` produces."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start : start + self.batch_size].tolist()


class ResumableBatchSampler(Sampler[list[int]]):
    """Wraps a batch sampler so an interrupted epoch can restart after its first `skip` batches.

    Skipped batches are never loaded, so they consume no augmentation randomness: together with
    the saved RNG states, a resumed epoch sees exactly the batches an uninterrupted one would.
    `set_epoch` is forwarded to the wrapped sampler; `skip` applies to the next iteration only.
    """

    def __init__(self, inner: Sampler[list[int]]) -> None:
        self.inner = inner
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped sampler when it is epoch-aware."""
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]  # torch types Sampler without __len__; ours have one

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        for i, batch in enumerate(self.inner):
            if i >= skip:
                yield batch

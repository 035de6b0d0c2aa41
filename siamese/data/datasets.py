"""Single images with their class labels (for M-per-class batches, embedding and evaluation)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from siamese.data.folder import ImageIndex, ImageRecord
from siamese.data.images import ImageLoader
from siamese.data.transforms import call_seeded
from siamese.errors import ConfigError

Transform = Callable[[Image.Image], object]


def check_item_index(i: int, length: int) -> int:
    """`i` as a non-negative position below `length` (negative indices count from the end)."""
    if not -length <= i < length:
        raise IndexError(f"index {i} out of range for a dataset of {length} items")
    return i % length


class SharedEpoch:
    """`set_epoch` and `epoch` for a dataset whose items depend on the epoch; call `_init_epoch`
    from its constructor.

    The epoch lives in shared memory, so `set_epoch` (called before iterating the DataLoader for
    that epoch) also reaches DataLoader workers, persistent ones included.
    """

    _epoch: torch.Tensor

    def _init_epoch(self) -> None:
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose items are served (also in already running DataLoader workers)."""
        if epoch < 0:
            raise ConfigError(f"epoch must be non-negative, got {epoch}")
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        """The current epoch (0 until `set_epoch` is called)."""
        return int(self._epoch)


class ImageDataset(Dataset):
    """Images of an `ImageIndex`; item i is `(image, label)` for record `positions[i]`.

    Labels come from `ImageIndex.labels()`: identity position for genuine images, a unique
    label for each forgery.

    Args:
        index: the images.
        loader: opens a path as a Pillow image.
        transform: Pillow image -> tensor (C, H, W); None returns the Pillow image.
        positions: record positions to serve (default: all records, in order).
        forgery_classes: label the forgeries of each identity as one class of their own
            (`ImageIndex.labels(forgery_classes=True)`) instead of one unique label each.
    """

    def __init__(
        self,
        index: ImageIndex,
        loader: ImageLoader,
        transform: Transform | None,
        positions: Sequence[int] | None = None,
        forgery_classes: bool = False,
    ) -> None:
        self.index = index
        self.loader = loader
        self.transform = transform
        self.positions = np.arange(len(index)) if positions is None else np.asarray(positions, dtype=np.int64)
        if self.positions.size and not (0 <= self.positions.min() and self.positions.max() < len(index)):
            raise IndexError(f"positions must lie in [0, {len(index)})")
        self.labels = index.labels(forgery_classes)[self.positions]  # (len(self),)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[object, int]:
        i = check_item_index(i, len(self))
        pos = int(self.positions[i])
        image = load_transformed(self.loader, self.transform, self.index.records[pos])
        return image, int(self.labels[i])


_TURNS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}


def load_transformed(
    loader: ImageLoader,
    transform: Transform | None,
    record: ImageRecord,
    generator: torch.Generator | None = None,
) -> object:
    """Open `record`'s file with `loader`, rotate it by its `turns` and apply `transform`
    (None keeps the Pillow image; a `Seedable` one draws from `generator`).

    With a caching loader and a transform that splits into `prepare` + `finish` (a `Compose`,
    `MultiView` or `MultiCrop`, whose `prepare_key` is not empty), the rotated and preprocessed image
    is computed once and kept (`ImageLoader.remember`): only the random augmentations run for every
    sample, with the same draws as the whole transform.
    """
    if getattr(transform, "prepare_key", ()) and loader.cache:
        staged: Any = transform
        return staged.finish(load_prepared(loader, staged, record), generator)
    img = _turned(loader(record.path), record.turns)
    return img if transform is None else call_seeded(transform, img, generator)


def load_prepared(loader: ImageLoader, transform: Any, record: ImageRecord) -> Any:
    """`transform.prepare` of `record`'s rotated image, kept by a caching loader (keyed by the
    path, the turns and `transform.prepare_key`)."""

    def make() -> Any:
        return transform.prepare(_turned(loader(record.path), record.turns))

    return loader.remember((os.fspath(record.path), record.turns, transform.prepare_key), make)


def _turned(img: Image.Image, turns: int) -> Image.Image:
    return img.transpose(_TURNS[turns]) if turns else img

"""Multi-view batches for self-supervised learning: N independently augmented views of each image.

A data-side concept any training method can use: `ssl_transform` builds a preset's stronger view
augmentation (`Preset.view_augment`) from the steps of `siamese.data.transforms`; `MultiView`
draws V views of one image as a (V, C, H, W) tensor and `MultiCrop` draws global and smaller local
crops (SwAV) as a list; `MultiViewDataset` serves them over a list of images, each item from its
own generator seeded by (seed, epoch, index), and `multiview_collate` batches them.

Reproducibility: item i of an epoch draws all its views from
`torch.Generator().manual_seed(item_seed(seed, epoch, i))`, passed through the `Seedable`
pipeline, so its views depend neither on access order nor on the number of DataLoader workers,
and torch's global generator is left untouched. A transform that is not `Seedable` (e.g. a
torchvision one) draws from torch's global generator, which the dataset then seeds with the same
item seed inside `torch.random.fork_rng` (restored afterwards; not thread-safe). With a
`siamese.data.BatchViews` transform the dataset serves a DataLoader batch at once
(`MultiViewDataset.__getitems__`), each item still drawing from its own generator.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from siamese.data.batch_views import BatchViews, check_crop_counts, local_crop_size
from siamese.data.datasets import SharedEpoch, check_item_index, load_prepared, load_transformed
from siamese.data.folder import ImageIndex, ImageRecord
from siamese.data.images import ImageLoader
from siamese.data.inputs import EmbeddingInput
from siamese.data.presets import Preset, resolve_preset
from siamese.data.transforms import (
    Compose,
    RandomAffine,
    RandomGaussianBlur,
    RandomHFlip,
    RandomResizedCrop,
    Seedable,
    build_pipeline,
    call_seeded,
)
from siamese.errors import ConfigError

Views = torch.Tensor | list[torch.Tensor]


def ssl_transform(
    preset: str | Preset,
    image_size: tuple[int, int] | int | None = None,
    channels: int | None = None,
    strength: float = 1.0,
) -> Compose:
    """The view augmentation of a preset: PIL image -> normalised float tensor (C, H, W).

    Values lie in [-1, 1] with the presets' mean = std = 0.5, as for `get_transform`.

    The preset's preprocessing (mode, background removal, inversion, fit), then its
    `view_augment` scaled by `strength` (`ViewAugment.scaled`): random resized crop back to
    (H, W), horizontal flip only when `preset.hflip`, affine, Gaussian blur, brightness/contrast
    jitter, random erasing. Call it as `t(img, generator)` to draw from a `torch.Generator`.

    Args:
        preset: a name in `PRESETS` or a `Preset`.
        image_size: output (H, W), overriding the preset's (an int for a square).
        channels: 1 or 3, overriding the preset's.
        strength: multiplies the augmentation magnitudes; 0 leaves only the flips.

    Raises:
        ConfigError: unknown preset, bad size, channels or strength.
    """
    p = resolve_preset(preset, image_size, channels)
    return _view_pipeline(p, strength, p.image_size, local=False)


def _view_pipeline(p: Preset, strength: float, crop_size: tuple[int, int], local: bool) -> Compose:
    """Preprocess to `p.image_size`, then crop (`local_scale` when `local`) resized to `crop_size`."""
    a = p.view_augment.scaled(strength)
    scale = p.view_augment.local_scale if local else a.crop_scale
    augment: list[Callable] = [RandomResizedCrop(crop_size, scale, a.crop_ratio)]
    if p.hflip:
        augment.append(RandomHFlip())
    if a.degrees or a.translate or a.shear:
        augment.append(RandomAffine(a.degrees, a.translate, (1.0, 1.0), a.shear))
    if a.blur:
        augment.append(RandomGaussianBlur(a.blur, a.blur_sigma))
    return build_pipeline(p, augment, a.brightness, a.contrast, a.erase)


class MultiView(Seedable):
    """`views` independent draws of `transform` on one image, stacked: (V, C, H, W).

    Args:
        transform: PIL image -> tensor (C, H, W), e.g. `ssl_transform(preset)`.
        views: number of views V (2 for SimCLR, MoCo, BYOL).

    Raises:
        ConfigError: views < 1.
    """

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor], views: int = 2) -> None:
        if views < 1:
            raise ConfigError(f"views must be at least 1, got {views}")
        self.transform = transform
        self.views = int(views)

    @property
    def prepare_key(self) -> tuple[Any, ...]:
        """The transform's `prepare_key` (`Compose`): the preprocessing all views share; () if none."""
        return getattr(self.transform, "prepare_key", ())

    def prepare(self, img: Image.Image) -> Any:
        """The shared preprocessing (the image itself for a transform that does not split)."""
        return self.transform.prepare(img) if self.prepare_key else img  # type: ignore[attr-defined]

    def finish(self, x: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        """The views from a prepared image."""
        return torch.stack([_finish(self.transform, x, generator) for _ in range(self.views)])

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.finish(self.prepare(img), generator)


def _finish(transform: Any, x: Any, generator: torch.Generator | None) -> Any:
    """`transform.finish(x, generator)` when it splits (`Compose`), else the whole `transform`."""
    if getattr(transform, "prepare_key", ()):
        return transform.finish(x, generator)
    return call_seeded(transform, x, generator)


class MultiCrop(Seedable):
    """Multi-crop (SwAV): `n_global` views by `global_transform`, then `n_local` by `local_transform`.

    Returns a list of `n_global + n_local` tensors (C, H, W), global crops first; the two sizes
    differ, so they are not stacked.

    Raises:
        ConfigError: n_global < 1 or n_local < 0.
    """

    def __init__(
        self,
        global_transform: Callable[[Image.Image], torch.Tensor],
        local_transform: Callable[[Image.Image], torch.Tensor],
        n_global: int = 2,
        n_local: int = 4,
    ) -> None:
        check_crop_counts(n_global, n_local)
        self.global_transform = global_transform
        self.local_transform = local_transform
        self.n_global = int(n_global)
        self.n_local = int(n_local)

    @property
    def prepare_key(self) -> tuple[Any, ...]:
        """The preprocessing shared by the global and local transforms (`Compose.prepare_key`); ()
        when they do not share one."""
        key = getattr(self.global_transform, "prepare_key", ())
        return key if key == getattr(self.local_transform, "prepare_key", ()) else ()

    def prepare(self, img: Image.Image) -> Any:
        """The shared preprocessing (the image itself when there is none)."""
        return self.global_transform.prepare(img) if self.prepare_key else img  # type: ignore[attr-defined]

    def finish(self, x: Any, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """The crops from a prepared image."""
        g, loc = self.global_transform, self.local_transform
        if not self.prepare_key:  # `x` is the image itself: the whole transforms
            crops = [call_seeded(g, x, generator) for _ in range(self.n_global)]
            return crops + [call_seeded(loc, x, generator) for _ in range(self.n_local)]
        crops = [_finish(g, x, generator) for _ in range(self.n_global)]
        return crops + [_finish(loc, x, generator) for _ in range(self.n_local)]

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        return self.finish(self.prepare(img), generator)


def multicrop_transform(
    preset: str | Preset,
    n_local: int,
    n_global: int = 2,
    local_size: tuple[int, int] | int | None = None,
    image_size: tuple[int, int] | int | None = None,
    channels: int | None = None,
    strength: float = 1.0,
) -> MultiCrop:
    """A preset's `MultiCrop`: global views by `ssl_transform`; local views cropped from the same
    fitted image with the preset's `view_augment.local_scale` (not scaled by `strength`) and resized
    to `local_size`, then augmented alike.

    Args:
        preset: a name in `PRESETS` or a `Preset`.
        n_local: small crops per image.
        n_global: full-size views per image.
        local_size: (H, W) of the small crops (an int for a square); default half the global size
            (rounded up).
        image_size: global (H, W), overriding the preset's.
        channels: 1 or 3, overriding the preset's.
        strength: as `ssl_transform`.

    Raises:
        ConfigError: unknown preset, bad sizes, channels, strength or crop counts.
    """
    p = resolve_preset(preset, image_size, channels)
    local = _view_pipeline(p, strength, local_crop_size(p, local_size), local=True)
    return MultiCrop(_view_pipeline(p, strength, p.image_size, local=False), local, n_global, n_local)


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The 64-bit seed of item `index` of `epoch` (NumPy's `SeedSequence` of the three)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0])


class MultiViewDataset(SharedEpoch, Dataset):
    """Images as multi-view items: item i is `(views, label)`, views drawn from `item_seed(seed, epoch, i)`.

    `views` is whatever `transform` returns: (V, C, H, W) for a `MultiView`, a list of crops for a
    `MultiCrop`. `label` is the image's class, or -1 for unlabelled images (self-supervised methods
    never read labels; they serve only to monitor, e.g. k-NN accuracy). Call `set_epoch` before
    each epoch for new views (it reaches DataLoader workers, persistent ones included).

    Args:
        images: image paths, or `ImageRecord`s (whose quarter `turns` are applied when loading).
        transform: PIL image -> views; `Seedable` ones draw from the item's generator.
        labels: one integer per image, -1 for none; None: every image unlabelled.
        loader: opens a path as a Pillow image; default `ImageLoader(1)` (grayscale; pass
            `ImageLoader(3)` for colour presets).
        seed: base seed.

    Raises:
        ConfigError: labels of another length than images, or a negative seed.
    """

    def __init__(
        self,
        images: Sequence[str | os.PathLike | ImageRecord],
        transform: Callable[[Image.Image], Views],
        labels: Sequence[int] | np.ndarray | None = None,
        loader: ImageLoader | None = None,
        seed: int = 0,
    ) -> None:
        self.records = [x if isinstance(x, ImageRecord) else ImageRecord(os.fspath(x), "") for x in images]
        n = len(self.records)
        self.labels = np.full(n, -1, np.int64) if labels is None else np.asarray(labels, np.int64)  # (N,)
        if self.labels.shape != (n,):
            raise ConfigError(f"need one label per image ({n}), got {self.labels.shape}")
        if seed < 0:
            raise ConfigError(f"seed must be non-negative, got {seed}")
        self.transform = transform
        self.loader = loader if loader is not None else ImageLoader(1)
        self.seed = int(seed)
        self._init_epoch()

    @classmethod
    def from_index(
        cls,
        index: ImageIndex,
        transform: Callable[[Image.Image], Views],
        loader: ImageLoader | None = None,
        seed: int = 0,
    ) -> MultiViewDataset:
        """Every record of an index (rotated classes included) with its `ImageIndex.labels()`."""
        return cls(index.records, transform, index.labels(), loader, seed)

    @classmethod
    def from_inputs(
        cls,
        inputs: Sequence[EmbeddingInput],
        transform: Callable[[Image.Image], Views],
        loader: ImageLoader | None = None,
        seed: int = 0,
    ) -> MultiViewDataset:
        """The images of `siamese.data.list_inputs`: labelled by their folder (sorted names get 0,
        1, ...), -1 for images directly in the root (identity "")."""
        names = sorted({x.identity for x in inputs} - {""})
        label = {name: k for k, name in enumerate(names)}
        labels = [label.get(x.identity, -1) for x in inputs]
        return cls([x.path for x in inputs], transform, labels, loader, seed)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[Views, int]:
        i = check_item_index(i, len(self))
        if isinstance(self.transform, BatchViews):
            return self.__getitems__([i])[0]
        seed = item_seed(self.seed, self.epoch, i)
        if isinstance(self.transform, Seedable):
            generator = torch.Generator().manual_seed(seed)
            views: Any = load_transformed(self.loader, self.transform, self.records[i], generator)
        else:
            img: Any = load_transformed(self.loader, None, self.records[i])  # a Pillow image
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                views = self.transform(img)
        return views, int(self.labels[i])

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Views, int]]:
        """Items `indices` (what a DataLoader's batch sampler asks for): a `BatchViews` transform
        augments them together, with each item's draws from its own generator; any other
        transform one item at a time."""
        if not isinstance(self.transform, BatchViews):
            return [self[i] for i in indices]
        positions = [check_item_index(i, len(self)) for i in indices]
        prepared = [load_prepared(self.loader, self.transform, self.records[i]) for i in positions]
        epoch, draw = self.epoch, self.transform.draws
        seeds = [item_seed(self.seed, epoch, i) for i in positions]
        draws = torch.stack([draw(torch.Generator().manual_seed(s)) for s in seeds])  # (B, V, K)
        views = self.transform.finish_batch(prepared, draws)
        if isinstance(views, list):
            return [([v[b] for v in views], int(self.labels[i])) for b, i in enumerate(positions)]
        return [(views[b], int(self.labels[i])) for b, i in enumerate(positions)]


def multiview_collate(
    batch: Sequence[tuple[Views, int]],
) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
    """Collate `MultiViewDataset` items.

    Returns:
        images (B, V, C, H, W) for `MultiView` items, or for `MultiCrop` items a list with one
        batch (B, C, H, W) per crop, global crops first; and labels (B,), -1 where unlabelled.
    """
    labels = torch.tensor([item[1] for item in batch], dtype=torch.long)  # (B,)
    views: list[Any] = [item[0] for item in batch]
    if isinstance(views[0], torch.Tensor):
        return torch.stack(views), labels  # (B, V, C, H, W)
    return [torch.stack([v[j] for v in views]) for j in range(len(views[0]))], labels  # V x (B, C, H, W)

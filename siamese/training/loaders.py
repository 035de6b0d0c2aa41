"""Loader wiring: a `TrainConfig` and an image index in, the train/val/test DataLoaders out.

Training batches come from the sampler registry `SAMPLERS` (one builder per sampler name);
validation and test batches are balanced genuine/impostor triplets whose index tuples name the
pairs the trainer scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from siamese.data import (
    PRESETS,
    BatchViews,
    ImageDataset,
    ImageIndex,
    ImageLoader,
    MultiView,
    MultiViewDataset,
    PairDataset,
    ResumableBatchSampler,
    ShuffledBatchSampler,
    Split,
    TripletDataset,
    batch_collate,
    drop_unreadable,
    get_transform,
    identity_batch_sampler,
    materialize_embedded,
    multicrop_transform,
    multiview_collate,
    pair_collate,
    rotated_classes,
    scan_folder,
    split_identities,
    ssl_transform,
    triplet_collate,
)
from siamese.errors import ConfigError
from siamese.training.batching import fit_batch
from siamese.training.config import TrainConfig

CACHE_LIMIT = 20000

SamplerBuilder = Callable[[ImageIndex, ImageLoader, Any, TrainConfig], DataLoader]


@dataclass
class Prepared:
    """Everything built from the data config."""

    index: ImageIndex
    split: Split
    channels: int
    image_size: tuple[int, int]
    train_loader: DataLoader
    val_loader: DataLoader
    test_loader: DataLoader
    config: TrainConfig  # the run's config with the batch the loaders use (`fit_train_batch`)
    num_classes: int | None = None  # training classes (`class_count`): class-weight losses


def input_geometry(config: TrainConfig) -> tuple[int, tuple[int, int]]:
    """The input channels and (H, W): the config's overrides, else the preset's."""
    d, preset = config.data, PRESETS[config.data.preset]
    h, w = d.image_size or preset.image_size
    return d.channels or preset.channels, (h, w)


def make_loader(dataset: Any, config: TrainConfig, **kwargs: Any) -> DataLoader:
    """A DataLoader with the config's workers and a generator seeded from the config's seed."""
    workers = config.data.workers
    gen = torch.Generator().manual_seed(config.seed)
    return DataLoader(dataset, num_workers=workers, persistent_workers=workers > 0, generator=gen, **kwargs)


def _sequential(ds: Any, collate: Callable, config: TrainConfig) -> DataLoader:
    """Batches in dataset order through a `ResumableBatchSampler` (a resumed epoch skips done batches)."""
    batches = ResumableBatchSampler(
        BatchSampler(SequentialSampler(ds), config.optim.batch_size, drop_last=True)
    )
    return make_loader(ds, config, batch_sampler=batches, collate_fn=collate)


def _epoch_samples(index: ImageIndex, config: TrainConfig) -> int:
    """Pairs, triplets or images an epoch draws: `samples_per_epoch`, else 2 x the genuine images."""
    return config.data.samples_per_epoch or 2 * len(index.genuine())


def _drawn(cls: Any, index: ImageIndex, loader: ImageLoader, transform: Any, config: TrainConfig) -> Any:
    """A `PairDataset` or `TripletDataset` of one epoch's draws."""
    n = _epoch_samples(index, config)
    return cls(index, loader, transform, n, config.data.forgery_fraction, config.seed)


def pair_loader(index: ImageIndex, loader: ImageLoader, transform: Any, config: TrainConfig) -> DataLoader:
    """Balanced genuine/impostor pairs (`PairDataset`)."""
    return _sequential(_drawn(PairDataset, index, loader, transform, config), pair_collate, config)


def triplet_loader(index: ImageIndex, loader: ImageLoader, transform: Any, config: TrainConfig) -> DataLoader:
    """Anchor/positive/negative triplets (`TripletDataset`)."""
    return _sequential(_drawn(TripletDataset, index, loader, transform, config), triplet_collate, config)


def mperclass_loader(
    index: ImageIndex, loader: ImageLoader, transform: Any, config: TrainConfig
) -> DataLoader:
    """Batches of `m_per_class` images per identity, each identity's forgeries appended as negatives."""
    d, bs = config.data, config.optim.batch_size
    n_forg = round(bs * d.forgery_fraction / 2) if index.forgeries_by_identity() else 0
    sampler = identity_batch_sampler(
        index,
        range(len(index)),  # the dataset's positions, forgeries included (appended as negatives)
        batch_size=bs,
        m=d.m_per_class,
        length=_epoch_samples(index, config),
        seed=config.seed,
        forgeries_per_batch=n_forg,
    )
    ds = ImageDataset(index, loader, transform, forgery_classes=d.forgery_classes)
    return make_loader(ds, config, batch_sampler=ResumableBatchSampler(sampler), collate_fn=batch_collate)


def view_transform(config: TrainConfig, channels: int, size: tuple[int, int]) -> Any:
    """The preset's view augmentation: two views, or 2 global + `small_crops` local crops (for a
    method that trains on them, `TrainConfig.small_crops`); made a batch at a time (`BatchViews`)
    with `data.batched_views`, else per image in Pillow."""
    preset, crops = PRESETS[config.data.preset], config.small_crops
    if config.data.batched_views:
        return BatchViews(preset, size, channels, n_local=crops)
    if crops:
        return multicrop_transform(preset, crops, image_size=size, channels=channels)
    return MultiView(ssl_transform(preset, image_size=size, channels=channels), views=2)


def multiview_loader(dataset: MultiViewDataset, config: TrainConfig) -> DataLoader:
    """Shuffled multi-view batches whose order is fixed by (seed, epoch), so a resumed epoch repeats."""
    batches = ResumableBatchSampler(ShuffledBatchSampler(len(dataset), config.optim.batch_size, config.seed))
    return make_loader(dataset, config, batch_sampler=batches, collate_fn=multiview_collate)


def views_loader(index: ImageIndex, loader: ImageLoader, transform: Any, config: TrainConfig) -> DataLoader:
    """Each image of the index as independently augmented views (`view_transform`; the per-image
    `transform` is not used), labelled by identity: supervised losses see the views of one image,
    and the other images of its identity, as positives."""
    channels, size = input_geometry(config)
    ds = MultiViewDataset.from_index(index, view_transform(config, channels, size), loader, config.seed)
    return multiview_loader(ds, config)


SAMPLERS: dict[str, SamplerBuilder] = {
    "pairs": pair_loader,
    "triplets": triplet_loader,
    "mperclass": mperclass_loader,
    "views": views_loader,
}
"""Training-batch builders keyed by `siamese.names.SAMPLERS`."""


def train_loader(index: ImageIndex, loader: ImageLoader, transform: Any, config: TrainConfig) -> DataLoader:
    """Training batches from the config's sampler.

    Raises:
        ConfigError: a sampler with no registered builder.
    """
    if config.sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {config.sampler!r}; choose one of: {', '.join(SAMPLERS)}")
    return SAMPLERS[config.sampler](index, loader, transform, config)


def eval_loader(index: ImageIndex, loader: ImageLoader, transform: Any, config: TrainConfig, seed: int):
    """Balanced validation/test pairs as triplet batches: `eval_pairs / 2` triplets, fixed by `seed`."""
    triplets = TripletDataset(
        index,
        loader,
        transform,
        num_triplets=max(config.data.eval_pairs // 2, 1),
        forgery_fraction=config.data.forgery_fraction,
        seed=seed,
    )
    return make_loader(triplets, config, batch_size=config.optim.batch_size, collate_fn=triplet_collate)


def fit_train_batch(config: TrainConfig, index: ImageIndex) -> TrainConfig:
    """`config` with a batch that the training images `index` can fill (`siamese.training.batching`):
    a smaller one, with one warning, when an epoch draws fewer samples than a batch or an m-per-class
    batch needs more identities than the training split has."""
    if config.sampler == "views":
        return fit_batch(config, len(index), 0)
    usable = sum(len(v) >= 2 for v in index.by_identity().values())
    return fit_batch(config, _epoch_samples(index, config), usable)


def readable_images(index: ImageIndex, config: TrainConfig, channels: int) -> tuple[ImageIndex, ImageLoader]:
    """`index` without its undecodable images (one warning; an error with `strict`), and the loader
    to read the rest: every image is decoded once up front, filling the loader's cache when the
    data is small enough (`config.data.cache`, else up to `CACHE_LIMIT` images), so a bad file
    never stops an epoch."""
    d = config.data
    cache = d.cache if d.cache is not None else len(index) <= CACHE_LIMIT
    loader = ImageLoader(channels, cache=cache)
    kept = drop_unreadable(index, (lambda p, c: loader(p)) if cache else None, channels, strict=d.strict)
    return kept, loader


def prepare_data(config: TrainConfig, split: Split | None = None) -> Prepared:
    """Scan the images, split identities and build the train/val/test loaders; `Prepared.config`
    is `config` with the training batch fitted to the training split (`fit_train_batch`)."""
    d = config.data
    root = d.root if d.root is not None else materialize_embedded(d.preset)
    index = scan_folder(root, d.forgeries)
    channels, size = input_geometry(config)
    preset = PRESETS[d.preset]
    index, loader = readable_images(index, config, channels)
    split = split or split_identities(index.identities, d.val_fraction, d.test_fraction, d.split_seed)
    train_tf = get_transform(preset, train=True, image_size=size, channels=channels)
    eval_tf = get_transform(preset, train=False, image_size=size, channels=channels)
    train_index = rotated_classes(index.subset(split.train), d.rotations)
    config = fit_train_batch(config, train_index)
    return Prepared(
        index=index,
        split=split,
        channels=channels,
        image_size=size,
        train_loader=train_loader(train_index, loader, train_tf, config),
        val_loader=eval_loader(index.subset(split.val), loader, eval_tf, config, seed=config.seed + 1),
        test_loader=eval_loader(index.subset(split.test), loader, eval_tf, config, seed=config.seed + 2),
        config=config,
        num_classes=class_count(train_index, config),
    )


def class_count(index: ImageIndex, config: TrainConfig) -> int:
    """The classes of the training labels (a margin-softmax loss's class weights): one per training
    identity, and as many again for their forgeries with `forgery_classes` in mperclass batches."""
    forged = (
        config.data.forgery_classes and config.sampler == "mperclass" and bool(index.forgeries_by_identity())
    )
    return len(index.identities) * (2 if forged else 1)

"""Self-supervised pretraining: any folder of images in, a run directory with an encoder out.

Labels are never read for training. When the folder is an identity folder, its labels only
monitor the representation each epoch: weighted k-NN accuracy (half of each identity's monitored
images as memory, half as queries) and the embedding spread that reveals collapse.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from siamese import names
from siamese.data import (
    EmbeddingInput,
    ImageIndex,
    ImageLoader,
    ImageRecord,
    MultiViewDataset,
    get_transform,
    list_inputs,
    materialize_embedded,
)
from siamese.errors import ConfigError, SiameseError
from siamese.evaluation import embedding_spread, knn_accuracy
from siamese.inference.embedding import embed_files
from siamese.runs import RunDir
from siamese.training.batching import fit_batch
from siamese.training.builders import build_trainer
from siamese.training.config import TrainConfig
from siamese.training.loaders import input_geometry, multiview_loader, readable_images, view_transform
from siamese.training.run import finishing, fit_run, start_run
from siamese.training.trainer import Callback, Trainer

logger = logging.getLogger(__name__)

MONITOR_IMAGES = 2000


class CollapseError(SiameseError):
    """The embeddings collapsed (`--stop-on-collapse`)."""


@dataclass
class PreparedViews:
    """The multi-view training loader and the labelled images that monitor the representation."""

    train_loader: DataLoader
    monitor_paths: list[str]
    monitor_labels: np.ndarray  # (M,), -1 = unlabelled
    channels: int
    image_size: tuple[int, int]
    num_images: int
    config: TrainConfig  # the run's config with the batch the loader uses (`fit_batch`)


def _monitor(paths: list[str], labels: np.ndarray, seed: int) -> tuple[list[str], np.ndarray]:
    """At most `MONITOR_IMAGES` images, drawn with a fixed seed."""
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.permutation(len(paths))[:MONITOR_IMAGES])
    return [paths[i] for i in keep], labels[keep]


def _readable(
    inputs: list[EmbeddingInput], config: TrainConfig, channels: int
) -> tuple[list[EmbeddingInput], ImageLoader]:
    """The decodable inputs and their loader (`readable_images`, as `train` reads its data)."""
    records = tuple(ImageRecord(x.path, x.identity) for x in inputs)
    index = ImageIndex(records=records, identities=tuple(sorted({x.identity for x in inputs})))
    kept, loader = readable_images(index, config, channels)
    keep = {r.path for r in kept.records}
    return [x for x in inputs if x.path in keep], loader


def prepare_views(config: TrainConfig) -> PreparedViews:
    """Every image under the data root (searched recursively) as two-view (or multi-crop) items."""
    root = config.data.root
    inputs = list_inputs(root if root is not None else materialize_embedded(config.data.preset))
    channels, size = input_geometry(config)
    views = view_transform(config, channels, size)
    inputs, loader = _readable(inputs, config, channels)
    dataset = MultiViewDataset.from_inputs(inputs, views, loader, seed=config.seed)
    config = fit_batch(config, len(dataset), 0)  # a batch of at most every image
    batches = multiview_loader(dataset, config)
    paths, labels = _monitor([r.path for r in dataset.records], dataset.labels, config.seed)
    return PreparedViews(batches, paths, labels, channels, size, len(dataset), config)


def _halves(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per identity, alternate images as memory and queries; identities with one image are memory only."""
    memory, queries = [], []
    for label in np.unique(labels[labels >= 0]):
        idx = np.flatnonzero(labels == label)
        memory += idx[::2].tolist()
        queries += idx[1::2].tolist()
    return np.array(memory, dtype=np.int64), np.array(queries, dtype=np.int64)


class RepresentationMonitor(Callback):
    """Adds `spread` (collapse check), `knn_acc` (when labels exist) and `lr` to each epoch's metrics.

    Args:
        paths: images to embed with the deterministic evaluation transform.
        labels: their identities, -1 for unlabelled.
        transform: the evaluation transform; channels: 1 or 3.
        threshold: spread below which the run warns (or stops, with `stop`).
        stop: raise `CollapseError` instead of warning.
    """

    def __init__(
        self,
        paths: list[str],
        labels: np.ndarray,
        transform: Any,
        channels: int,
        threshold: float,
        stop: bool,
    ) -> None:
        self.paths, self.labels, self.transform, self.channels = paths, labels, transform, channels
        self.threshold, self.stop = threshold, stop
        self.memory, self.queries = _halves(labels)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        trainer.method.eval()
        emb = embed_files(
            trainer.method.encoder,
            self.paths,
            self.transform,
            self.channels,
            batch_size=128,
            device=trainer.device,
        )
        metrics["spread"] = embedding_spread(emb)
        if len(self.queries):
            m, q = self.memory, self.queries
            metrics["knn_acc"] = knn_accuracy(emb[m], self.labels[m], emb[q], self.labels[q])
        metrics["lr"] = trainer.optimizer.param_groups[0]["lr"]
        if metrics["spread"] < self.threshold:
            message = (
                f"embeddings collapsing at epoch {epoch + 1}: spread {metrics['spread']:.3f} < "
                f"{self.threshold} (healthy is about 1); try a lower --lr or another --method"
            )
            if self.stop:
                raise CollapseError(message)
            logger.warning(message)


def pretrain(
    config: TrainConfig, callbacks: list[Callback] | None = None, resume: bool = False
) -> dict[str, Any]:
    """Pretrain an encoder with a self-supervised method; writes a run directory like `train`.

    The run's model (`checkpoints/best.*`, the last epoch) is the encoder alone (projection heads,
    predictors, momentum targets and queues live in `checkpoints/state.*` only, for `--resume`);
    it has no decision threshold. Use it with `siamese train --init RUN`, `embed`, `export`.

    Raises:
        ConfigError: a supervised method. TrainingInterrupted: Ctrl-C (the state was saved).
        CollapseError: collapse with `stop_on_collapse`.
    """
    if not config.method.self_supervised:
        raise ConfigError(f"pretrain needs a self-supervised --method: {', '.join(names.SSL_METHODS)}")
    start = time.perf_counter()
    started = start_run(config, resume, lambda _: prepare_views(config))
    run_dir, device, data = started.run_dir, started.device, started.data
    config = data.config
    eval_tf = get_transform(config.data.preset, False, data.image_size, data.channels)
    monitor = RepresentationMonitor(
        data.monitor_paths,
        data.monitor_labels,
        eval_tf,
        data.channels,
        config.method.collapse_threshold,
        config.method.stop_on_collapse,
    )
    trainer, checkpoints = build_trainer(
        config, data, run_dir, device, monitor, callbacks or [], started.distributed
    )
    with finishing(started.distributed):
        last = fit_run(trainer, checkpoints, data.train_loader, config, run_dir, resume)
    if not started.is_main:
        return {"run_dir": str(run_dir), "rank": started.distributed.rank}  # type: ignore[union-attr]
    summary = {
        "run_dir": str(run_dir),
        "method": config.method.name,
        "epochs": last.get("epoch"),
        "train_loss": last.get("train_loss"),
        "knn_acc": last.get("knn_acc"),
        "spread": last.get("spread"),
        "images": data.num_images,
        "wall_time_s": round(time.perf_counter() - start, 2),
        "device": str(device),
    }
    RunDir(run_dir).write_summary(summary)
    return summary

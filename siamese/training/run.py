"""The training entry point: a `TrainConfig` in, a run directory and a summary out."""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from siamese.data import (
    PRESETS,
    ImageDataset,
    ImageIndex,
    ImageLoader,
    PairDataset,
    ResumableBatchSampler,
    Split,
    TripletDataset,
    batch_collate,
    drop_unreadable,
    get_transform,
    identity_batch_sampler,
    materialize_digits,
    pair_collate,
    preprocessing_spec,
    rotated_classes,
    scan_folder,
    split_identities,
    triplet_collate,
)
from siamese.devices import resolve_device
from siamese.errors import CheckpointError, SiameseError
from siamese.evaluation import accuracy_at, far_frr_at, fit_confidence, roc_auc
from siamese.losses import get_loss, get_miner
from siamese.models import TwinNetwork, get_encoder
from siamese.models.checkpoint import load_checkpoint, read_metadata, resolve_checkpoint, save_checkpoint
from siamese.training.callbacks import (
    CheckpointCallback,
    CSVLogger,
    TimeBudget,
    ValidationCallback,
    threshold_from_scores,
)
from siamese.training.config import TrainConfig
from siamese.training.state import load_training_state
from siamese.training.trainer import Callback, Trainer

logger = logging.getLogger(__name__)

CACHE_LIMIT = 20000


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (weights, augmentation)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_run_dir(config: TrainConfig) -> Path:
    """`runs/<YYYYmmdd-HHMMSS>-<loss>` under the current directory."""
    return Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{config.loss.name}"


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


def _loader(dataset: Any, config: TrainConfig, **kwargs: Any) -> DataLoader:
    workers = config.data.workers
    gen = torch.Generator().manual_seed(config.seed)
    return DataLoader(dataset, num_workers=workers, persistent_workers=workers > 0, generator=gen, **kwargs)


def _eval_loader(index: ImageIndex, loader: ImageLoader, transform: Any, config: TrainConfig, seed: int):
    triplets = TripletDataset(
        index,
        loader,
        transform,
        num_triplets=max(config.data.eval_pairs // 2, 1),
        forgery_fraction=config.data.forgery_fraction,
        seed=seed,
    )
    return _loader(triplets, config, batch_size=config.optim.batch_size, collate_fn=triplet_collate)


def _train_loader(index: ImageIndex, loader: ImageLoader, transform: Any, config: TrainConfig) -> DataLoader:
    """Training batches through a `ResumableBatchSampler`, so a resumed epoch skips done batches."""
    d, bs = config.data, config.optim.batch_size
    n = d.samples_per_epoch or 2 * len(index.genuine())
    if config.sampler in ("pairs", "triplets"):
        if config.sampler == "pairs":
            ds: Any = PairDataset(
                index, loader, transform, num_pairs=n, forgery_fraction=d.forgery_fraction, seed=config.seed
            )
        else:
            ds = TripletDataset(
                index,
                loader,
                transform,
                num_triplets=n,
                forgery_fraction=d.forgery_fraction,
                seed=config.seed,
            )
        batches = ResumableBatchSampler(BatchSampler(SequentialSampler(ds), bs, drop_last=True))
        collate = pair_collate if config.sampler == "pairs" else triplet_collate
        return _loader(ds, config, batch_sampler=batches, collate_fn=collate)
    ds = ImageDataset(index, loader, transform)
    n_forg = round(bs * d.forgery_fraction / 2) if index.forgeries_by_identity() else 0
    sampler = identity_batch_sampler(
        index,
        range(len(index)),  # the dataset's positions, forgeries included (appended as negatives)
        batch_size=bs,
        m=d.m_per_class,
        length=n,
        seed=config.seed,
        forgeries_per_batch=n_forg,
    )
    return _loader(ds, config, batch_sampler=ResumableBatchSampler(sampler), collate_fn=batch_collate)


def prepare_data(config: TrainConfig, split: Split | None = None) -> Prepared:
    """Scan the images, split identities and build the train/val/test loaders."""
    d = config.data
    root = d.root if d.root is not None else materialize_digits()
    index = scan_folder(root, d.forgeries)
    preset = PRESETS[d.preset]
    channels = d.channels or preset.channels
    size = tuple(d.image_size or preset.image_size)
    cache = d.cache if d.cache is not None else len(index) <= CACHE_LIMIT
    loader = ImageLoader(channels, cache=cache)
    # decode everything once up front (filling the cache) so a bad file never stops an epoch
    index = drop_unreadable(index, (lambda p, c: loader(p)) if cache else None, channels, strict=d.strict)
    split = split or split_identities(index.identities, d.val_fraction, d.test_fraction, d.split_seed)
    train_tf = get_transform(preset, train=True, image_size=size, channels=channels)
    eval_tf = get_transform(preset, train=False, image_size=size, channels=channels)
    return Prepared(
        index=index,
        split=split,
        channels=channels,
        image_size=size,
        train_loader=_train_loader(
            rotated_classes(index.subset(split.train), d.rotations), loader, train_tf, config
        ),
        val_loader=_eval_loader(index.subset(split.val), loader, eval_tf, config, seed=config.seed + 1),
        test_loader=_eval_loader(index.subset(split.test), loader, eval_tf, config, seed=config.seed + 2),
    )


def build_model(config: TrainConfig, channels: int) -> TwinNetwork:
    """The twin network around a freshly built encoder."""
    m = config.model
    encoder = get_encoder(
        m.encoder,
        in_channels=channels,
        embedding_dim=m.embedding_dim,
        normalize=m.normalize,
        pretrained=m.pretrained,
        **m.encoder_kwargs,
    )
    return TwinNetwork(encoder, distance=m.distance)


def build_optimizer(config: TrainConfig, model: torch.nn.Module, steps_per_epoch: int):
    """Optimiser plus a per-step linear warm-up and cosine decay schedule."""
    o = config.optim
    if o.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=o.lr, momentum=0.9, nesterov=True, weight_decay=o.weight_decay
        )
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    total = max(o.epochs * steps_per_epoch, 1)
    warmup = min(int(o.warmup_epochs * steps_per_epoch), total - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def evaluate_split(trainer: Trainer, loader: DataLoader, threshold: float) -> dict[str, float]:
    """EER, AUC and accuracy/FAR/FRR at a fixed distance threshold on one split's pairs."""
    scores = trainer.evaluate(loader)
    neg = -scores.distances
    far, frr = far_frr_at(neg, scores.is_same, -threshold)
    return {
        "eer": threshold_from_scores(scores)["val_eer"],
        "auc": float(roc_auc(neg, scores.is_same)),
        "accuracy": float(accuracy_at(neg, scores.is_same, -threshold)),
        "far": float(far),
        "frr": float(frr),
        "pairs": int(len(scores.distances)),
    }


def calibrate_checkpoint(trainer: Trainer, val_loader: DataLoader, run_dir: Path) -> dict[str, Any]:
    """Fit the distance -> confidence calibration on validation pairs and store it in `best.json`."""
    scores = trainer.evaluate(val_loader)
    stem = resolve_checkpoint(run_dir)
    meta = read_metadata(stem)
    meta["calibration"] = fit_confidence(scores.distances, scores.is_same)
    save_checkpoint(stem, trainer.model, {k: v for k, v in meta.items() if k not in ("format", "version")})
    return meta


class TrainingInterrupted(SiameseError):
    """Training stopped on request (Ctrl-C); a resumable state was saved."""

    def __init__(self, run_dir: Path, epoch: int, step: int) -> None:
        super().__init__(
            f"training interrupted at epoch {epoch + 1}, step {step}; state saved. "
            f"Resume with: siamese train --resume {run_dir}"
        )
        self.run_dir = run_dir


def resume_config(run_dir: str | Path) -> TrainConfig:
    """The configuration a run was started with, to continue it in place."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"cannot resume {run_dir}: no config.json (is it a siamese run directory?)")
    try:
        return TrainConfig.from_dict({**json.loads(path.read_text()), "out": str(run_dir)})
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"cannot resume {run_dir}: unreadable config.json ({exc})") from None


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop metric rows of epochs that will be re-run after resuming."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= epochs_done]
    path.write_text("".join(kept))


def checkpoint_metadata(config: TrainConfig, data: Prepared) -> dict[str, Any]:
    """What inference needs besides the weights: preprocessing and the threshold rule."""
    return {
        "preset": config.data.preset,
        "image_size": list(data.image_size),
        "channels": data.channels,
        "preprocessing": preprocessing_spec(config.data.preset, data.image_size, data.channels),
        "threshold_rule": config.threshold_rule,
        "target_far": config.target_far if config.threshold_rule == "far" else None,
        "loss": config.loss.name,
    }


def build_trainer(
    config: TrainConfig, data: Prepared, run_dir: Path, device: torch.device, callbacks: list[Callback]
) -> tuple[Trainer, CheckpointCallback]:
    """Model, loss, miner, optimiser and the standard callbacks (validation, CSV, checkpoints)."""
    model = build_model(config, data.channels).to(device)
    loss_fn = get_loss(config.loss.name, **config.loss.loss_kwargs(config.model.distance)).to(device)
    miner = get_miner(config.loss.miner) if config.sampler == "mperclass" else None
    if config.loss.miner != "none" and miner is None:
        logger.warning("--miner %s ignored: mining needs --sampler mperclass", config.loss.miner)
    optimizer, scheduler = build_optimizer(config, model, len(data.train_loader))
    checkpoints = CheckpointCallback(
        run_dir, checkpoint_metadata(config, data), save_every=config.save_every, select=config.select
    )
    budget = [TimeBudget(config.max_minutes * 60)] if config.max_minutes else []
    standard = [
        ValidationCallback(data.val_loader, config.threshold_rule, config.target_far),
        CSVLogger(run_dir / "metrics.csv"),
        checkpoints,
    ]
    trainer = Trainer(
        model,
        loss_fn,
        optimizer,
        scheduler,
        miner=miner,
        device=device,
        callbacks=[*standard, *budget, *callbacks],
        skip_nonfinite=config.skip_nonfinite,
    )
    return trainer, checkpoints


def train(
    config: TrainConfig,
    callbacks: list[Callback] | None = None,
    resume: bool = False,
    split: Split | None = None,
) -> dict[str, Any]:
    """Train a verification model as configured and evaluate it on the held-out test identities.

    Writes `config.json`, `split.json`, `metrics.csv`, `checkpoints/{best,last,state}.*` and
    `summary.json` to the run directory.

    Args:
        config: the run's configuration.
        callbacks: extra trainer callbacks (progress display, ...).
        resume: continue the run in `config.out` from its saved training state (see `resume_config`).
        split: use this identity split instead of drawing one from the config's fractions
            (benchmarks' k-fold protocols); ignored when resuming.

    Returns:
        The summary: run directory, best epoch, validation threshold, test metrics, wall time.

    Raises:
        TrainingInterrupted: `stop_requested` was set (Ctrl-C); the state was saved first.
    """
    start = time.perf_counter()
    seed_everything(config.seed)
    device = resolve_device(config.device)
    run_dir = Path(config.out) if config.out else default_run_dir(config)
    if resume:
        split = Split.from_json(run_dir / "split.json")
    data = prepare_data(config, split)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        config.save(run_dir / "config.json")
        data.split.to_json(run_dir / "split.json")
    logger.info("data: %s", data.index.summary())

    trainer, checkpoints = build_trainer(config, data, run_dir, device, callbacks or [])
    start_epoch = start_step = 0
    if resume:
        state = load_training_state(run_dir / "checkpoints" / "state", trainer)
        start_epoch, start_step = state["epoch"], state["step_in_epoch"]
        checkpoints.restore(state["extra"])
        _truncate_metrics(run_dir / "metrics.csv", start_epoch)
        logger.info("resuming %s at epoch %d, step %d", run_dir, start_epoch + 1, start_step)
    trainer.fit(data.train_loader, config.optim.epochs, start_epoch, start_step)
    if trainer.interrupted:
        raise TrainingInterrupted(run_dir, trainer.epoch, trainer.step_in_epoch)

    best, meta = load_checkpoint(run_dir, device=device)
    trainer.model = best
    meta = calibrate_checkpoint(trainer, data.val_loader, run_dir)
    summary = {
        "run_dir": str(run_dir),
        "best_epoch": meta["epoch"],
        "val_eer": meta["val_eer"],
        "threshold": meta["threshold"],
        "test": evaluate_split(trainer, data.test_loader, meta["threshold"]),
        "wall_time_s": round(time.perf_counter() - start, 2),
        "device": str(device),
        "identities": {k: len(v) for k, v in data.split.to_dict().items()},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary

"""Builders: the encoder, the training method, the optimiser and the trainer from a `TrainConfig`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siamese.data import preprocessing_spec
from siamese.errors import CheckpointError
from siamese.losses import get_loss, get_miner, split_loss_options
from siamese.models import Encoder, TwinNetwork, get_encoder
from siamese.models.checkpoint import load_checkpoint
from siamese.names import split_options
from siamese.training.callbacks import CheckpointCallback, CSVLogger, TimeBudget, ValidationCallback
from siamese.training.config import TrainConfig
from siamese.training.loaders import Prepared
from siamese.training.methods import METHODS, Method, SupervisedMethod
from siamese.training.trainer import Callback, Trainer

logger = logging.getLogger(__name__)


def build_encoder(config: TrainConfig, channels: int) -> Encoder:
    """The encoder the model config describes: fresh, or with the weights of `config.model.init`.

    Raises:
        CheckpointError: `init` is not a checkpoint, or its encoder has another architecture.
    """
    m = config.model
    encoder = get_encoder(
        m.encoder,
        in_channels=channels,
        embedding_dim=m.embedding_dim,
        normalize=m.normalize,
        pretrained=m.pretrained,
        **m.encoder_kwargs,
    )
    if m.init is not None:
        start, _ = load_checkpoint(m.init)
        try:
            encoder.load_state_dict(start.encoder.state_dict())
        except RuntimeError as exc:
            detail = str(exc).strip().splitlines()[-1].strip()
            raise CheckpointError(
                f"--init {m.init}: its encoder does not fit this one ({encoder.spec}); {detail}"
            ) from None
        logger.info("encoder initialised from %s", m.init)
    return encoder


def build_method(config: TrainConfig, channels: int) -> Method:
    """The configured method around a new encoder: a self-supervised method with the options it
    takes, or the supervised one with its loss (and the options that loss takes) and miner.

    Options that have no effect are logged as warnings (`TrainConfig.ignored_options`).
    """
    for note in config.ignored_options():
        logger.warning(note)
    if config.method.self_supervised:
        cls = METHODS[config.method.name]
        kwargs, _ = split_options(cls, config.method.options(config.loss.temperature), skip=("encoder",))
        return cls(build_encoder(config, channels), **kwargs)
    kwargs, _ = split_loss_options(config.loss.name, config.loss.options(config.model.distance))
    miner = get_miner(config.loss.miner) if config.sampler == "mperclass" else None
    model = TwinNetwork(build_encoder(config, channels), distance=config.model.distance or "euclidean")
    return SupervisedMethod(model.encoder, get_loss(config.loss.name, **kwargs), miner, model.distance)


def build_optimizer(
    config: TrainConfig, method: Method, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Optimiser over every parameter group of the method, plus per-step warm-up and cosine decay."""
    o = config.optim
    groups = method.param_groups(o.lr)
    if o.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            groups, lr=o.lr, momentum=0.9, nesterov=True, weight_decay=o.weight_decay
        )
    else:
        opt = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
    total = max(o.epochs * steps_per_epoch, 1)
    warmup = min(int(o.warmup_epochs * steps_per_epoch), total - 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def checkpoint_metadata(config: TrainConfig, data: Prepared) -> dict[str, Any]:
    """What inference needs besides the weights: preprocessing and the threshold rule."""
    return {
        "preset": config.data.preset,
        "image_size": list(data.image_size),
        "channels": data.channels,
        "preprocessing": preprocessing_spec(config.data.preset, data.image_size, data.channels),
        "threshold_rule": config.threshold_rule,
        "target_far": config.target_far if config.threshold_rule == "far" else None,
        "loss": None if config.method.self_supervised else config.loss.name,
    }


def build_trainer(
    config: TrainConfig, data: Prepared, run_dir: Path, device: torch.device, callbacks: list[Callback]
) -> tuple[Trainer, CheckpointCallback]:
    """Method, optimiser and the standard callbacks (validation, CSV, checkpoints)."""
    method = build_method(config, data.channels).to(device)
    optimizer, scheduler = build_optimizer(config, method, len(data.train_loader))
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
        method,
        optimizer,
        scheduler,
        device=device,
        callbacks=[*standard, *budget, *callbacks],
        skip_nonfinite=config.skip_nonfinite,
    )
    return trainer, checkpoints

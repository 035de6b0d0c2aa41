"""Builders: the encoder, the training method, the optimiser and the trainer from a `TrainConfig`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from siamese.data import preprocessing_spec
from siamese.devices import native_bf16, resolve_precision
from siamese.errors import CheckpointError, ConfigError
from siamese.losses import get_miner
from siamese.models import Encoder, get_encoder
from siamese.models.checkpoint import adapt_input_channels, load_checkpoint
from siamese.names import option_names
from siamese.runs import RunDir
from siamese.training.budget import time_budgets
from siamese.training.callbacks import CheckpointCallback, CSVLogger, RankStateCallback, ValidationCallback
from siamese.training.config import TrainConfig
from siamese.training.distributed import Distributed
from siamese.training.methods import Method
from siamese.training.schedules import WarmupCosine
from siamese.training.trainer import Callback, Trainer

logger = logging.getLogger(__name__)
ModuleT = TypeVar("ModuleT", bound=nn.Module)


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
        state = dict(start.encoder.state_dict())
        adapted = adapt_input_channels(state, encoder.state_dict())
        if adapted:
            logger.info("--init: input channels fitted to %d (%s)", channels, ", ".join(adapted))
        try:
            encoder.load_state_dict(state)
        except RuntimeError as exc:
            detail = str(exc).strip().splitlines()[-1].strip()
            raise CheckpointError(
                f"--init {m.init}: its encoder does not fit this one ({encoder.spec}); {detail}"
            ) from None
        logger.info("encoder initialised from %s", m.init)
    return encoder


def build_loss(config: TrainConfig, embedding_size: int, num_classes: int | None = None) -> nn.Module:
    """The loss the run trains with (`TrainConfig.loss_class`) and its options: the given ones
    (`--loss-arg`), the distance (`--distance`) when it measures one, and for a loss with class
    weights the number of training classes and the encoder's embedding size.

    Raises:
        ConfigError: a loss with class weights and no `num_classes`.
    """
    kwargs = config.loss_build_kwargs()
    if getattr(config.loss_class, "needs_classes", False):
        if num_classes is None:
            raise ConfigError(f"--loss {config.loss.name} needs the number of training identities")
        kwargs = {**kwargs, "num_classes": num_classes, "embedding_size": embedding_size}
    return config.loss_class(**kwargs)


def build_method(config: TrainConfig, channels: int, num_classes: int | None = None) -> Method:
    """The configured method around a new encoder, with its loss (`build_loss`) and its options.

    Args:
        config: the run's configuration.
        channels: input channels of the encoder.
        num_classes: training identities (rotated copies included); the margin-softmax losses
            hold one class weight each (their embedding size is the encoder's).

    The run supplies what a method's constructor asks for besides its options: the encoder, the
    loss, the verification distance, and where taken, the miner (m-per-class batches, a loss
    without class weights) and the test-time augmentation. Options that have no effect are
    logged as warnings (`TrainConfig.ignored_options`).

    Raises:
        ConfigError: a loss with class weights and no `num_classes`.
    """
    for note in config.ignored_options():
        logger.warning(note)
    encoder = build_encoder(config, channels)
    loss = build_loss(config, int(encoder.embedding_dim), num_classes)
    mines = config.sampler == "mperclass" and not getattr(config.loss_class, "needs_classes", False)
    supplied = {"miner": get_miner(config.loss.miner) if mines else None, "tta": config.tta}
    takes = option_names(config.method_class)
    supplied = {k: v for k, v in supplied.items() if k in takes}
    return config.method_class(
        encoder, loss=loss, distance=config.verification_distance, **supplied, **config.method_kwargs()
    )


def place_method(method: ModuleT, config: TrainConfig, device: torch.device) -> ModuleT:
    """`method` (or any module holding encoders) on `device`, ready to train fast: its 4-d weights
    in channels-last layout (oneDNN and cuDNN convolutions run faster on it; the arithmetic is the
    same) and every encoder backbone in it (momentum targets included) autocast to the config's
    precision in training."""
    method = method.to(device).to(memory_format=torch.channels_last)
    dtype = resolve_precision(config.precision, device)
    if config.precision == "bf16" and not native_bf16(device):
        logger.warning("--precision bf16: %s has no native bfloat16; emulated, slower than fp32", device)
    for module in method.modules():
        if isinstance(module, Encoder):
            module.autocast_dtype = dtype
    logger.info("training precision: %s", "bfloat16 autocast" if dtype is not None else "float32")
    return method


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
    elif o.optimizer == "rmsprop":  # SigNet's: rho 0.9, fuzz factor 1e-8, momentum 0.9
        opt = torch.optim.RMSprop(
            groups, lr=o.lr, alpha=0.9, eps=1e-8, momentum=0.9, weight_decay=o.weight_decay
        )
    else:
        opt = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
    factor = WarmupCosine(int(o.warmup_epochs * steps_per_epoch), o.epochs * steps_per_epoch)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def checkpoint_metadata(config: TrainConfig, data: Any) -> dict[str, Any]:
    """What inference needs besides the weights: preprocessing, the threshold rule, the objective."""
    meta = {
        "preset": config.data.preset,
        "image_size": list(data.image_size),
        "channels": data.channels,
        "preprocessing": preprocessing_spec(config.data.preset, data.image_size, data.channels),
        "threshold_rule": config.threshold_rule,
        "target_far": config.target_far if config.threshold_rule == "far" else None,
        "loss": None if config.method.self_supervised else config.loss.name,
        "tta": config.tta,
    }
    return {**meta, "method": config.method.name} if config.method.self_supervised else meta


def _other_rank(
    distributed: Distributed, run_dir: Path, config: TrainConfig, validation: ValidationCallback | None
) -> list[Callback]:
    """The callbacks of a rank other than 0: its random-generator state, and its share of the
    validation pairs (scored on every rank, gathered; only rank 0 keeps and writes the result)."""
    own: list[Callback] = [RankStateCallback(run_dir, distributed.rank, config.save_every)]
    return [validation, *own] if validation is not None else own


def build_trainer(
    config: TrainConfig,
    data: Any,
    run_dir: Path,
    device: torch.device,
    evaluation: Callback,
    callbacks: list[Callback],
    distributed: Distributed | None = None,
) -> tuple[Trainer, CheckpointCallback]:
    """Method, optimiser and the standard callbacks: `evaluation`, CSV log, checkpoints, time budget.

    Args:
        data: the prepared data (`Prepared` or `PreparedViews`): channels, image size, train loader
            (and `num_classes`, the training identities, for a loss with class weights).
        evaluation: adds each epoch's evaluation metrics (`ValidationCallback` for a supervised
            run, the representation monitor for a self-supervised one).

    A self-supervised run has no validation EER to select an epoch by: it keeps the last one.
    In a data-parallel run (`distributed`), only rank 0 evaluates, logs, checkpoints and keeps
    time budgets (its decisions reach the other ranks through the trainer); `config.sync_bn`
    makes BatchNorm layers normalise over the global batch.
    """
    method = build_method(config, data.channels, getattr(data, "num_classes", None))
    if config.sync_bn:
        if distributed is None or distributed.backend != "nccl":
            raise ConfigError("--sync-bn needs a data-parallel run on CUDA (torchrun, --device cuda)")
        method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
    method = place_method(method, config, device)
    steps = max(1, len(data.train_loader) // config.optim.accumulate)  # optimiser steps an epoch
    optimizer, scheduler = build_optimizer(config, method, steps)
    select = "last" if config.method.self_supervised else config.select
    validation = evaluation if isinstance(evaluation, ValidationCallback) else None
    checkpoints = CheckpointCallback(
        run_dir, checkpoint_metadata(config, data), config.save_every, select, validation
    )
    budget = time_budgets(config, run_dir)
    main = distributed is None or distributed.is_main
    everything = [evaluation, CSVLogger(RunDir(run_dir).metrics_file), checkpoints, *budget, *callbacks]
    trainer = Trainer(
        method,
        optimizer,
        scheduler,
        device=device,
        callbacks=everything if main else _other_rank(distributed, run_dir, config, validation),  # type: ignore[arg-type]
        skip_nonfinite=config.skip_nonfinite,
        distributed=distributed,
        accumulate=config.optim.accumulate,
    )
    return trainer, checkpoints

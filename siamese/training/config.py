"""Frozen configuration dataclasses, one per component, nested in `TrainConfig`.

The CLI imports this module only once a command runs (never for `--help`).
Every field is used by `siamese.training.run.train`; the resolved config is written
to `config.json` in the run directory.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siamese import names
from siamese.data.presets import PRESETS
from siamese.errors import ConfigError
from siamese.evaluation.distances import THRESHOLD_RULES
from siamese.losses.registry import (
    check_loss_options,
    loss_distances,
    loss_needs_classes,
    loss_samplers,
    split_loss_options,
)
from siamese.models.tta import check_tta
from siamese.names import check_choice, split_options
from siamese.training.methods.registry import METHODS

SELECT_RULES = ("best", "last")


def _positive(value: float, what: str, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{what} must be {bound}, got {value}")


@dataclass(frozen=True)
class DataConfig:
    """Where images come from and how they are split, sampled and transformed.

    Attributes:
        root: identity-folder root (`root/<identity>/<image>`); None trains on the embedded data
            (`siamese.data.materialize_embedded`: the scikit-learn digits for the digits preset,
            else the rendered characters of `siamese.data.glyphs`).
        forgeries: optional root of skilled forgeries with the same identity names.
        preset: transform preset name (see `siamese.data.PRESETS`).
        image_size: (H, W) override of the preset's size.
        channels: 1 or 3, override of the preset's channel count.
        val_fraction: fraction of identities held out for validation (threshold, best epoch).
        test_fraction: fraction of identities held out for the final test.
        split_seed: seed of the identity split.
        sampler: "pairs", "triplets" or "mperclass"; None picks the loss's natural sampler.
        samples_per_epoch: pairs, triplets or images drawn per epoch; None = 2 x train images.
        forgery_fraction: share of impostors that are skilled forgeries when forgeries exist.
        m_per_class: images per identity in each "mperclass" batch.
        eval_pairs: balanced validation/test pairs scored each epoch and at the end.
        workers: DataLoader worker processes.
        cache: decode images once and keep them in memory; None = when <= 20000 images.
        strict: stop on an unreadable image instead of skipping it with a warning.
        rotations: 1 (off), 2 or 4: train on each identity rotated by 180 degrees (2) or by every
            quarter turn (4) as extra identities (`siamese.data.rotated_classes`); for data whose
            rotations are new classes, such as handwritten characters.
        batched_views: make the views of the "views" sampler (self-supervised methods) a batch at
            a time in torch (`siamese.data.BatchViews`, same random draws); False: one image at a
            time in Pillow (`siamese.data.ssl_transform`), the pipeline of earlier versions.
        forgery_classes: in "mperclass" batches, label each identity's skilled forgeries as one
            class of their own (`ImageIndex.labels(forgery_classes=True)`), so a margin-softmax
            loss trains a class weight per imitated identity and pushes its forgeries towards it
            and away from the identity (SupCon: the forgeries of one identity become positives of
            one another). False: each forgery is a negative only.
    """

    root: str | None = None
    forgeries: str | None = None
    preset: str = "digits"
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0
    sampler: str | None = None
    samples_per_epoch: int | None = None
    forgery_fraction: float = 0.5
    m_per_class: int = 4
    eval_pairs: int = 1000
    workers: int = 0
    cache: bool | None = None
    strict: bool = False
    rotations: int = 1
    batched_views: bool = True
    forgery_classes: bool = False

    def __post_init__(self) -> None:
        check_choice(self.preset, names.PRESETS, "preset")
        if self.rotations not in (1, 2, 4):
            raise ConfigError(f"rotations must be 1, 2 or 4, got {self.rotations}")
        if self.sampler is not None:
            check_choice(self.sampler, names.SAMPLERS, "sampler")
        if self.channels is not None and self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}")
        if self.image_size is not None and min(self.image_size) < 4:
            raise ConfigError(f"image size must be at least 4x4, got {self.image_size}")
        if not 0 <= self.forgery_fraction <= 1:
            raise ConfigError(f"forgery fraction must be in [0, 1], got {self.forgery_fraction}")
        if self.m_per_class < 1:
            raise ConfigError(f"m per class must be >= 1, got {self.m_per_class}")
        if self.samples_per_epoch is not None:
            _positive(self.samples_per_epoch, "samples per epoch")
        _positive(self.eval_pairs, "eval pairs")
        _positive(self.workers, "workers", allow_zero=True)


@dataclass(frozen=True)
class ModelConfig:
    """The shared encoder of the twin network.

    Attributes:
        encoder: registered encoder name (see `siamese.models.ENCODERS`).
        embedding_dim: output size of the projection head; 0 = no head (the embedding is the
            encoder's pooled feature vector).
        normalize: L2-normalise embeddings.
        pretrained: start from torchvision's ImageNet weights (downloads; never the default).
        distance: "euclidean" or "cosine" (1 - cos) between the two embeddings, used for
            verification and by every loss that measures a distance; None = Euclidean for
            verification and each loss's own default distance.
        encoder_kwargs: extra encoder options, e.g. `{"width": 32, "stem_stride": 2}` for smallcnn.
        init: a run directory or checkpoint (e.g. of `siamese pretrain`) whose encoder weights the
            encoder starts from; its architecture must match. None = random initialisation.
    """

    encoder: str = "smallcnn"
    embedding_dim: int = 128
    normalize: bool = True
    pretrained: bool = False
    distance: str | None = None
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    init: str | None = None

    def __post_init__(self) -> None:
        check_choice(self.encoder, names.ENCODERS, "encoder")
        if self.distance is not None:
            check_choice(self.distance, names.DISTANCES, "distance")
        _positive(self.embedding_dim, "embedding dim", allow_zero=True)


@dataclass(frozen=True)
class LossConfig:
    """The training objective. Options left None take the loss's own default.

    Attributes:
        name: a registered loss (`siamese.losses.LOSSES`): "margin" (Hadsell 2006), "supcon"
            (Khosla 2020), "triplet", or the margin-softmax losses "arcface" (Deng 2019),
            "cosface" (Wang 2018) and "subcenter" (sub-center ArcFace, Deng 2020).
        margin: margin of the margin (default 1.0) and triplet (default 0.2) losses; the angular
            margin of arcface and subcenter in radians (default 0.5); the cosine margin of
            cosface (default 0.35).
        temperature: SupCon temperature (default 0.1).
        beta: SupCon hard-negative concentration (Robinson 2021); 0 (the default) = plain SupCon.
        scale: logit scale s of the margin-softmax losses (default 16).
        sub_centers: sub-centres per class of subcenter (default 3).
        lr_multiplier: learning rate of the margin-softmax class weights relative to `OptimConfig.lr`
            (default 10).
        miner: pytorch-metric-learning miner applied to "mperclass" batches.
    """

    name: str = "margin"
    margin: float | None = None
    temperature: float | None = None
    beta: float | None = None
    scale: float | None = None
    sub_centers: int | None = None
    lr_multiplier: float | None = None
    miner: str = "none"

    def __post_init__(self) -> None:
        check_choice(self.name, names.LOSSES, "loss")
        check_choice(self.miner, names.MINERS, "miner")
        if self.margin is not None:
            _positive(self.margin, "margin")
        if self.temperature is not None:
            _positive(self.temperature, "temperature")
        if self.beta is not None:
            _positive(self.beta, "beta", allow_zero=True)
        for what in ("scale", "sub_centers", "lr_multiplier"):
            value = getattr(self, what)
            if value is not None:
                _positive(value, what.replace("_", " "))

    def options(self, distance: str | None) -> dict[str, Any]:
        """Every loss option as configured (None = not given), the model's distance included."""
        skip = {"name", "miner"}
        named = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        return {**named, "distance": distance}


@dataclass(frozen=True)
class MethodConfig:
    """The training method (`siamese.training.METHODS`) and its options; None = the method's default.

    "supervised" trains the loss of `LossConfig` on labels; the self-supervised methods ignore
    labels and take their temperature from `LossConfig.temperature`.

    Attributes:
        name: "supervised", "simclr", "moco", "byol", "swav", "simsiam", "barlow" or "vicreg".
        projection_dim: output size of the projection head (training only).
        hidden_dim: hidden size of the projection (and BYOL prediction) head.
        predictor_dim: SimSiam's predictor bottleneck width (default projection_dim / 4).
        momentum: EMA coefficient of the momentum target (MoCo 0.99, BYOL 0.99 rising to 1).
        momentum_end: final EMA coefficient of the cosine schedule.
        queue_size: MoCo negative keys / SwAV queued features.
        prototypes: SwAV prototypes K.
        freeze_prototypes: optimiser steps during which SwAV's prototypes stay fixed.
        epsilon: SwAV Sinkhorn regularisation.
        sinkhorn_iterations: SwAV Sinkhorn-Knopp iterations.
        barlow_lambda: Barlow Twins' off-diagonal (redundancy) weight lambda.
        vicreg_invariance: VICReg's invariance (mean squared error) weight lambda.
        vicreg_variance: VICReg's variance (std hinge) weight mu.
        vicreg_covariance: VICReg's covariance weight nu.
        small_crops: extra small (local) crops per image, multi-crop (SwAV); 0 = two views only.
        collapse_threshold: embedding spread (`siamese.evaluation.embedding_spread`, about 1 when
            healthy, 0 when collapsed) below which a run warns.
        stop_on_collapse: end the run with an error instead of warning.
    """

    name: str = "supervised"
    projection_dim: int | None = None
    hidden_dim: int | None = None
    predictor_dim: int | None = None
    momentum: float | None = None
    momentum_end: float | None = None
    queue_size: int | None = None
    prototypes: int | None = None
    freeze_prototypes: int | None = None
    epsilon: float | None = None
    sinkhorn_iterations: int | None = None
    barlow_lambda: float | None = None
    vicreg_invariance: float | None = None
    vicreg_variance: float | None = None
    vicreg_covariance: float | None = None
    small_crops: int = 0
    collapse_threshold: float = 0.1
    stop_on_collapse: bool = False

    def __post_init__(self) -> None:
        check_choice(self.name, names.METHODS, "method")
        sizes = ("projection_dim", "hidden_dim", "predictor_dim", "prototypes", "sinkhorn_iterations")
        for what in (*sizes, "epsilon"):
            value = getattr(self, what)
            if value is not None:
                _positive(value, what.replace("_", " "))
        weights = ("barlow_lambda", "vicreg_invariance", "vicreg_variance", "vicreg_covariance")
        for what in ("queue_size", "freeze_prototypes", "small_crops", "collapse_threshold", *weights):
            value = getattr(self, what)
            if value is not None:
                _positive(value, what.replace("_", " "), allow_zero=True)
        for what in ("momentum", "momentum_end"):
            value = getattr(self, what)
            if value is not None and not 0 <= value <= 1:
                raise ConfigError(f"{what.replace('_', ' ')} must be in [0, 1], got {value}")

    @property
    def self_supervised(self) -> bool:
        """Whether the method learns without labels."""
        return self.name != "supervised"

    def options(self, temperature: float | None) -> dict[str, Any]:
        """The method's options as configured (None = not given), the loss temperature included."""
        skip = {"name", "small_crops", "collapse_threshold", "stop_on_collapse"}
        named = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        return {**named, "temperature": temperature}


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule.

    Attributes:
        optimizer: "adamw" or "sgd" (momentum 0.9, Nesterov).
        lr: peak learning rate.
        weight_decay: decoupled weight decay.
        epochs: passes of `samples_per_epoch` samples.
        warmup_epochs: linear warm-up length before the cosine decay.
        batch_size: pairs, triplets or images per step.
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 10
    warmup_epochs: float = 1.0
    batch_size: int = 64

    def __post_init__(self) -> None:
        check_choice(self.optimizer, names.OPTIMIZERS, "optimizer")
        _positive(self.lr, "learning rate")
        _positive(self.weight_decay, "weight decay", allow_zero=True)
        _positive(self.epochs, "epochs")
        _positive(self.warmup_epochs, "warmup epochs", allow_zero=True)
        if self.batch_size < 2:
            raise ConfigError(f"batch size must be >= 2, got {self.batch_size}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; written to `<run>/config.json`.

    Attributes:
        data: data configuration.
        model: encoder configuration.
        loss: objective configuration.
        optim: optimiser configuration.
        method: training method configuration ("supervised" or a self-supervised method).
        seed: seed of weights, sampling and augmentation.
        device: "auto", "cpu" or "cuda".
        precision: the encoder backbones' arithmetic in training: "fp32", "bf16" (bfloat16
            autocast; heads, losses and evaluation stay float32) or "auto" = bf16 where the device
            computes it natively (`siamese.devices.resolve_precision`), else fp32.
        out: run directory; None = `runs/<timestamp>-<loss>`.
        threshold_rule: how the decision threshold is chosen on validation pairs: "eer",
            "accuracy" or "far" (FAR at most `target_far`).
        target_far: FAR target of the "far" threshold rule.
        save_every: also save a resumable training state every this many steps (0 = per epoch only).
        skip_nonfinite: skip batches with a NaN/inf loss instead of stopping the run.
        max_minutes: a hard cap on the training time: stop after the epoch at which another would
            exceed it (this cuts the learning-rate and momentum schedules; see `minutes`).
        minutes: plan the run for this many minutes of training (each epoch's evaluation and
            checkpoints included; reading the data before and the final test after are not):
            the pace of the first epoch fixes the number of epochs, the learning-rate and momentum
            schedules span them, and the run stops on time (`siamese.training.budget`). Replaces
            `optim.epochs`, which then only sizes the schedules until the plan; with `max_minutes`
            the plan is for the smaller of the two.
        planned_epochs: the epochs `minutes` allows, recorded by the run once measured (None
            before); a resumed run keeps this plan instead of measuring again.
        select: which epoch's weights the run keeps as its model (`checkpoints/best.*`, used for
            the test and by inference): "best" = lowest validation EER, "last" = the final epoch
            (better when the validation identities are too few for a reliable per-epoch EER).
        tta: test-time augmentation of the validation and test embeddings (so the threshold is
            chosen on what inference scores), stored in the checkpoints as the model's default
            for embed/verify/evaluate: "none" or "flip" (`siamese.models.tta`; presets that train
            with horizontal flips only).
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    out: str | None = None
    threshold_rule: str = "eer"
    target_far: float = 1e-3
    save_every: int = 0
    skip_nonfinite: bool = False
    max_minutes: float | None = None
    minutes: float | None = None
    planned_epochs: int | None = None
    select: str = "best"
    tta: str = "none"

    def __post_init__(self) -> None:
        check_choice(self.device, names.DEVICES, "device")
        check_choice(self.precision, names.PRECISIONS, "precision")
        check_tta(self.tta, self.data.preset)
        check_choice(self.select, SELECT_RULES, "select")
        check_choice(self.threshold_rule, THRESHOLD_RULES, "threshold rule")
        _positive(self.save_every, "save every", allow_zero=True)
        if self.max_minutes is not None:
            _positive(self.max_minutes, "max minutes")
        if self.minutes is not None:
            _positive(self.minutes, "minutes")
        if self.planned_epochs is not None and (self.minutes is None or self.planned_epochs < 1):
            raise ConfigError(f"planned epochs must be >= 1 and come with minutes, got {self.planned_epochs}")
        if not 0 < self.target_far < 1:
            raise ConfigError(f"target FAR must be in (0, 1), got {self.target_far}")
        sampler, allowed = self.sampler, self.samplers
        if sampler == "mperclass":
            m, b = self.data.m_per_class, self.optim.batch_size
            if b < 2 * m or b % m:
                raise ConfigError(f"batch size {b} must be a multiple of m per class {m} and >= 2*m")
        if sampler not in allowed:
            raise ConfigError(
                f"the {self.loss.name} loss needs {allowed[0]}: use --sampler {' or '.join(allowed)}"
            )
        distance = self.model.distance
        if not self.method.self_supervised and distance not in (None, *loss_distances(self.loss.name)):
            raise ConfigError(
                f"--loss {self.loss.name} trains with the {' or '.join(loss_distances(self.loss.name))} "
                f"distance only; --distance {distance} cannot be used with it"
            )
        if not self.method.self_supervised:
            check_loss_options(self.loss.name, **self.objective_options()[0])  # e.g. a margin's range

    @property
    def verification_distance(self) -> str:
        """The pair distance of verification: the model's `distance`, else the loss's first
        (cosine for the margin-softmax losses, Euclidean for the others and for self-supervision)."""
        if self.model.distance is not None:
            return self.model.distance
        return "euclidean" if self.method.self_supervised else loss_distances(self.loss.name)[0]

    @property
    def samplers(self) -> tuple[str, ...]:
        """The samplers the objective trains with, its natural one first."""
        return ("views",) if self.method.self_supervised else loss_samplers(self.loss.name)

    @property
    def sampler(self) -> str:
        """The sampler actually used (explicit choice, else the objective's natural one)."""
        return self.data.sampler or self.samplers[0]

    def objective_options(self) -> tuple[dict[str, Any], list[str]]:
        """The options the objective takes (a self-supervised method's, else the loss's), and the
        names of the given ones it does not take."""
        if self.method.self_supervised:
            options = self.method.options(self.loss.temperature)
            kwargs, unused = split_options(METHODS[self.method.name], options, skip=("encoder",))
            return kwargs, unused + [k for k in ("margin", "beta") if getattr(self.loss, k) is not None]
        return split_loss_options(self.loss.name, self.loss.options(self.model.distance))

    def ignored_options(self) -> list[str]:
        """Options that were set but have no effect with this configuration, as one line each."""
        _, unused = self.objective_options()
        if self.method.self_supervised:
            return [f"--{n.replace('_', '-')} has no effect with --method {self.method.name}" for n in unused]
        notes = [f"{_flag(name)} has no effect with --loss {self.loss.name}" for name in unused]
        given = {**self.method.options(None), "small_crops": self.method.small_crops or None}
        notes += [f"--{n.replace('_', '-')} has no effect without --method" for n, v in given.items() if v]
        if self.loss.miner != "none" and loss_needs_classes(self.loss.name):
            notes.append(f"--miner {self.loss.miner} has no effect with --loss {self.loss.name}")
        elif self.loss.miner != "none" and self.sampler != "mperclass":
            notes.append(f"--miner {self.loss.miner} has no effect: mining needs --sampler mperclass")
        if self.data.forgery_classes and self.data.forgeries is None:
            notes.append("--forgery-classes has no effect without --forgeries")
        elif self.data.forgery_classes and self.sampler != "mperclass":
            notes.append(
                "--forgery-classes has no effect: it labels the forgeries of --sampler mperclass batches"
            )
        return notes

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict with the resolved sampler."""
        d = dataclasses.asdict(self)
        d["data"]["sampler"] = self.sampler
        return d

    def save(self, path: str | Path) -> None:
        """Write the resolved configuration as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild a config written by `save`/`to_dict`."""
        data = {"batched_views": False, **d["data"]}  # runs from before BatchViews: per-image views
        if data.get("image_size") is not None:
            data["image_size"] = tuple(data["image_size"])
        sections = {"method": {}, **d, "data": data}  # runs from before methods existed: supervised
        return cls(
            **{name: section(**sections[name]) for name, section in _SECTIONS.items()},
            **{k: v for k, v in d.items() if k not in _SECTIONS},
        )


def _flag(option: str) -> str:
    """The `siamese train` flag of a loss option: `--sub-centers`, `--loss-lr-multiplier`."""
    return "--" + {"lr_multiplier": "loss_lr_multiplier"}.get(option, option).replace("_", "-")


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "method": MethodConfig,
}


def build_train_config(preset: str | None = None, **options: Any) -> TrainConfig:
    """Build a `TrainConfig` from flat option names (as the CLI spells them).

    `loss` sets `LossConfig.name`; every other key is a field of exactly one section or of
    `TrainConfig` itself. Options that are None fall back to the preset's defaults, then to
    the dataclass defaults.

    Args:
        preset: transform/training preset; None = "face" with a root, else the embedded data's:
            "glyphs" (`siamese.data.glyphs`), or "digits" for a self-supervised `method`.

    Raises:
        ConfigError: an unknown option or an invalid value.
    """
    if preset is None:
        ssl = options.get("method") in names.SSL_METHODS
        preset = "face" if options.get("root") is not None else "digits" if ssl else "glyphs"
    check_choice(preset, names.PRESETS, "preset")
    given = {k: v for k, v in options.items() if v is not None}
    if "minutes" in given and "epochs" in given:
        raise ConfigError(
            "--minutes plans the epochs from the measured pace: give --epochs or --minutes, not both"
        )
    defaults = dict(PRESETS[preset].training)
    if given.get("method", "supervised") in names.SSL_METHODS:
        defaults.update(PRESETS[preset].pretraining_for(given["method"]))
    merged = {**defaults, **given, "preset": preset}
    if "encoder_kwargs" not in given and merged.get("encoder", "smallcnn") != "smallcnn":
        merged.pop("encoder_kwargs", None)  # the preset's smallcnn options do not fit other encoders
    if "loss" in merged:
        merged["name"] = merged.pop("loss")
    method = merged.pop("method", None)
    sections: dict[str, dict[str, Any]] = {s: {} for s in _SECTIONS}
    top: dict[str, Any] = {}
    top_fields = {f.name for f in dataclasses.fields(TrainConfig)} - set(_SECTIONS)
    for key, value in merged.items():
        owner = next(
            (s for s, c in _SECTIONS.items() if key in {f.name for f in dataclasses.fields(c)}), None
        )
        if owner is not None:
            sections[owner][key] = value
        elif key in top_fields:
            top[key] = value
        else:
            raise ConfigError(f"unknown training option {key!r}")
    if method is not None:
        sections["method"]["name"] = method
    return TrainConfig(**{s: c(**sections[s]) for s, c in _SECTIONS.items()}, **top)

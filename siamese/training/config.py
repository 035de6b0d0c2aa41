"""Frozen configuration dataclasses, one per component, nested in `TrainConfig`.

The CLI imports this module only once a command runs (never for `--help`).
Every field is used by `siamese.training.run.train`; the resolved config is written
to `config.json` in the run directory.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from siamese import names
from siamese.data.presets import PRESETS
from siamese.errors import ConfigError
from siamese.evaluation.distances import THRESHOLD_RULES
from siamese.losses.registry import LOSSES, loss_class, loss_distances, loss_needs_classes, loss_samplers
from siamese.models.checkpoint import ARCHITECTURE_OPTIONS, init_architecture
from siamese.models.tta import check_tta
from siamese.names import check_choice, option_names
from siamese.training.methods.base import Method
from siamese.training.methods.registry import METHODS, check_method_options, method_class
from siamese.training.options import Option, declared_options, unknown_option
from siamese.training.selection import SELECT_RULES


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
            verification (by supervised and self-supervised runs alike) and by every loss that
            measures a distance; None = `TrainConfig.verification_distance`'s default for
            verification and each loss's own default distance.
        encoder_kwargs: extra encoder options, e.g. `{"width": 32, "stem_stride": 2}` for smallcnn.
        init: a run directory or checkpoint (e.g. of `siamese pretrain`) whose encoder weights the
            encoder starts from; its architecture must match (`build_train_config` adopts it when
            no architecture option is given); a grayscale encoder starts a colour one and the
            other way round (`adapt_input_channels`). None = random initialisation.
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
    """The training objective: a loss by name and the options its constructor declares.

    Attributes:
        name: a registered loss (`siamese.losses.LOSSES`) for the supervised method: "margin"
            (Hadsell 2006), "supcon" (Khosla 2020), "triplet", or the margin-softmax losses
            "arcface" (Deng 2019), "cosface" (Wang 2018) and "subcenter" (Deng 2020). A
            self-supervised method trains with its own loss (`Method.loss_class`) instead.
        options: keyword options of the loss in use (`--loss-arg KEY=VALUE`), e.g.
            `{"margin": 0.5}`; what is not given takes the loss's own default. Its distance, class
            count and embedding size come from the run (`--distance`, the data, the encoder).
        miner: pytorch-metric-learning miner applied to "mperclass" batches.
    """

    name: str = "margin"
    options: dict[str, Any] = field(default_factory=dict)
    miner: str = "none"

    def __post_init__(self) -> None:
        check_choice(self.name, names.LOSSES, "loss")
        check_choice(self.miner, names.MINERS, "miner")


@dataclass(frozen=True)
class MethodConfig:
    """The training method (`siamese.training.METHODS`) and the options its constructor declares.

    "supervised" trains the loss of `LossConfig` on labels; the self-supervised methods ignore
    labels and train with their own loss, configured by `LossConfig.options`.

    Attributes:
        name: "supervised", "simclr", "moco", "byol", "swav", "simsiam", "barlow" or "vicreg".
        options: keyword options of the method (`--method-arg KEY=VALUE`), e.g.
            `{"queue_size": 1024}`; what is not given takes the method's own default
            (`siamese pretrain --list-method-args NAME` lists them).
        small_crops: extra small (local) crops per image, multi-crop; only methods that train on
            them (`Method.multi_crop`: swav) get them, for the others it is reported and ignored.
        collapse_threshold: embedding spread (`siamese.evaluation.embedding_spread`, about 1 when
            healthy, 0 when collapsed) below which a run warns.
        stop_on_collapse: end the run with an error instead of warning.
    """

    name: str = "supervised"
    options: dict[str, Any] = field(default_factory=dict)
    small_crops: int = 0
    collapse_threshold: float = 0.1
    stop_on_collapse: bool = False

    def __post_init__(self) -> None:
        check_choice(self.name, names.METHODS, "method")
        _positive(self.small_crops, "small crops", allow_zero=True)
        _positive(self.collapse_threshold, "collapse threshold", allow_zero=True)

    @property
    def self_supervised(self) -> bool:
        """Whether the method learns without labels."""
        return not METHODS[self.name].uses_labels


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule.

    Attributes:
        optimizer: "adamw", "sgd" (momentum 0.9, Nesterov) or "rmsprop" (SigNet's: smoothing
            0.9, eps 1e-8, momentum 0.9; L2 weight decay).
        lr: peak learning rate.
        weight_decay: decoupled weight decay.
        epochs: passes of `samples_per_epoch` samples.
        warmup_epochs: linear warm-up length before the cosine decay.
        batch_size: pairs, triplets or images per step: the global batch, split over the
            processes of a data-parallel run.
        accumulate: batches whose gradients are summed (each loss divided by `accumulate`) before
            one optimiser step: a batch `accumulate` times larger than memory holds, exactly for
            losses that are means over samples, and as the mean of the batches' losses for losses
            that couple the samples of a batch (pairs, negatives, Sinkhorn).
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 10
    warmup_epochs: float = 1.0
    batch_size: int = 64
    accumulate: int = 1

    def __post_init__(self) -> None:
        check_choice(self.optimizer, names.OPTIMIZERS, "optimizer")
        _positive(self.lr, "learning rate")
        _positive(self.weight_decay, "weight decay", allow_zero=True)
        _positive(self.epochs, "epochs")
        _positive(self.warmup_epochs, "warmup epochs", allow_zero=True)
        if self.batch_size < 2:
            raise ConfigError(f"batch size must be >= 2, got {self.batch_size}")
        _positive(self.accumulate, "accumulate")


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
        sync_bn: in a data-parallel run on CUDA, BatchNorm statistics over the global batch
            (`torch.nn.SyncBatchNorm`) instead of each process's slice.
        max_minutes: a hard cap on the training time: stop after the epoch at which another would
            exceed it (this cuts the learning-rate and momentum schedules; see `minutes`).
        minutes: plan the run for this many minutes of training (each epoch's evaluation and
            checkpoints included; reading the data before and the final test after are not):
            the pace of the first epoch fixes the number of steps (whole epochs, the last one
            possibly shorter), the learning-rate and momentum schedules span them, and the run
            stops on time (`siamese.training.budget`). Replaces
            `optim.epochs`, which then only sizes the schedules until the plan; with `max_minutes`
            the plan is for the smaller of the two.
        planned_steps: the optimiser steps `minutes` allows, recorded by the run once measured
            (None before; the last epoch may be shorter); a resumed run keeps this plan.
        select: which epoch's weights the run keeps as its model (`checkpoints/best.*`, used for
            the test and by inference; `siamese.training.selection.select_epoch`): "stable" = the
            last epoch unless an earlier one's validation EER is lower by more than the
            estimate's standard error, "best" = lowest validation EER, "last" = the final epoch.
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
    sync_bn: bool = False
    max_minutes: float | None = None
    minutes: float | None = None
    planned_steps: int | None = None
    select: str = "stable"
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
        if self.planned_steps is not None and (self.minutes is None or self.planned_steps < 1):
            raise ConfigError(f"planned steps must be >= 1 and come with minutes, got {self.planned_steps}")
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
        method_kwargs, loss_kwargs = self.method_kwargs(), self.loss_kwargs()  # names and types checked
        object.__setattr__(
            self, "method", replace(self.method, options={**self.method.options, **method_kwargs})
        )
        object.__setattr__(self, "loss", replace(self.loss, options={**self.loss.options, **loss_kwargs}))
        check_method_options(self.method.name, self.loss_class, method_kwargs, self.loss_build_kwargs())

    @property
    def method_class(self) -> type[Method]:
        """The class of the configured method."""
        return METHODS[self.method.name]

    @property
    def loss_class(self) -> type[nn.Module]:
        """The class of the loss the run trains with: the method's own, else the named one."""
        return self.method_class.loss_class or loss_class(self.loss.name)

    @property
    def objective(self) -> str:
        """How the objective is chosen, as flags: `--loss margin` or `--method simclr`."""
        return f"--method {self.method.name}" if self.method.self_supervised else f"--loss {self.loss.name}"

    @property
    def verification_distance(self) -> str:
        """The pair distance of verification: the model's `distance`, else the method's default
        (`Method.default_distance`: cosine for the self-supervised methods), else the loss's first
        (cosine for the margin-softmax losses, Euclidean for the others)."""
        if self.model.distance is not None:
            return self.model.distance
        return self.method_class.default_distance or loss_distances(self.loss.name)[0]

    @property
    def samplers(self) -> tuple[str, ...]:
        """The samplers the objective trains with, its natural one first."""
        return ("views",) if self.method.self_supervised else loss_samplers(self.loss.name)

    @property
    def sampler(self) -> str:
        """The sampler actually used (explicit choice, else the objective's natural one)."""
        return self.data.sampler or self.samplers[0]

    @property
    def small_crops(self) -> int:
        """The small crops the views are made with: `method.small_crops` for a method that trains
        on them (`Method.multi_crop`), else 0."""
        return self.method.small_crops if self.method_class.multi_crop else 0

    def method_kwargs(self) -> dict[str, Any]:
        """The given method options the method takes, typed (`--method-arg`).

        Raises:
            ConfigError: an option no method declares (a typo), or a value of the wrong type.
        """
        declared = declared_options(self.method_class, skip=METHOD_SUPPLIED)
        return _taken(self.method.options, declared, "--method-arg", f"--method {self.method.name}")

    def loss_kwargs(self) -> dict[str, Any]:
        """The given loss options the loss in use takes, typed (`--loss-arg`).

        Raises:
            ConfigError: an option no loss declares (a typo), or a value of the wrong type.
        """
        declared = declared_options(self.loss_class, skip=LOSS_SUPPLIED)
        return _taken(self.loss.options, declared, "--loss-arg", self.objective)

    def loss_build_kwargs(self) -> dict[str, Any]:
        """`loss_kwargs` plus the distance, when the loss measures one and `--distance` is given."""
        kwargs = self.loss_kwargs()
        if self.model.distance is not None and "distance" in option_names(self.loss_class):
            kwargs["distance"] = self.model.distance
        return kwargs

    def ignored_options(self) -> list[str]:
        """Options that were set but have no effect with this configuration, as one line each."""
        notes = [
            f"--method-arg {k} has no effect with --method {self.method.name}"
            for k in sorted(set(self.method.options) - set(self.method_kwargs()))
        ]
        notes += [
            f"--loss-arg {k} has no effect with {self.objective}"
            for k in sorted(set(self.loss.options) - set(self.loss_kwargs()))
        ]
        if self.method.small_crops and not self.small_crops:
            crops = [n for n, c in METHODS.items() if c.multi_crop]
            notes.append(
                f"--small-crops has no effect with --method {self.method.name} (only {', '.join(crops)} "
                "trains on small crops): the views are the two global ones"
            )
        if self.method.self_supervised:
            return notes
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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild a config written by `to_dict` (a run's `config.json`), also by earlier versions:
        their loss and method options were fields of `LossConfig` and `MethodConfig` (`"margin": 0.5`,
        `"barlow_lambda": null`) and become `options` (the given ones, renamed where the
        component calls them otherwise)."""
        data = {"batched_views": False, **d["data"]}  # runs from before BatchViews: per-image views
        if data.get("image_size") is not None:
            data["image_size"] = tuple(data["image_size"])
        sections = {"method": {}, **d, "data": data}  # runs from before methods existed: supervised
        sections["method"], sections["loss"] = _with_legacy_options(sections["method"], sections["loss"])
        return cls(
            **{name: section(**sections[name]) for name, section in _SECTIONS.items()},
            **{k: v for k, v in d.items() if k not in _SECTIONS},
        )


METHOD_SUPPLIED = ("encoder", "loss", "distance", "miner", "tta")
LOSS_SUPPLIED = ("distance", "num_classes", "embedding_size")
_SUPPLIED_BY = {
    "encoder": "the encoder is --encoder's",
    "loss": "the loss is set by --loss (supervised) or the method, its options by --loss-arg",
    "distance": "set by --distance",
    "miner": "set by --miner",
    "tta": "set by --tta",
    "num_classes": "the training identities, counted from the data",
    "embedding_size": "the encoder's embedding size (--embedding-dim)",
}
LEGACY_NAMES = {
    "barlow_lambda": "redundancy_weight",
    "vicreg_invariance": "invariance_weight",
    "vicreg_variance": "variance_weight",
    "vicreg_covariance": "covariance_weight",
}
"""Option names of earlier versions (and their `siamese pretrain` flags) -> the loss's own names."""


@functools.cache
def declared_anywhere(kind: str) -> frozenset[str]:
    """Every option some method (`kind` "method") or some loss (`kind` "loss") declares."""
    if kind == "method":
        return frozenset(o for c in METHODS.values() for o in declared_options(c, skip=METHOD_SUPPLIED))
    classes = [*LOSSES.values(), *(c.loss_class for c in METHODS.values() if c.loss_class is not None)]
    return frozenset(o for c in classes for o in declared_options(c, skip=LOSS_SUPPLIED))


def _taken(given: dict[str, Any], declared: dict[str, Option], flag: str, owner: str) -> dict[str, Any]:
    """The `given` options that `declared` holds, typed; those some other component declares are
    left out (reported by `TrainConfig.ignored_options`), any other is an error."""
    kind = "method" if flag == "--method-arg" else "loss"
    other, other_flag = ("loss", "--loss-arg") if kind == "method" else ("method", "--method-arg")
    taken = {}
    for key, value in given.items():
        if key in declared:
            taken[key] = declared[key].coerce(value, flag)
        elif key in _SUPPLIED_BY:
            raise ConfigError(f"{flag} {key}: not an option, {_SUPPLIED_BY[key]}")
        elif key not in declared_anywhere(kind):
            elsewhere = (
                f"; {key} is a {other} option: {other_flag} {key}=..."
                if key in declared_anywhere(other)
                else ""
            )
            raise unknown_option(flag, key, owner, declared, elsewhere)
    return taken


def route_options(method: str, loss: str, flat: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split options given by bare name (`temperature=0.2`, `queue_size=16`) into the method's and
    its loss's: the method's own first, then its loss's; an option of neither goes where another
    method or loss declares it (so it is reported as having no effect). Names of earlier
    versions are renamed (`LEGACY_NAMES`).

    >>> route_options("moco", "margin", {"queue_size": 16, "temperature": 0.3, "barlow_lambda": 0.1})
    ({'queue_size': 16}, {'temperature': 0.3, 'redundancy_weight': 0.1})
    """
    cls = method_class(method)
    own = declared_options(cls, skip=METHOD_SUPPLIED)
    loss_own = declared_options(cls.loss_class or loss_class(loss), skip=LOSS_SUPPLIED)
    to_method, to_loss = {}, {}
    for key, value in flat.items():
        key = LEGACY_NAMES.get(key, key)
        if key in own or (key not in loss_own and key not in declared_anywhere("loss")):
            to_method[key] = value
        else:
            to_loss[key] = value
    return to_method, to_loss


def _with_legacy_options(
    method: dict[str, Any], loss: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A saved method and loss section with the flat option fields of earlier versions moved into
    `options` (fields that were None, i.e. not given, dropped)."""
    fields = {c: {f.name for f in dataclasses.fields(c)} for c in (MethodConfig, LossConfig)}
    legacy = {
        k: v
        for section, c in ((method, MethodConfig), (loss, LossConfig))
        for k, v in section.items()
        if k not in fields[c] and v is not None
    }
    method = {k: v for k, v in method.items() if k in fields[MethodConfig]}
    loss = {k: v for k, v in loss.items() if k in fields[LossConfig]}
    if legacy:
        names_ = (method.get("name", MethodConfig.name), loss.get("name", LossConfig.name))
        to_method, to_loss = route_options(*names_, legacy)
        method["options"] = {**to_method, **method.get("options", {})}
        loss["options"] = {**to_loss, **loss.get("options", {})}
    return method, loss


_SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "method": MethodConfig,
}


def build_train_config(preset: str | None = None, **options: Any) -> TrainConfig:
    """Build a `TrainConfig` from flat option names (as the CLI spells them).

    `loss` sets `LossConfig.name` and `method` `MethodConfig.name`; `loss_options` and
    `method_options` are the options of the loss and the method (`--loss-arg`, `--method-arg`);
    every other key is a field of exactly one section or of `TrainConfig` itself, or an option of
    some method or loss by its bare name (`temperature=0.2`, routed by `route_options`). Options
    that are None fall back to the preset's defaults, then to the dataclass (and the
    components') defaults; the preset's loss and method options are merged with the given ones.

    Args:
        preset: transform/training preset; None = "face" with a root, else the embedded data's:
            "glyphs" (`siamese.data.glyphs`), or "digits" for a self-supervised `method`.

    With `init` and none of the architecture options (`encoder`, `encoder_kwargs`,
    `embedding_dim`, `normalize`), the encoder is the init checkpoint's own, whatever the preset
    brings, and its input channels are fitted to the preset's (grayscale <-> colour).

    Raises:
        ConfigError: an unknown option or an invalid value.
    """
    if preset is None:
        ssl = options.get("method") in names.SSL_METHODS
        preset = "face" if options.get("root") is not None else "digits" if ssl else "glyphs"
    check_choice(preset, names.PRESETS, "preset")
    given = {k: v for k, v in options.items() if v is not None}
    if given.get("init") is not None and not set(ARCHITECTURE_OPTIONS) & set(given):
        given.update(init_architecture(given["init"]))  # fine-tune the model as it is
    if "minutes" in given and "epochs" in given:
        raise ConfigError(
            "--minutes plans the epochs from the measured pace: give --epochs or --minutes, not both"
        )
    defaults = dict(PRESETS[preset].training)
    if given.get("method", "supervised") in names.SSL_METHODS:
        defaults.update(PRESETS[preset].pretraining_for(given["method"]))
    method, loss = (
        given.get("method", MethodConfig.name),
        given.get("loss", defaults.get("loss", LossConfig.name)),
    )
    check_choice(method, names.METHODS, "method")
    check_choice(loss, names.LOSSES, "loss")
    preset_method, preset_loss = _component_options(defaults, method, loss)
    given_method, given_loss = _component_options(given, method, loss)
    merged = {**defaults, **given, "preset": preset}
    if "encoder_kwargs" not in given and merged.get("encoder", "smallcnn") != "smallcnn":
        merged.pop("encoder_kwargs", None)  # the preset's smallcnn options do not fit other encoders
    merged.pop("loss", None)
    merged.pop("method", None)
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
    sections["method"].update(name=method, options={**preset_method, **given_method})
    sections["loss"].update(name=loss, options={**preset_loss, **given_loss})
    return TrainConfig(**{s: c(**sections[s]) for s, c in _SECTIONS.items()}, **top)


def _component_options(
    options: dict[str, Any], method: str, loss: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pop the method's and the loss's options out of flat `options`: `method_options`,
    `loss_options`, and options given by their bare name (`route_options`; the explicit dicts win)."""
    fields = {f.name for c in (*_SECTIONS.values(), TrainConfig) for f in dataclasses.fields(c)}
    bare = declared_anywhere("method") | declared_anywhere("loss") | set(LEGACY_NAMES)
    flat = {k: options.pop(k) for k in list(options) if k not in fields and k in bare}
    to_method, to_loss = route_options(method, loss, flat)
    return {**to_method, **options.pop("method_options", {})}, {**to_loss, **options.pop("loss_options", {})}

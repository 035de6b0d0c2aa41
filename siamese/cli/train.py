"""`siamese train`: flags map one-to-one onto `TrainConfig` fields."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from siamese import names
from siamese.cli.common import console, is_main_process, relaunch, user_errors
from siamese.cli.components import (
    DeprecatedFloat,
    DeprecatedInt,
    DistanceOpt,
    ListLossArgsOpt,
    LossArgOpt,
    component_options,
)
from siamese.cli.options import (
    DATA_PANEL,
    LOSS_PANEL,
    MODEL_PANEL,
    OPTIMISATION_PANEL,
    RUN_PANEL,
    AccumulateOpt,
    ChannelsOpt,
    DeviceOpt,
    EmbeddingDimOpt,
    EncoderArgOpt,
    EncoderOpt,
    EpochsOpt,
    ForgeriesOpt,
    ForgeryFractionOpt,
    ImageSizeOpt,
    LrOpt,
    MaxMinutesOpt,
    MinutesOpt,
    NprocOpt,
    PrecisionOpt,
    PresetOpt,
    ResumeOpt,
    RunOutOpt,
    SaveEveryOpt,
    SeedOpt,
    StrictOpt,
    SyncBnOpt,
    TrainBatchSizeOpt,
    TtaOpt,
    WeightDecayOpt,
    WorkersOpt,
)
from siamese.errors import ConfigError

DATA = DATA_PANEL
MODEL = MODEL_PANEL
LOSS = LOSS_PANEL
OPTIM = OPTIMISATION_PANEL
RUN = RUN_PANEL


def parse_size(value: str | None) -> tuple[int, int] | None:
    """Parse `HxW` (e.g. `155x220`) or a single side `64`."""
    if value is None:
        return None
    try:
        parts = [int(p) for p in value.lower().split("x")]
    except ValueError:
        raise ConfigError(f"--image-size must look like HxW, e.g. 155x220, got {value!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise ConfigError(f"--image-size must look like HxW, e.g. 155x220, got {value!r}")
    return parts[0], parts[1]


def parse_encoder_args(values: list[str] | None) -> dict[str, int | float | str] | None:
    """Parse repeated `KEY=VALUE` encoder options; numbers become int or float."""
    if not values:
        return None
    out: dict[str, int | float | str] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--encoder-arg must look like KEY=VALUE, got {item!r}")
        for cast in (int, float, str):
            try:
                out[key] = cast(raw)
                break
            except ValueError:
                continue
    return out


def train_command(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Argument(
            help="Identity-folder root: DATA/<identity>/<image>. Omit for the embedded characters."
        ),
    ] = None,
    loss: Annotated[
        names.LossName | None,
        typer.Option(
            help="Training objective: margin, supcon, triplet, or the margin-softmax losses arcface, "
            "cosface, subcenter (class weights per training identity, cosine verification) "
            "\\[default: the preset's: margin for digits, else supcon].",
            show_default=False,
            rich_help_panel=LOSS,
        ),
    ] = None,
    forgeries: ForgeriesOpt = None,
    preset: PresetOpt = None,
    image_size: ImageSizeOpt = None,
    channels: ChannelsOpt = None,
    sampler: Annotated[
        names.SamplerName | None,
        typer.Option(
            help="pairs | triplets | mperclass | views \\[default: by loss: margin→pairs, "
            "triplet→triplets, supcon, arcface, cosface, subcenter→mperclass].",
            rich_help_panel=DATA,
        ),
    ] = None,
    samples_per_epoch: Annotated[
        int | None,
        typer.Option(
            help="Pairs/triplets/images per epoch (default: 2 × training images).", rich_help_panel=DATA
        ),
    ] = None,
    forgery_fraction: ForgeryFractionOpt = None,
    m_per_class: Annotated[
        int | None, typer.Option(help="Images per identity in a mperclass batch.", rich_help_panel=DATA)
    ] = None,
    forgery_classes: Annotated[
        bool | None,
        typer.Option(
            "--forgery-classes/--no-forgery-classes",
            help="In mperclass batches, label each identity's forgeries as a class of their own (arcface, "
            "cosface, subcenter: a class weight per imitated identity) instead of as plain negatives "
            "\\[default: the preset's].",
            show_default=False,
            rich_help_panel=DATA,
        ),
    ] = None,
    rotations: Annotated[
        int | None,
        typer.Option(
            help="1, 2 or 4: also train on each identity turned by 180° (2) or every quarter turn (4) "
            "as new identities (handwritten characters) \\[default: the preset's].",
            show_default=False,
            rich_help_panel=DATA,
        ),
    ] = None,
    val_fraction: Annotated[
        float | None, typer.Option(help="Share of identities for validation.", rich_help_panel=DATA)
    ] = None,
    test_fraction: Annotated[
        float | None, typer.Option(help="Share of identities for the final test.", rich_help_panel=DATA)
    ] = None,
    split_seed: Annotated[
        int | None, typer.Option(help="Seed of the identity split.", rich_help_panel=DATA)
    ] = None,
    eval_pairs: Annotated[
        int | None, typer.Option(help="Validation/test pairs scored.", rich_help_panel=DATA)
    ] = None,
    strict: StrictOpt = False,
    workers: WorkersOpt = 0,
    encoder: EncoderOpt = None,
    embedding_dim: EmbeddingDimOpt = None,
    distance: DistanceOpt = None,
    normalize: Annotated[
        bool | None,
        typer.Option(
            "--normalize/--no-normalize",
            help="L2-normalise embeddings (default: on).",
            rich_help_panel=MODEL,
        ),
    ] = None,
    pretrained: Annotated[
        bool,
        typer.Option(
            help="Start from ImageNet weights (downloads; torchvision encoders).", rich_help_panel=MODEL
        ),
    ] = False,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start the encoder from this run's (e.g. a `siamese pretrain` run's) weights; "
            "projection heads are not carried over.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    encoder_arg: EncoderArgOpt = None,
    loss_arg: LossArgOpt = None,
    list_loss_args: ListLossArgsOpt = None,
    margin: DeprecatedFloat = None,
    temperature: DeprecatedFloat = None,
    beta: DeprecatedFloat = None,
    scale: DeprecatedFloat = None,
    sub_centers: DeprecatedInt = None,
    loss_lr_multiplier: DeprecatedFloat = None,
    miner: Annotated[
        names.MinerName | None,
        typer.Option(help="Hard-negative miner for mperclass batches.", rich_help_panel=LOSS),
    ] = None,
    epochs: EpochsOpt = None,
    batch_size: TrainBatchSizeOpt = None,
    optimizer: Annotated[
        names.OptimizerName | None, typer.Option(help="(default: adamw)", rich_help_panel=OPTIM)
    ] = None,
    lr: LrOpt = None,
    weight_decay: WeightDecayOpt = None,
    warmup_epochs: Annotated[
        float | None,
        typer.Option(help="Linear warm-up before cosine decay (default: 1).", rich_help_panel=OPTIM),
    ] = None,
    threshold_rule: Annotated[
        Literal["eer", "accuracy", "far"] | None,
        typer.Option(
            help="Decision threshold chosen on validation pairs: at the EER (default), at the best "
            "accuracy, or at the loosest threshold with FAR <= --target-far.",
            rich_help_panel=RUN,
        ),
    ] = None,
    target_far: Annotated[
        float | None,
        typer.Option(help="FAR target of --threshold-rule far (default 1e-3).", rich_help_panel=RUN),
    ] = None,
    tta: TtaOpt = None,
    select: Annotated[
        Literal["stable", "best", "last"] | None,
        typer.Option(
            help="The model the run keeps: stable = the last epoch unless an earlier one's validation "
            "EER beats it by more than its standard error (docs/selection.md), best = the lowest "
            "validation EER, last = the last epoch \\[default: the preset's: last for face, else stable].",
            show_default=False,
            rich_help_panel=RUN,
        ),
    ] = None,
    out: RunOutOpt = None,
    resume: ResumeOpt = None,
    max_minutes: MaxMinutesOpt = None,
    minutes: MinutesOpt = None,
    save_every: SaveEveryOpt = None,
    skip_nonfinite: Annotated[
        bool | None,
        typer.Option(
            "--skip-nonfinite",
            help="Skip batches with a NaN/inf loss instead of stopping.",
            rich_help_panel=RUN,
        ),
    ] = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = None,
    accumulate: AccumulateOpt = None,
    sync_bn: SyncBnOpt = None,
    nproc: NprocOpt = None,
) -> None:
    """Train a Siamese verification model on DATA (or on the embedded characters) and test it."""
    with user_errors():
        if nproc is not None:
            relaunch(nproc)
        if resume is not None:
            _run(resumed_config(ctx, resume), resume=True)
            return
        _run(command_config(ctx))


def command_config(ctx: typer.Context) -> Any:
    """The `TrainConfig` of a `train` or `pretrain` command line, from the command's own parameters.

    Every parameter is the `build_train_config` option of the same name, except: `DATA` is the
    `root`, `--preset` its first argument, `--image-size` and `--encoder-arg` are parsed (the latter
    into `encoder_kwargs`), `--loss-arg` and `--method-arg` into `loss_options` and
    `method_options` (the deprecated per-option flags into the bare option names,
    `siamese.cli.components.component_options`), paths become strings and `--resume` is not an
    option (see `resumed_config`).

    Raises:
        ConfigError: an invalid value (from the parsers or `build_train_config`).
    """
    from siamese.training.config import build_train_config

    params = dict(ctx.params)
    data, preset = params.pop("data"), params.pop("preset")
    params.pop("resume", None)
    params.pop("nproc", None)
    params["image_size"] = parse_size(params["image_size"])
    params["encoder_kwargs"] = parse_encoder_args(params.pop("encoder_arg"))
    params.update(component_options(params))
    options = {k: str(v) if isinstance(v, Path) else v for k, v in params.items()}
    return build_train_config(preset, root=str(data) if data is not None else None, **options)


def resumed_config(ctx: typer.Context, run_dir: Path) -> Any:
    """The saved config of `run_dir`, refusing any other option given with `--resume`.

    Raises:
        ConfigError: options besides `--resume` on the command line.
        CheckpointError: not a resumable run directory.
    """
    others = [
        name
        for name in ctx.params
        if name not in ("resume", "nproc")
        and getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"
    ]
    if others:
        flags = ", ".join("DATA" if n == "data" else "--" + n.replace("_", "-") for n in others)
        raise ConfigError(f"--resume continues a run with its saved config; remove {flags}")
    from siamese.training.run import resume_config

    return resume_config(run_dir)


def _run(config, resume: bool = False) -> None:  # noqa: ANN001 - TrainConfig, imported lazily
    from rich.markup import escape

    from siamese.cli.progress import run_with_progress, summary_table
    from siamese.training.run import train

    embedded = "scikit-learn digits" if config.data.preset == "digits" else "characters (siamese.data.glyphs)"
    source = escape(config.data.root or f"embedded {embedded}")
    if resume:
        console.print(f"resuming {config.out}", highlight=False)
    console.print(
        f"training [bold]{config.loss.name}[/] on {source} (preset {config.data.preset}, "
        f"encoder {config.model.encoder}, sampler {config.sampler})",
        highlight=False,
    )
    summary = run_with_progress(train, config, resume)
    if not is_main_process():
        return  # rank 0 of a data-parallel run reports
    test, kept = summary["test"], f"{config.select} epoch"
    rows = [
        ("validation threshold (distance)", f"{summary['threshold']:.4f}"),
        (f"model: {kept} (val EER)", f"{summary['best_epoch']} ({summary['val_eer']:.2%})"),
        ("test EER", f"{test['eer']:.2%}"),
        ("test AUC", f"{test['auc']:.4f}"),
        (
            "test accuracy @ threshold",
            f"{test['accuracy']:.2%}  (FAR {test['far']:.2%}, FRR {test['frr']:.2%})",
        ),
        ("test pairs / identities", f"{test['pairs']} / {summary['identities']['test']}"),
        ("wall time", f"{summary['wall_time_s']:.1f} s on {summary['device']}"),
        ("run saved to", summary["run_dir"]),
    ]
    console.print(summary_table("siamese train", rows))

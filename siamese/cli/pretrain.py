"""`siamese pretrain`: self-supervised pretraining of the encoder on any folder of images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from siamese import names
from siamese.cli.common import console, is_main_process, relaunch, user_errors
from siamese.cli.components import (
    DeprecatedFloat,
    DeprecatedInt,
    DistanceOpt,
    ListMethodArgsOpt,
    LossArgOpt,
    MethodArgOpt,
)
from siamese.cli.options import (
    DATA_PANEL,
    METHOD_PANEL,
    RUN_PANEL,
    AccumulateOpt,
    ChannelsOpt,
    DeviceOpt,
    EmbeddingDimOpt,
    EncoderArgOpt,
    EncoderOpt,
    EpochsOpt,
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
    SyncBnOpt,
    TrainBatchSizeOpt,
    WeightDecayOpt,
    WorkersOpt,
)
from siamese.cli.train import command_config, resumed_config

METHOD = METHOD_PANEL
RUN = RUN_PANEL


def _opt(help_text: str, panel: str = METHOD) -> typer.models.OptionInfo:
    return typer.Option(help=help_text, rich_help_panel=panel, show_default=False)


def pretrain_command(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Argument(help="Any folder of images, searched recursively (omit for the embedded digits)."),
    ] = None,
    method: Annotated[names.SslMethodName, _opt("Self-supervised method.")] = "simclr",
    method_arg: MethodArgOpt = None,
    loss_arg: LossArgOpt = None,
    list_method_args: ListMethodArgsOpt = None,
    small_crops: Annotated[
        int | None,
        _opt("Small crops per image besides the 2 global views, for the methods that train on them (swav)."),
    ] = None,
    distance: DistanceOpt = None,
    collapse_threshold: Annotated[
        float | None, _opt("Embedding spread below which the run warns (healthy is about 1).")
    ] = None,
    temperature: DeprecatedFloat = None,
    projection_dim: DeprecatedInt = None,
    hidden_dim: DeprecatedInt = None,
    predictor_dim: DeprecatedInt = None,
    momentum: DeprecatedFloat = None,
    momentum_end: DeprecatedFloat = None,
    queue_size: DeprecatedInt = None,
    prototypes: DeprecatedInt = None,
    freeze_prototypes: DeprecatedInt = None,
    barlow_lambda: DeprecatedFloat = None,
    vicreg_invariance: DeprecatedFloat = None,
    vicreg_variance: DeprecatedFloat = None,
    vicreg_covariance: DeprecatedFloat = None,
    stop_on_collapse: Annotated[
        bool | None,
        typer.Option(
            "--stop-on-collapse",
            help="End the run when the embeddings collapse (default: warn).",
            rich_help_panel=METHOD,
            show_default=False,
        ),
    ] = None,
    preset: PresetOpt = None,
    image_size: ImageSizeOpt = None,
    channels: ChannelsOpt = None,
    encoder: EncoderOpt = None,
    embedding_dim: EmbeddingDimOpt = None,
    encoder_arg: EncoderArgOpt = None,
    epochs: EpochsOpt = None,
    batch_size: TrainBatchSizeOpt = None,
    lr: LrOpt = None,
    weight_decay: WeightDecayOpt = None,
    max_minutes: MaxMinutesOpt = None,
    minutes: MinutesOpt = None,
    out: RunOutOpt = None,
    save_every: SaveEveryOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = None,
    accumulate: AccumulateOpt = None,
    sync_bn: SyncBnOpt = None,
    nproc: NprocOpt = None,
    workers: WorkersOpt = 0,
    batched_views: Annotated[
        bool | None,
        typer.Option(
            "--batched-views/--per-image-views",
            help="Augment the views a batch at a time in torch (default), or per image in Pillow.",
            rich_help_panel=DATA_PANEL,
            show_default=False,
        ),
    ] = None,
    resume: ResumeOpt = None,
) -> None:
    """Pretrain the encoder without labels; labels, if any, only monitor it.

    Methods: SimCLR, MoCo v2, BYOL, SwAV, SimSiam, Barlow Twins, VICReg (see --method); each one's
    options and defaults: --list-method-args METHOD.
    """
    with user_errors():
        if nproc is not None:
            relaunch(nproc)
        if resume is not None:
            _run(resumed_config(ctx, resume), resume=True)
            return
        _run(command_config(ctx))


def _run(config, resume: bool = False) -> None:  # noqa: ANN001 - TrainConfig, imported lazily
    from rich.markup import escape

    from siamese.cli.progress import run_with_progress, summary_table
    from siamese.training.pretrain import pretrain

    source = escape(config.data.root or "embedded scikit-learn digits")
    console.print(
        f"pretraining [bold]{config.method.name}[/] on {source} (preset {config.data.preset}, "
        f"encoder {config.model.encoder}; labels are never used for training)",
        highlight=False,
    )
    summary = run_with_progress(pretrain, config, resume)
    if not is_main_process():
        return  # rank 0 of a data-parallel run reports
    knn = summary["knn_acc"]
    rows = [
        ("method / epochs", f"{summary['method']} / {summary['epochs']}"),
        ("final training loss", f"{summary['train_loss']:.4f}"),
        ("k-NN accuracy (monitor)", "no labels" if knn is None else f"{knn:.2%}"),
        ("embedding spread (1 healthy, 0 collapsed)", f"{summary['spread']:.3f}"),
        ("images", str(summary["images"])),
        ("wall time", f"{summary['wall_time_s']:.1f} s on {summary['device']}"),
        ("run saved to", f"{summary['run_dir']}  (use: siamese train DATA --init {summary['run_dir']})"),
    ]
    console.print(summary_table("siamese pretrain", rows))

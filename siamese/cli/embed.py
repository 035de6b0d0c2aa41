"""`siamese embed DATA`: embed every image of a folder or list into a .npy, .csv or .parquet file, or
into numbered parts of one (`--shard-size`), listed in a manifest; an interrupted run is resumed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from siamese.cli.common import console, embedding_progress, err_console, model_or_latest, user_errors
from siamese.cli.options import (
    OUTPUT_PANEL,
    BatchSizeOpt,
    DetectOpt,
    DeviceOpt,
    EmbedDataArg,
    EmbeddingsOutOpt,
    ModelOpt,
    StrictOpt,
    TtaOpt,
    WorkersOpt,
    option,
)

if TYPE_CHECKING:
    from siamese.inference.writers import EmbedSummary

ShardSizeOpt = Annotated[
    int | None,
    option(
        "Write numbered parts of N images each (<out stem>-00000<ext>, -00001, ...) instead of one file "
        "\\[default: one file]. Either way <out stem>.manifest.json lists the parts written and the "
        "model and inputs they come from.",
        OUTPUT_PANEL,
        min=1,
        show_default=False,
    ),
]
"""`--shard-size` of embed."""
OverwriteOpt = Annotated[
    bool,
    option(
        "Start again, deleting the output a manifest at --out lists. Without it, an interrupted run of "
        "the same model, inputs and --shard-size is resumed, and any other output is refused.",
        OUTPUT_PANEL,
        "--overwrite",
    ),
]
"""`--overwrite` of embed."""

_SKIPPED_SHOWN = 5


def embed_command(
    data: EmbedDataArg,
    out: EmbeddingsOutOpt,
    model: ModelOpt = None,
    batch_size: BatchSizeOpt = 64,
    workers: WorkersOpt = 0,
    device: DeviceOpt = "auto",
    strict: StrictOpt = False,
    tta: TtaOpt = None,
    detect: DetectOpt = False,
    shard_size: ShardSizeOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Embed the images of DATA with a trained encoder and write one row per readable image."""
    with user_errors():
        from siamese.data.inputs import list_inputs
        from siamese.inference.model import EmbeddingModel
        from siamese.inference.writers import check_output, write_embeddings

        check_output(out)  # fail fast on a bad extension or a missing pyarrow
        inputs = list_inputs(data)
        model = model_or_latest(model)
        loaded = EmbeddingModel.from_checkpoint(model, device=device, tta=tta, detect=detect)
        with embedding_progress(console, disable=not console.is_terminal) as progress:
            task = progress.add_task("embedding", total=len(inputs))
            try:
                summary = write_embeddings(
                    loaded,
                    inputs,
                    out,
                    batch_size=batch_size,
                    workers=workers,
                    on_batch=lambda n: progress.advance(task, n),
                    strict=strict,
                    shard_size=shard_size,
                    overwrite=overwrite,
                )
            except KeyboardInterrupt:
                progress.stop()
                err_console.print("interrupted: run the same command again to resume", highlight=False)
                raise typer.Exit(130) from None
    if summary.skipped:
        console.print(f"[yellow]skipped {len(summary.skipped)} unreadable files:[/]", highlight=False)
        for _, reason in summary.skipped[:_SKIPPED_SHOWN]:
            console.print(f"  {reason}", highlight=False, soft_wrap=True, markup=False)
        if len(summary.skipped) > _SKIPPED_SHOWN:
            console.print(f"  ... and {len(summary.skipped) - _SKIPPED_SHOWN} more", highlight=False)
    console.print(summary_line(summary), highlight=False, soft_wrap=True, markup=False)


def summary_line(summary: EmbedSummary) -> str:
    """`embedded N images (D dims), skipped S in T s (R images/s) -> files`, saying what a resumed
    run left to earlier parts."""
    line = f"embedded {summary.written} images ({summary.dim} dims), skipped {len(summary.skipped)}"
    rate = summary.images_per_s
    if rate is None:
        line += ", all by an earlier run (--overwrite embeds them again)"
    else:
        if summary.resumed:
            done = summary.inputs - summary.resumed
            line += f"; resumed after {summary.resumed} inputs, {done} embedded now"
        line += f" in {summary.seconds:.1f} s ({rate:.1f} images/s)"
    manifest = summary.files[-1]
    if summary.parts > 1:
        return f"{line} -> {summary.parts} parts listed in {manifest}"
    return f"{line} -> {', '.join(str(f) for f in summary.files)}"

"""`siamese embed DATA`: embed every image of a folder or list into a .npy, .csv or .parquet file."""

from __future__ import annotations

from siamese.cli.common import console, embedding_progress, model_or_latest, user_errors
from siamese.cli.options import (
    BatchSizeOpt,
    DeviceOpt,
    EmbedDataArg,
    EmbeddingsOutOpt,
    ModelOpt,
    StrictOpt,
    TtaOpt,
    WorkersOpt,
)

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
) -> None:
    """Embed the images of DATA with a trained encoder and write one row per readable image."""
    with user_errors():
        from siamese.data.inputs import list_inputs
        from siamese.inference.model import EmbeddingModel
        from siamese.inference.writers import check_output, write_embeddings

        check_output(out)  # fail fast on a bad extension or a missing pyarrow
        inputs = list_inputs(data)
        model = model_or_latest(model)
        loaded = EmbeddingModel.from_checkpoint(model, device=device, tta=tta)
        with embedding_progress(console, disable=not console.is_terminal) as progress:
            task = progress.add_task("embedding", total=len(inputs))
            summary = write_embeddings(
                loaded,
                inputs,
                out,
                batch_size=batch_size,
                workers=workers,
                on_batch=lambda n: progress.advance(task, n),
                strict=strict,
            )
    if summary.skipped:
        console.print(f"[yellow]skipped {len(summary.skipped)} unreadable files:[/]", highlight=False)
        for _, reason in summary.skipped[:_SKIPPED_SHOWN]:
            console.print(f"  {reason}", highlight=False, soft_wrap=True, markup=False)
        if len(summary.skipped) > _SKIPPED_SHOWN:
            console.print(f"  ... and {len(summary.skipped) - _SKIPPED_SHOWN} more", highlight=False)
    files = ", ".join(str(f) for f in summary.files)
    console.print(
        f"embedded {summary.written} images ({summary.dim} dims), skipped {len(summary.skipped)} -> {files}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )

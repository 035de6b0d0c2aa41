"""`siamese embed DATA`: embed every image of a folder or list into a .npy, .csv or .parquet file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from siamese import names
from siamese.cli.common import console, user_errors

_SKIPPED_SHOWN = 5


def embed_command(
    data: Annotated[
        Path,
        typer.Argument(
            help="Folder of images (recursive; identity = sub-folder) or a text file of image paths.",
            show_default=False,
        ),
    ],
    model: Annotated[Path, typer.Option(help="Run directory or checkpoint.", show_default=False)],
    out: Annotated[
        Path,
        typer.Option(
            help="Output file: .npy (+ <out>.csv listing path,identity), .csv or .parquet (needs pyarrow).",
            show_default=False,
        ),
    ],
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 64,
    workers: Annotated[int, typer.Option(min=0, help="DataLoader worker processes decoding images.")] = 0,
    device: Annotated[Literal[names.DEVICES], typer.Option(help="auto = CUDA when available.")] = "auto",
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on an unreadable image instead of skipping it.")
    ] = False,
) -> None:
    """Embed the images of DATA with a trained encoder and write one row per readable image."""
    with user_errors():
        from siamese.data.inputs import list_inputs
        from siamese.inference.verifier import Verifier
        from siamese.inference.writers import check_output, write_embeddings

        check_output(out)  # fail fast on a bad extension or a missing pyarrow
        inputs = list_inputs(data)
        verifier = Verifier.from_checkpoint(model, device=device)
        with _progress() as progress:
            task = progress.add_task("embedding", total=len(inputs))
            summary = write_embeddings(
                verifier,
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


def _progress():  # noqa: ANN202 - rich.progress.Progress, imported lazily
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("embedding"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )

"""`siamese export`: the encoder as ONNX or TorchScript, checked against PyTorch, plus its metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from siamese.cli.common import console, user_errors


def export_command(
    model: Annotated[Path, typer.Option(help="Run directory or checkpoint.", show_default=False)],
    fmt: Annotated[
        Literal["onnx", "torchscript"],
        typer.Option(
            "--format", help="onnx (needs the onnx extra: pip install 'siamese\\[onnx]') or torchscript."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Model file to write; its metadata goes to <out>.json.", show_default=False)
    ],
    batch_size: Annotated[int, typer.Option(min=2, help="Size of the random batch of the parity check.")] = 4,
) -> None:
    """Export the encoder ((B, C, H, W) normalised images -> (B, D) embeddings, any B) and verify it."""
    with user_errors():
        from siamese.inference.export import export_model

        info = export_model(model, fmt, out, batch_size=batch_size)
    n, diff = info["batch_size"], info["max_abs_diff"]
    console.print(f"parity check vs PyTorch on {n} random images: max abs diff {diff:.3g}", highlight=False)
    console.print(
        f"wrote {info['model']} and {info['metadata']}", highlight=False, soft_wrap=True, markup=False
    )

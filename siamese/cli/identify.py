"""`siamese identify QUERY... --gallery G`: who is this, if anyone? (1:N against an enrolled gallery)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from siamese.cli.common import console, user_errors
from siamese.cli.options import (
    BatchSizeOpt,
    DetectOpt,
    DeviceOpt,
    FpirOpt,
    GalleryOpt,
    IdentifyFusionOpt,
    JsonOpt,
    ModelOpt,
    QueriesArg,
    TopKOpt,
    WorkersOpt,
)
from siamese.errors import ConfigError

if TYPE_CHECKING:
    from siamese.galleries import Identification


def _images(queries: list[Path]) -> list[str]:
    """Query files, with folders expanded to their images (recursively, in natural order)."""
    from siamese.data.inputs import list_inputs

    out: list[str] = []
    for query in queries:
        out += [item.path for item in list_inputs(query)] if query.is_dir() else [str(query)]
    return out


def _print(results: list[Identification]) -> None:
    for result in results:
        console.print(f"[bold]{result.query}[/]", highlight=False, soft_wrap=True)
        table = Table(show_edge=False)
        table.add_column("rank", justify="right")
        table.add_column("identity")
        table.add_column("distance", justify="right")
        for rank, cand in enumerate(result.candidates, 1):
            table.add_row(str(rank), cand.identity, f"{cand.distance:.4f}")
        console.print(table)
        best = result.candidates[0].distance if result.candidates else float("nan")
        if result.identity is None:
            verdict = f"[bold yellow]unknown[/] (best {best:.4f} > threshold {result.threshold:.4f})"
        else:
            verdict = f"[bold green]{result.identity}[/] ({best:.4f} <= threshold {result.threshold:.4f})"
        console.print(
            f"-> {verdict}  [dim]FPIR {result.fpir:g}, {result.fusion} fusion, N = {result.gallery_size}[/]",
            highlight=False,
        )


def identify_command(
    queries: QueriesArg,
    gallery: GalleryOpt = None,
    model: ModelOpt = None,
    detect: DetectOpt = False,
    top_k: TopKOpt = 5,
    fpir: FpirOpt = None,
    fusion: IdentifyFusionOpt = None,
    json_output: JsonOpt = False,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = 64,
    workers: WorkersOpt = 0,
) -> None:
    """Rank the gallery's identities for each query and name the best one if it passes the open-set
    threshold (set so that a share FPIR of people who are not enrolled get a candidate), else unknown."""
    with user_errors():
        if gallery is None:
            raise ConfigError(
                "identify searches a gallery: pass --gallery G (make one with `siamese enroll`)"
            )
        from siamese.galleries import Gallery, Identifier
        from siamese.galleries.index import open_index
        from siamese.inference.model import EmbeddingModel

        enrolled = Gallery.load(gallery)
        index = open_index(enrolled, gallery)
        try:
            identifier = Identifier(enrolled, fusion, index)
            identifier.threshold(fpir)  # an uncalibrated gallery fails before anything is embedded
            checkpoint = enrolled.model if model is None else model
            loaded = EmbeddingModel.from_checkpoint(checkpoint, device=device, detect=detect)
            enrolled.check_model(loaded.source, loaded.metadata)
            images = _images(queries)
            embeddings = loaded.embed(images, batch_size=batch_size, workers=workers)  # (Q, D)
            results = identifier.identify(embeddings, images, top_k, fpir)
        finally:
            if index is not None:
                index.close()
    if json_output:
        out: dict[str, Any] = {"gallery": str(gallery), "results": [r.to_dict() for r in results]}
        typer.echo(json.dumps(out, indent=2))
    else:
        _print(results)

"""`siamese gallery show|remove|index G`: look at a gallery, remove identities, change its search backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from siamese.cli.common import Command, console, user_errors
from siamese.cli.options import IndexOptionOpt, JsonOpt
from siamese.errors import ConfigError

if TYPE_CHECKING:
    from siamese.galleries import Gallery

gallery_app = typer.Typer(
    no_args_is_help=True,
    help="Look at a gallery, remove identities from it, or change its search backend.",
)

GalleryArg = Annotated[Path, typer.Argument(help="Gallery folder written by `siamese enroll`.")]
IdentitiesArg = Annotated[list[str], typer.Argument(help="Enrolled identities to remove.")]
BackendArg = Annotated[
    str,
    typer.Argument(
        help="exact | faiss-flat | faiss-ivf | faiss-hnsw (pip install 'siamese\\[index]') | "
        "milvus (pip install 'siamese\\[milvus]')."
    ),
]


def backend_options(pairs: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` strings as options; values that read as JSON numbers or booleans become them.

    >>> backend_options(["nlist=64", "uri=http://db:19530", "exact=true"])
    {'nlist': 64, 'uri': 'http://db:19530', 'exact': True}

    Raises:
        ConfigError: an item without "=".
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--index-option takes KEY=VALUE, got {pair!r}")
        try:
            parsed = json.loads(value)
            out[key] = parsed if isinstance(parsed, (int, float, bool)) else value
        except ValueError:
            out[key] = value
    return out


def describe_index(spec: dict[str, Any]) -> str:
    """One line about a gallery's search backend and its recall guard."""
    if spec.get("backend", "exact") == "exact":
        return "exact (every identity scored)"
    options = ", ".join(f"{k}={v}" for k, v in spec.get("options", {}).items())
    agreement = spec.get("agreement")
    guard = (
        f"top-1 agreement with exact {agreement:.1%} on {spec.get('queries', 0)} held-out queries"
        if agreement is not None
        else "recall not checked"
    )
    return f"{spec['backend']} ({options}); {guard}"


def identification_summary(gallery: Gallery) -> dict[str, Any]:
    """The open-set operating point of a gallery: FPIR, threshold, fusion, calibration size."""
    from siamese.galleries import Identifier

    identifier = Identifier(gallery)
    searches = len(gallery.nonmated_distances(identifier.fusion))
    return {
        "fpir": gallery.fpir(),
        "threshold": identifier.threshold(),
        "fusion": identifier.fusion,
        "nonmated_searches": searches,
        "resolvable": gallery.fpir() * searches >= 1.0,
    }


def identification_line(ident: dict[str, Any], size: int) -> str:
    """The open-set operating point in words, warning when the calibration is too small for the FPIR."""
    line = (
        f"FPIR {ident['fpir']:g}: threshold {ident['threshold']:.4f} ({ident['fusion']} fusion, "
        f"{ident['nonmated_searches']} non-mated searches, N = {size})"
    )
    if not ident["resolvable"]:
        line += (
            f"; {ident['nonmated_searches']} searches cannot resolve FPIR {ident['fpir']:g}: "
            "the threshold rejects every one of them (calibrate on more identities)"
        )
    return line


def _show(gallery: Gallery, where: Path) -> dict[str, Any]:
    counts = [len(r) for r in gallery.references]
    out: dict[str, Any] = {
        "gallery": str(where),
        "model": gallery.model,
        "identities": gallery.size,
        "references": sum(counts),
        "fusions": list(gallery.fusions),
        "index": gallery.info.get("index", {"backend": "exact"}),
    }
    if gallery.calibration is not None:
        out["identification"] = identification_summary(gallery)
    return out


def _print(summary: dict[str, Any], title: str) -> None:
    table = Table(title=title, show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("gallery", summary["gallery"])
    table.add_row("model", summary["model"])
    table.add_row("identities", f"{summary['identities']} ({summary['references']} references)")
    table.add_row("fusion rules", ", ".join(summary["fusions"]))
    ident = summary.get("identification")
    if ident is None:
        table.add_row("identification", "not calibrated (enrolled before 1:N): enrol again")
    else:
        table.add_row("identification", identification_line(ident, summary["identities"]))
    table.add_row("search", describe_index(summary["index"]))
    console.print(table)


def _report(gallery: Gallery, where: Path, title: str, json_output: bool) -> None:
    summary = _show(gallery, where)
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print(summary, title)


@gallery_app.command("show", cls=Command)
def show_command(gallery: GalleryArg, json_output: JsonOpt = False) -> None:
    """Describe a gallery: model, identities, open-set operating point, search backend."""
    with user_errors():
        from siamese.galleries import Gallery

        _report(Gallery.load(gallery), gallery, "siamese gallery", json_output)


@gallery_app.command("remove", cls=Command)
def remove_command(gallery: GalleryArg, identities: IdentitiesArg, json_output: JsonOpt = False) -> None:
    """Remove enrolled identities: they are never returned again; thresholds and the index follow."""
    with user_errors():
        from siamese.galleries.enroll import remove_identities

        written = remove_identities(gallery, identities)
    if not json_output:
        console.print(
            f"removed {len(set(identities))} identities from {gallery}", highlight=False, markup=False
        )
    _report(written, gallery, "siamese gallery remove", json_output)


@gallery_app.command("index", cls=Command)
def index_command(
    gallery: GalleryArg,
    backend: BackendArg,
    index_option: IndexOptionOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Search the gallery with another backend: builds it from the references and checks its top-1
    agreement with exact search on held-out queries."""
    with user_errors():
        from siamese.galleries import Gallery
        from siamese.galleries.index import save_gallery

        written = save_gallery(
            Gallery.load(gallery), gallery, backend=backend, options=backend_options(index_option)
        )
    _report(written, gallery, "siamese gallery index", json_output)

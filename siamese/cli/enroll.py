"""`siamese enroll DATA --model RUN --out GALLERY`: enrol identities (or add them), calibrate thresholds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from siamese.cli.common import console, model_or_latest, user_errors
from siamese.cli.evaluate import EmbeddingBar
from siamese.cli.gallery import describe_index, identification_line, identification_summary
from siamese.cli.options import (
    AddOpt,
    BatchSizeOpt,
    CalibrationOpt,
    DetectOpt,
    DeviceOpt,
    EmbeddingsInOpt,
    EnrollDataArg,
    FpirOpt,
    FusionsOpt,
    GalleryOutOpt,
    IndexOpt,
    IndexOptionOpt,
    JsonOpt,
    MaxReferencesOpt,
    ModelOpt,
    SeedOpt,
    WorkersOpt,
)

if TYPE_CHECKING:
    from siamese.galleries import Gallery


def _summary(gallery: Gallery, out: str) -> dict[str, Any]:
    counts = [len(r) for r in gallery.references]
    return {
        "gallery": out,
        "model": gallery.model,
        "identities": len(gallery.identities),
        "references": {"min": min(counts), "max": max(counts), "total": sum(counts)},
        "fusions": list(gallery.fusions),
        "calibration": {k: v for k, v in gallery.info["calibration"].items() if k != "label_names"},
        "identification": identification_summary(gallery),
        "index": gallery.info.get("index", {"backend": "exact"}),
        "thresholds": {
            fusion: {
                count: {k: e[k] for k in ("threshold", "eer", "n_identities")} for count, e in per.items()
            }
            for fusion, per in gallery.thresholds.items()
        },
    }


def _print_table(summary: dict[str, Any]) -> None:
    table = Table(title="siamese enroll", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    refs = summary["references"]
    cal = summary["calibration"]
    table.add_row("gallery", summary["gallery"])
    table.add_row("model", summary["model"])
    table.add_row("identities", f"{summary['identities']} ({refs['min']}-{refs['max']} references each)")
    table.add_row("calibrated on", f"{len(cal['identities'])} identities ({cal['source']}: {cal['data']})")
    ident = summary["identification"]
    table.add_row("identification", identification_line(ident, summary["identities"]))
    table.add_row("search", describe_index(summary["index"]))
    for fusion, per in summary["thresholds"].items():
        for count, entry in sorted(per.items(), key=lambda kv: int(kv[0])):
            table.add_row(
                f"{fusion}, R={count}",
                f"threshold {entry['threshold']:.4f}  ({cal['rule']}; calibration EER {entry['eer']:.2%})",
            )
    console.print(table)


def enroll_command(
    out: GalleryOutOpt,
    data: EnrollDataArg = None,
    model: ModelOpt = None,
    embeddings: EmbeddingsInOpt = None,
    add: AddOpt = False,
    detect: DetectOpt = False,
    references: MaxReferencesOpt = None,
    fusion: FusionsOpt = None,
    calibration: CalibrationOpt = None,
    fpir: FpirOpt = None,
    index: IndexOpt = None,
    index_option: IndexOptionOpt = None,
    seed: SeedOpt = 0,
    json_output: JsonOpt = False,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = 64,
    workers: WorkersOpt = 0,
) -> None:
    """Enrol every identity of DATA (its reference embeddings, per-identity SVMs) into a gallery, with
    1:1 thresholds per fusion rule and reference count and the open-set (1:N) calibration, both set on
    identities that are not enrolled. --add adds to an existing gallery."""
    with user_errors():
        from siamese.cli.gallery import backend_options
        from siamese.galleries.enroll import enroll

        options = backend_options(index_option)
        if add and model is None:  # the gallery's own model, not the latest run
            from siamese.galleries import Gallery

            model = Path(Gallery.load(out).model)
        model = model_or_latest(model, json_output)
        with EmbeddingBar() as bar:
            gallery = enroll(
                model,
                data,
                out,
                embeddings=embeddings,
                add=add,
                references=references,
                fusions=fusion,
                calibration=calibration,
                seed=seed,
                fpir=fpir,
                backend=index,
                backend_options=options,
                device=device,
                batch_size=batch_size,
                workers=workers,
                on_progress=bar,
                detect=detect,
            )
    summary = _summary(gallery, str(out))
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_table(summary)

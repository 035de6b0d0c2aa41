"""`siamese enroll DATA --model RUN --out GALLERY`: enrol identities and calibrate their thresholds."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from siamese.cli.common import console, model_or_latest, user_errors
from siamese.cli.evaluate import EmbeddingBar
from siamese.cli.options import (
    BatchSizeOpt,
    CalibrationOpt,
    DeviceOpt,
    EnrollDataArg,
    FusionsOpt,
    GalleryOutOpt,
    JsonOpt,
    MaxReferencesOpt,
    ModelOpt,
    SeedOpt,
    WorkersOpt,
)

if TYPE_CHECKING:
    from siamese.inference.gallery import Gallery


def _summary(gallery: Gallery, out: str) -> dict[str, Any]:
    counts = [len(r) for r in gallery.references]
    return {
        "gallery": out,
        "model": gallery.model,
        "identities": len(gallery.identities),
        "references": {"min": min(counts), "max": max(counts), "total": sum(counts)},
        "fusions": list(gallery.fusions),
        "calibration": gallery.info["calibration"],
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
    for fusion, per in summary["thresholds"].items():
        for count, entry in sorted(per.items(), key=lambda kv: int(kv[0])):
            table.add_row(
                f"{fusion}, R={count}",
                f"threshold {entry['threshold']:.4f}  ({cal['rule']}; calibration EER {entry['eer']:.2%})",
            )
    console.print(table)


def enroll_command(
    data: EnrollDataArg,
    out: GalleryOutOpt,
    model: ModelOpt = None,
    references: MaxReferencesOpt = None,
    fusion: FusionsOpt = None,
    calibration: CalibrationOpt = None,
    seed: SeedOpt = 0,
    json_output: JsonOpt = False,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = 64,
    workers: WorkersOpt = 0,
) -> None:
    """Enrol every identity of DATA (its reference embeddings, per-identity SVMs) into a gallery, with
    thresholds per fusion rule and reference count calibrated on identities that are not enrolled."""
    with user_errors():
        from siamese.inference.references import enroll

        model = model_or_latest(model, json_output)
        with EmbeddingBar() as bar:
            gallery = enroll(
                model,
                data,
                out,
                references=references,
                fusions=fusion,
                calibration=calibration,
                seed=seed,
                device=device,
                batch_size=batch_size,
                workers=workers,
                on_progress=bar,
            )
    summary = _summary(gallery, str(out))
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_table(summary)

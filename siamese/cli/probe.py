"""`siamese probe DATA --model RUN`: k-NN, linear-probe and one-shot accuracy of a frozen encoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from siamese.cli.common import console, embedding_progress, user_errors
from siamese.cli.options import BatchSizeOpt, DeviceOpt, ModelOpt, ReportJsonOpt

PROBE_PANEL = "Probe"


def _opt(help_text: str, **kwargs: Any) -> Any:
    return typer.Option(help=help_text, rich_help_panel=PROBE_PANEL, **kwargs)


def probe_command(
    model: ModelOpt,
    data: Annotated[
        Path | None,
        typer.Argument(help="Labelled folder, one sub-folder per identity (searched recursively)."),
    ] = None,
    oneshot_runs: Annotated[
        Path | None, _opt("Folder of N-way one-shot runs (Omniglot runNN/class_labels.txt).")
    ] = None,
    k: Annotated[int, _opt("Neighbours of the k-NN vote.", min=1)] = 20,
    knn_temperature: Annotated[float, _opt("k-NN vote weight exp(cos/T).", min=1e-6)] = 0.07,
    test_fraction: Annotated[
        float, _opt("Share of each identity's images held out as queries.", min=0.01, max=0.99)
    ] = 0.5,
    c: Annotated[float, _opt("Inverse L2 strength of the logistic-regression probe.", min=1e-8)] = 1.0,
    seed: Annotated[int, _opt("Seed of the per-identity split.")] = 0,
    batch_size: BatchSizeOpt = 128,
    device: DeviceOpt = "auto",
    out: Annotated[Path | None, typer.Option(help="Also write the report to this JSON file.")] = None,
    json_output: ReportJsonOpt = False,
) -> None:
    """Probe any run (train or pretrain) without fine-tuning it: k-NN, linear probe, one-shot."""
    with user_errors():
        from siamese.inference.probe import ProbeOptions, probe

        options = ProbeOptions(k, knn_temperature, test_fraction, c, seed, batch_size)
        with embedding_progress(console, disable=json_output or not console.is_terminal) as bar:
            task = bar.add_task("embedding", total=None)
            report = probe(model, data, oneshot_runs, options, device, lambda n: bar.advance(task, n))
    payload = json.dumps(report.to_dict(), indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(payload + "\n")
    if json_output:
        typer.echo(payload)
        return
    console.print(_table(report))


def _table(report) -> object:  # noqa: ANN001 - ProbeReport, imported lazily
    from siamese.cli.progress import summary_table

    rows = [("model", report.model)]
    if report.knn_accuracy is not None:
        rows += [
            ("identities / images", f"{report.identities} / {report.images} (skipped {report.skipped})"),
            ("labelled / queries", f"{report.memory} / {report.queries}"),
            (f"k-NN accuracy (k={report.options['k']})", f"{report.knn_accuracy:.2%}"),
            ("linear-probe accuracy", f"{report.linear_accuracy:.2%}"),
            ("embedding spread (1 healthy, 0 collapsed)", f"{report.spread:.3f}"),
        ]
    if report.one_shot_accuracy is not None:
        n_way = report.one_shot_runs[0]["n_way"]
        rows.append(
            (
                f"{n_way}-way one-shot accuracy ({len(report.one_shot_runs)} runs)",
                f"{report.one_shot_accuracy:.2%}",
            )
        )
    rows.append(("wall time", f"{report.seconds:.1f} s"))
    return summary_table("siamese probe", rows)

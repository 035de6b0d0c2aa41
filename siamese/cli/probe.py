"""`siamese probe DATA --model RUN`: k-NN, linear-probe and one-shot accuracy of a frozen encoder."""

from __future__ import annotations

import json

import typer

from siamese.cli.common import console, embedding_progress, model_or_latest, user_errors
from siamese.cli.options import (
    BatchSizeOpt,
    DeviceOpt,
    JsonOpt,
    KnnTemperatureOpt,
    LinearCOpt,
    ModelOpt,
    NeighboursOpt,
    OneshotRunsOpt,
    ProbeDataArg,
    ProbeOutOpt,
    QueryFractionOpt,
    SeedOpt,
)


def probe_command(
    data: ProbeDataArg = None,
    model: ModelOpt = None,
    oneshot_runs: OneshotRunsOpt = None,
    k: NeighboursOpt = 20,
    knn_temperature: KnnTemperatureOpt = 0.07,
    test_fraction: QueryFractionOpt = 0.5,
    c: LinearCOpt = 1.0,
    seed: SeedOpt = 0,
    batch_size: BatchSizeOpt = 128,  # the probe's own default (ProbeOptions)
    device: DeviceOpt = "auto",
    out: ProbeOutOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Probe any run (train or pretrain) without fine-tuning it: k-NN, linear probe, one-shot."""
    with user_errors():
        from siamese.inference.probe import ProbeOptions, probe

        model = model_or_latest(model, json_output)
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

"""`siamese evaluate`: verification (pairs, k-fold) or one-shot evaluation of a trained model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from siamese.cli.common import (
    console,
    embedding_progress,
    err_console,
    given_flags,
    model_or_latest,
    user_errors,
)
from siamese.cli.options import (
    BatchSizeOpt,
    CalibrationOpt,
    DeviceOpt,
    EvalDataArg,
    FoldsOpt,
    ForgeriesOpt,
    FusionsOpt,
    JsonOpt,
    ModelOpt,
    NumPairsOpt,
    PairsFileOpt,
    ProtocolOpt,
    ReferenceCountsOpt,
    ReportDirOpt,
    SeedOpt,
    SplitOpt,
    TtaOpt,
    WorkersOpt,
)
from siamese.cli.references import reference_rows, references_table
from siamese.errors import ConfigError


class EmbeddingBar:
    """A transient rich progress bar fed by the `on_progress(done, total)` callback of `evaluate`."""

    def __init__(self) -> None:
        self.progress = embedding_progress(err_console)
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("embed", total=total)
        self.progress.update(self.task, completed=done, total=total)

    def __enter__(self) -> EmbeddingBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _check_flags(protocol: str, pairs: Path | None, given: set[str]) -> None:
    """Refuse flags (`given` on the command line) that the chosen protocol would ignore."""
    if protocol == "identify":
        flags = ["--pairs", "--forgeries", "--num-pairs", "--folds", "--calibration", "--tta"]
        reason = "with --protocol identify (it enrols, calibrates and searches the split's identities)"
    elif "--references" not in given:
        unused = [flag for flag in ("--fusion", "--calibration") if flag in given]
        if unused:
            raise ConfigError(f"{', '.join(unused)} only apply with --references or --protocol identify")
        flags, reason = [], ""
    elif protocol != "pairs" or pairs is not None or "--num-pairs" in given:
        raise ConfigError("--references enrols the split's images: no --pairs, --num-pairs or other protocol")
    else:
        flags, reason = [], ""
    if protocol != "kfold" and "--folds" in given and pairs is None and protocol != "identify":
        raise ConfigError("--folds is only used with --protocol kfold or an LFW pairs file with folds")
    if protocol == "oneshot":
        flags = ["--pairs", "--forgeries", "--split", "--num-pairs", "--seed"]
        reason = "with --protocol oneshot (DATA is a folder of one-shot runs)"
    elif pairs is not None and protocol != "identify":
        flags = ["--forgeries", "--split", "--num-pairs", "--seed"]
        reason = "with --pairs (the file fixes the pairs)"
    bad = [flag for flag in flags if flag in given]
    if bad:
        raise ConfigError(f"{', '.join(bad)} cannot be used {reason}")


def reference_counts(values: list[str]) -> list[int]:
    """`--references 1,3 --references 5` -> [1, 3, 5].

    Raises:
        ConfigError: a value that is not a positive integer.
    """
    try:
        counts = [int(v) for value in values for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--references takes integers such as 1,3,5, got {', '.join(values)!r}") from None
    if not counts or min(counts) < 1:
        raise ConfigError(f"--references counts must be >= 1, got {', '.join(values)!r}")
    return sorted(set(counts))


def _out_name(protocol: str, pairs: Path | None, split: str) -> str:
    """Default output folder name: `eval-<split>`, `eval-<pairs file stem>` or `eval-oneshot`."""
    if protocol == "oneshot":
        return "eval-oneshot"
    base = f"eval-{pairs.stem}" if pairs is not None else f"eval-{split}"
    return base + {"kfold": "-kfold", "identify": "-identify"}.get(protocol, "")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2%}"


def _verification_rows(table: Table, report: dict[str, Any]) -> None:
    v = report["verification"]
    table.add_row(
        "pairs", f"{v['n_genuine'] + v['n_impostor']} ({v['n_genuine']} genuine / {v['n_impostor']} impostor)"
    )
    table.add_row("images embedded", str(report["n_images"]))
    table.add_row("EER", f"{_pct(v['eer'])}  (at distance {v['eer_threshold']:.4f})")
    table.add_row("AUC", f"{v['auc']:.4f}")
    for key, label in (("tar@far=0.01", "TAR @ FAR=1e-2"), ("tar@far=0.001", "TAR @ FAR=1e-3")):
        table.add_row(label, _pct(v[key]))
    if "accuracy" in v:
        table.add_row(
            f"at stored threshold {v['threshold']:.4f}",
            f"accuracy {_pct(v['accuracy'])}  (FAR {_pct(v['far'])}, FRR {_pct(v['frr'])})",
        )
    r = report.get("retrieval")
    if r is not None:
        table.add_row("precision@1", f"{r['precision_at_1']:.4f}")
        table.add_row("MAP@R", f"{r['mean_average_precision_at_r']:.4f}")
    k = report.get("kfold")
    if k is not None:
        table.add_row(
            f"{k['n_folds']}-fold accuracy",
            f"{_pct(k['accuracy_mean'])} ± {_pct(k['accuracy_se'])} (standard error; "
            f"fold std {_pct(k['accuracy_std'])})",
        )
        table.add_row(f"{k['n_folds']}-fold AUC / EER", f"{k['auc_mean']:.4f} / {_pct(k['eer_mean'])}")
        for key, label in (("tar@far=0.01", "1e-2"), ("tar@far=0.001", "1e-3")):
            table.add_row(
                f"{k['n_folds']}-fold TAR @ FAR={label}",
                f"{_pct(k[f'{key}_mean'])} ± {_pct(k[f'{key}_std'])}",
            )


def _oneshot_rows(table: Table, report: dict[str, Any]) -> None:
    o = report["oneshot"]
    ways = sorted({r["n_way"] for r in o["runs"]})
    table.add_row("one-shot runs", f"{o['n_runs']} ({'/'.join(map(str, ways))}-way)")
    table.add_row("one-shot mean accuracy", f"{_pct(o['mean_accuracy'])} ± {_pct(o['std_accuracy'])}")


def _identify_rows(table: Table, part: dict[str, Any]) -> None:
    who = part["identities"]
    table.add_row(
        "identities",
        f"{who['enrolled']} enrolled, {who['calibration']} calibrating the thresholds, "
        f"{who['fresh']} fresh strangers (seed {part['seed']})",
    )


def identification_table(part: dict[str, Any]) -> Table:
    """Per R and fusion rule: N, CMC, and FNIR at each FPIR with the FPIR reached on fresh strangers."""
    first = next(iter(next(iter(part["counts"].values())).values()))
    rates = list(first["open_set"])
    table = Table(title="open-set identification (FNIR at FPIR; FPIR measured on fresh strangers)")
    for column in ["R", "fusion", "N", *first["cmc"], *(r.replace("fpir=", "FNIR@") for r in rates)]:
        table.add_column(column, justify="left" if column in ("R", "fusion") else "right")
    for count, per in part["counts"].items():
        for fusion, entry in per.items():
            cells = [f"{v:.1%}" for v in entry["cmc"].values()]
            for rate in rates:
                point = entry["open_set"][rate]
                mark = "" if point["resolvable"] else "*"
                cells.append(f"{point['fnir']:.1%} ({point['fpir_fresh']:.1%}){mark}")
            table.add_row(count, fusion, str(entry["gallery_size"]), *cells)
    table.caption = "* fewer calibration searches than 1/FPIR: the threshold rejects every one of them"
    return table


def _print_table(report: dict[str, Any]) -> None:
    table = Table(title=f"siamese evaluate ({report['protocol']})", show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("model", report["model"])
    table.add_row("data", report["data"])
    if report["protocol"] == "oneshot":
        _oneshot_rows(table, report)
    elif report["protocol"] == "identify":
        _identify_rows(table, report["identification"])
    elif "references" in report:
        reference_rows(table, report)
    else:
        _verification_rows(table, report)
    files = report.get("files", {})
    if "report" in files:
        table.add_row("report written to", files["report"])
    plots = [Path(files[k]).name for k in ("roc", "det", "distances") if k in files]
    if plots:
        table.add_row("plots", f"{', '.join(plots)} in {Path(files['roc']).parent}")
    console.print(table)
    if "references" in report:
        console.print(references_table(report["references"]))
    if "identification" in report:
        console.print(identification_table(report["identification"]))
        if "files" in report["identification"]:
            console.print(f"DIR/FPIR curve: {report['identification']['files']['dir_fpir']}", highlight=False)


def evaluate_command(
    ctx: typer.Context,
    data: EvalDataArg,
    model: ModelOpt = None,
    pairs: PairsFileOpt = None,
    forgeries: ForgeriesOpt = None,
    protocol: ProtocolOpt = "pairs",
    split: SplitOpt = None,
    num_pairs: NumPairsOpt = 2000,
    folds: FoldsOpt = None,
    seed: SeedOpt = 0,
    references: ReferenceCountsOpt = None,
    fusion: FusionsOpt = None,
    calibration: CalibrationOpt = None,
    out: ReportDirOpt = None,
    json_output: JsonOpt = False,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = 64,
    workers: WorkersOpt = 0,
    tta: TtaOpt = None,
) -> None:
    """Evaluate a trained model on DATA: EER, AUC, TAR@FAR, accuracy at its threshold, plots."""
    with user_errors():
        given = given_flags(ctx)
        _check_flags(protocol, pairs, given)
        from siamese.inference.evaluate import evaluate
        from siamese.models.checkpoint import run_of

        model = model_or_latest(model, json_output)
        split = split or "test"
        counts = reference_counts(references) if references is not None else []
        name = _out_name(protocol, pairs, split) + (
            "-references" if counts and protocol != "identify" else ""
        )
        out = out or run_of(model).path / name
        with EmbeddingBar() as bar:
            report = evaluate(
                model,
                data,
                pairs_file=pairs,
                forgeries=forgeries,
                protocol=protocol,
                split=split,
                num_pairs=num_pairs,
                seed=seed,
                folds=folds,
                references=counts,
                fusions=fusion,
                calibration=calibration,
                out_dir=out,
                device=device,
                batch_size=batch_size,
                workers=workers,
                on_progress=bar,
                tta=tta,
            )
        if json_output:
            typer.echo(json.dumps(report, indent=2))
        else:
            _print_table(report)

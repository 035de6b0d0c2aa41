"""The console tables of `siamese evaluate --references`: the protocol's summary rows and one line per
reference count, fusion rule and kind of impostor."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2%}"


def reference_rows(table: Table, report: dict[str, Any]) -> None:
    """Rows of the key-value report table: split, seed, calibration, identities per count."""
    part = report["references"]
    cal = part["calibration"]
    table.add_row("identities of split", str(report.get("split")))
    table.add_row("references drawn with seed", str(part["seed"]))
    if "error" in cal:
        table.add_row("calibration", f"none: {cal['error']}")
    else:
        table.add_row(
            "thresholds calibrated on",
            f"{len(cal['identities'])} other identities ({cal['source']}: {cal['data']}), {cal['rule']} rule",
        )
    for count, entry in part["counts"].items():
        text = f"{entry['n_identities']} identities, {entry['n_queries']} query images"
        if entry["skipped"]:
            text += f", {entry['skipped']} identities skipped (fewer than {int(count) + 1} images)"
        table.add_row(f"R={count}", text + (f"  ({entry['error']})" if "error" in entry else ""))


def references_table(part: dict[str, Any]) -> Table:
    """One row per reference count, fusion rule and kind of impostor (random, skilled)."""
    table = Table(
        title="verification with R references per identity (more metrics in report.json)",
        box=box.SIMPLE_HEAD,  # narrow borders: the 10 columns fit an 80-column terminal
    )
    for name, width in (("R", 2), ("fusion", 8), ("impostor", 7), ("trials", 7), ("EER", 6)):
        table.add_column(name, no_wrap=True, min_width=width)
    for name, width in (("AUC", 5), ("TAR@1e-2", 6), ("threshold", 7), ("acc", 6)):
        table.add_column(name, no_wrap=True, min_width=width)  # acc at the threshold
    for count, entry in part["counts"].items():
        for fusion, result in entry.get("fusion", {}).items():
            for kind in ("random", "skilled"):
                if kind not in result:
                    continue
                v = result[kind]
                at = "n/a" if result["threshold"] is None else f"{result['threshold']:.4f}"
                accuracy = "n/a"
                if "accuracy" in v:
                    accuracy = f"{v['accuracy']:.2%}"
                table.add_row(
                    count,
                    fusion,
                    kind,
                    f"{v['n_genuine']}/{v['n_impostor']}",
                    _pct(v["eer"]),
                    f"{v['auc']:.3f}",
                    _pct(v["tar@far=0.01"]),
                    at,
                    accuracy,
                )
    return table

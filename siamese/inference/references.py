"""Pipelines of the R-reference protocol: `evaluate --references`, and the calibration set galleries use.

Both embed their images once through `siamese.inference.embedding.embed_files` and leave the
protocol to the pure functions of `siamese.evaluation.references`. Thresholds are calibrated on a
labelled CALIBRATION set that shares no image with the enrolled or evaluated identities: by default
the validation identities of the model's run (its `split.json`, its `config.json` data root and
forgeries), else a folder given as `calibration`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from siamese.data import ImageIndex, load_split_index, materialize_embedded, scan_folder
from siamese.errors import ConfigError, DataError
from siamese.evaluation.references import (
    calibratable_count,
    calibrate_references,
    check_fusions,
    reference_metrics,
)
from siamese.inference.model import Embed, EmbeddingModel
from siamese.runs import RunDir, validation_split_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedSet:
    """The genuine images (and skilled forgeries) of an index, embedded.

    Attributes:
        paths: `(N,)` genuine image files; `embeddings` `(N, D)`; `labels` `(N,)` identities.
        forgery_paths, forgery_embeddings `(F, D)`, forgery_labels: the forgeries and whom they imitate.
    """

    paths: list[str]
    embeddings: np.ndarray
    labels: np.ndarray
    forgery_paths: list[str]
    forgery_embeddings: np.ndarray
    forgery_labels: np.ndarray

    @property
    def forgeries(self) -> tuple[np.ndarray, np.ndarray] | None:
        """`(embeddings, labels)` of the forgeries, or None without any."""
        return (self.forgery_embeddings, self.forgery_labels) if self.forgery_paths else None


def embed_indexes(embed: Embed, *indexes: ImageIndex) -> list[EmbeddedSet]:
    """Embed the images of each index on their own, in the index's order.

    An index's embeddings never depend on the other indexes (which images share a batch with
    them), so a calibration set embeds to the same bits whatever is enrolled or evaluated beside it.
    """
    out = []
    for index in indexes:
        real = [r for r in index.records if not r.forgery]
        fake = [r for r in index.records if r.forgery]
        emb = embed([r.path for r in real + fake])  # (N + F, D)
        out.append(
            EmbeddedSet(
                paths=[r.path for r in real],
                embeddings=emb[: len(real)],
                labels=np.array([r.identity for r in real], dtype=str),
                forgery_paths=[r.path for r in fake],
                forgery_embeddings=emb[len(real) :],
                forgery_labels=np.array([r.identity for r in fake], dtype=str),
            )
        )
    return out


def calibration_index(
    run_dir: str | os.PathLike, calibration: str | os.PathLike | None = None
) -> tuple[ImageIndex, dict[str, Any]]:
    """The labelled calibration set: `calibration` (every identity in it), else the run's validation
    identities (with their skilled forgeries, if the run had some).

    Returns:
        The index and a description for the gallery or report.

    Raises:
        ConfigError: no `calibration` and the run records no usable validation split or data root.
        DataError: an unusable `calibration` folder.
    """
    if calibration is not None:
        index = scan_folder(calibration)
        return index, {"source": "folder", "data": str(Path(calibration).absolute()), "split": "all"}
    hint = "pass --calibration DIR (a labelled folder of identities that are neither enrolled nor evaluated)"
    run = RunDir(run_dir)
    trained_on = validation_split_of(run, hint)
    root, forgeries = trained_on.root, trained_on.forgeries
    if root is None:
        if trained_on.preset is None:
            raise ConfigError(f"{run.config_file} records neither a data folder nor a preset; {hint}")
        root = str(materialize_embedded(trained_on.preset))
    if not Path(root).is_dir():
        raise ConfigError(f"the run's data folder {root} (in {run.config_file}) is not available; {hint}")
    if forgeries is not None and not Path(forgeries).is_dir():
        logger.warning(
            "the run's forgeries %s are not available; calibrating on genuine images only", forgeries
        )
        forgeries = None
    try:
        index = load_split_index(root, forgeries, run.path, "val")
    except DataError as exc:
        raise ConfigError(f"cannot use the run's validation identities: {exc}; {hint}") from None
    info = {
        "source": "run validation identities",
        "data": str(Path(root).absolute()),
        "forgeries": None if forgeries is None else str(Path(forgeries).absolute()),
        "split": "val",
    }
    return index, info


def shared_images(a: ImageIndex, b: ImageIndex) -> int:
    """How many images of `b` are also images of `a` (by real path)."""
    real = {os.path.realpath(r.path) for r in a.records}
    return sum(os.path.realpath(r.path) in real for r in b.records)


def check_counts(counts: Sequence[int]) -> list[int]:
    """Sorted distinct reference counts, each an integer >= 1.

    Raises:
        ConfigError: an empty list or a count below 1.
    """
    bad = [c for c in counts if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1]
    if not counts or bad:
        raise ConfigError(f"reference counts must be integers >= 1, got {list(counts)!r}")
    return sorted({int(c) for c in counts})


def evaluate_references(
    embed: Embed,
    index: ImageIndex,
    model: EmbeddingModel,
    counts: Sequence[int],
    fusions: Sequence[str] | None = None,
    seed: int = 0,
    calibration: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The `references` part of an evaluation report: per R and fusion rule, the metrics of the
    evaluated identities at thresholds calibrated on the calibration set.

    Without a usable calibration set (or when it shares images with the evaluated identities) the
    metrics are reported without a threshold and `calibration` says why.
    """
    counts, chosen = check_counts(counts), check_fusions(fusions)
    rule, target_far = model.info.threshold_rule, model.info.target_far
    try:
        cal_index, cal_info = calibration_index(model.run.path, calibration)
    except ConfigError as exc:
        cal_index, cal_info = None, {"error": str(exc)}
    if cal_index is not None and shared_images(index, cal_index):
        cal_info = {**cal_info, "error": "the calibration set shares images with the evaluated identities"}
        cal_index = None
    if cal_index is None:
        logger.warning("no calibrated thresholds: %s", cal_info["error"])
        (evaluated,) = embed_indexes(embed, index)
        thresholds: dict[str, dict[str, dict[str, Any]]] = {}
    else:
        evaluated, cal = embed_indexes(embed, index, cal_index)
        reachable = [c for c in counts if c <= calibratable_count(cal.labels)]
        if len(reachable) < len(counts):
            cal_info["uncalibrated_counts"] = [c for c in counts if c not in reachable]
            logger.warning("the calibration set cannot calibrate R=%s", cal_info["uncalibrated_counts"])
        thresholds = calibrate_references(
            cal.embeddings,
            cal.labels,
            reachable,
            chosen,
            model.distance,
            rule,
            target_far,
            seed,
            cal.forgeries,
        )
        cal_info["identities"] = sorted(set(cal.labels.tolist()))
    metrics = reference_metrics(
        evaluated.embeddings,
        evaluated.labels,
        counts,
        chosen,
        model.distance,
        seed,
        evaluated.forgeries,
        thresholds,
        names=evaluated.paths,
    )
    cal_info.update(rule=rule, target_far=target_far if rule == "far" else None)
    for fusion, per in thresholds.items():
        for count, entry in per.items():
            metrics["counts"][count].setdefault("calibration", {})[fusion] = {
                k: v for k, v in entry.items() if k != "calibration"
            }
    return {"references": {**metrics, "calibration": cal_info}}

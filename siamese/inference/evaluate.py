"""The evaluation pipeline: a checkpoint and a dataset in, a report dict (and files) out.

This is the stateful wrapper around the pure metric functions of `siamese.evaluation`: it loads
the model, reads or generates the pairs, embeds every unique image once, scores the pairs with the
model's distance and writes `report.json` plus plots. It imports torch, so `siamese.evaluation`
is a pipeline beside `verifier`, `writers` and `export`; import it as `siamese.inference.evaluate`.

Every threshold in the report is a DISTANCE (same if `distance <= threshold`), like the
checkpoint's own `threshold`: the pairs are scored with `siamese.evaluation.distances`, the one
place that turns distances into the "higher = same" scores of the metric functions.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siamese.data import (
    ImageIndex,
    generate_pairs,
    list_oneshot_runs,
    load_split_index,
    read_oneshot_run,
    read_pair_list,
)
from siamese.errors import ConfigError
from siamese.evaluation import (
    as_scores,
    distance_report,
    kfold_distance_report,
    n_way_one_shot_accuracy,
    plot_det,
    plot_roc,
    plot_score_histograms,
    retrieval_metrics,
)
from siamese.inference.embedding import ProgressCallback
from siamese.inference.model import Embed, EmbeddingModel
from siamese.inference.references import evaluate_references
from siamese.names import check_choice

logger = logging.getLogger(__name__)

PROTOCOLS = ("pairs", "kfold", "oneshot", "identify")
IDENTIFY_COUNTS = (1, 5)  # reference counts of the identify protocol when none are given
REPORT_FARS = (1e-1, 1e-2, 1e-3)
KFOLD_FARS = (1e-2, 1e-3)
REPORT_FILE = "report.json"
PLOT_FILES = {
    "roc": "roc.png",
    "det": "det.png",
    "distances": "distances.png",
    "dir_fpir": "dir_fpir.png",
}

Pair = tuple[str, str, bool]


def index_pairs(pairs: Sequence[Pair]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Unique image paths (first-seen order) and, per pair, the positions of its images in them.

    Returns:
        paths, first (P,), second (P,), is_same (P,) bool.
    """
    position: dict[str, int] = {}
    first = [position.setdefault(a, len(position)) for a, _, _ in pairs]
    second = [position.setdefault(b, len(position)) for _, b, _ in pairs]
    is_same = np.array([bool(s) for _, _, s in pairs], dtype=bool)
    return list(position), np.array(first, dtype=np.int64), np.array(second, dtype=np.int64), is_same


def retrieval_report(
    emb: np.ndarray, labels: Sequence[str], distance: str, device: str
) -> dict[str, float] | None:
    """Leave-one-out retrieval metrics, or None when no identity has two images (or only one identity)."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    if len(counts) < 2 or counts.max() < 2:
        return None
    return retrieval_metrics(emb, labels, k="max_bin_count", distance=distance, device=device)


def _genuine_labels_from_file(pairs: Sequence[Pair]) -> dict[str, str]:
    """Images of genuine pairs (surely genuine), labelled by their folder."""
    return {p: os.path.dirname(p) for a, b, same in pairs if same for p in (a, b)}


def _genuine_labels_from_index(index: ImageIndex) -> dict[str, str]:
    return {r.path: r.identity for r in index.records if not r.forgery}


def _pair_source(
    data_root: str | os.PathLike,
    run_dir: Path,
    pairs_file: str | os.PathLike | None,
    forgeries: str | os.PathLike | None,
    split: str,
    num_pairs: int,
    seed: int,
    forgery_fraction: float,
) -> tuple[list[Pair], dict[str, str], dict[str, Any]]:
    """The pairs, the genuine images' identity labels, and a description for the report."""
    if pairs_file is not None:
        pair_list = read_pair_list(pairs_file, data_root)
        pairs = pair_list.pairs
        info: dict[str, Any] = {"source": "file", "file": str(Path(pairs_file).absolute())}
        if pair_list.folds is not None:
            info["folds"] = pair_list.folds
        return pairs, _genuine_labels_from_file(pairs), info
    index = load_split_index(data_root, forgeries, run_dir, split)
    pairs = generate_pairs(index, num_pairs, seed=seed, forgery_fraction=forgery_fraction)
    info = {
        "source": "generated",
        "split": split,
        "num_pairs": num_pairs,
        "seed": seed,
        "forgeries": None if forgeries is None else str(Path(forgeries).absolute()),
        "n_identities": len(index.identities),
    }
    return pairs, _genuine_labels_from_index(index), info


def _write_plots(
    out_dir: Path, distances: np.ndarray, is_same: np.ndarray, model: EmbeddingModel
) -> dict[str, str]:
    scores = as_scores(distances)  # higher = more likely the same
    roc = plot_roc(scores, is_same, out_dir / PLOT_FILES["roc"], title="ROC", negated_distance=True)
    det = plot_det(scores, is_same, out_dir / PLOT_FILES["det"], title="DET", negated_distance=True)
    hist = plot_score_histograms(
        distances,
        is_same,
        model.info.threshold,
        out_dir / PLOT_FILES["distances"],
        xlabel=f"{model.distance} distance",
    )
    return {"roc": str(roc), "det": str(det), "distances": str(hist)}


def _oneshot_report(embed: Embed, data_root: str | os.PathLike, distance: str) -> dict:
    runs = [read_oneshot_run(path) for path in list_oneshot_runs(data_root)]
    position: dict[str, int] = {}
    for run in runs:
        for path in run.support_paths + run.query_paths:
            position.setdefault(path, len(position))
    emb = embed(list(position))  # (N, D), each unique image once

    def rows(paths: Sequence[str]) -> np.ndarray:
        return emb[[position[p] for p in paths]]

    per_run: list[dict[str, Any]] = [
        {
            "name": run.name,
            "n_way": run.n_way,
            "n_queries": len(run.query_paths),
            "accuracy": n_way_one_shot_accuracy(
                rows(run.support_paths), run.support_labels, rows(run.query_paths), run.query_labels, distance
            ),
        }
        for run in runs
    ]
    accuracies = [r["accuracy"] for r in per_run]
    return {
        "n_images": len(position),
        "oneshot": {
            "n_runs": len(runs),
            "mean_accuracy": float(np.mean(accuracies)),
            "std_accuracy": float(np.std(accuracies)),
            "runs": per_run,
        },
    }


def _verification_protocol(
    model: EmbeddingModel,
    embed: Embed,
    pairs: Sequence[Pair],
    labels: dict[str, str],
    folds: int | None,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Embed each unique image once, score the pairs, and build the verification (+ k-fold when
    `folds` is given, retrieval) part.

    Returns:
        The report part, the pair distances (P,) and is_same (P,).
    """
    paths, first, second, is_same = index_pairs(pairs)
    emb = embed(paths)  # (N, D)
    distances = model.pair_distance(emb[first], emb[second])  # (P,)
    part: dict[str, Any] = {
        "n_images": len(paths),
        "verification": distance_report(distances, is_same, model.info.threshold, fars=REPORT_FARS),
    }
    if folds is not None:
        part["kfold"] = kfold_distance_report(distances, is_same, folds=folds, fars=KFOLD_FARS)
    keep = [i for i, p in enumerate(paths) if p in labels]  # embedded genuine images
    part["retrieval"] = (
        retrieval_report(emb[keep], [labels[paths[i]] for i in keep], model.distance, str(model.device))
        if keep
        else None
    )
    return part, distances, is_same


def _identify_report(
    embed: Embed,
    index: ImageIndex,
    distance: str,
    counts: Sequence[int],
    fusions: Sequence[str] | None,
    seed: int,
    out: Path | None,
) -> dict[str, Any]:
    """The identify protocol on the split's genuine images (and the DIR/FPIR plot into `out`)."""
    from siamese.evaluation import plot_dir_fpir
    from siamese.galleries.protocol import identification_protocol

    real = [r for r in index.records if not r.forgery]
    emb = embed([r.path for r in real])  # (N, D)
    labels = [r.identity for r in real]
    part = identification_protocol(
        emb, labels, distance, counts or IDENTIFY_COUNTS, fusions, seed, curves=True
    )
    curves = {}
    for count, per in part["counts"].items():
        for fusion, entry in per.items():
            curve = entry.pop("curve")
            curves[f"R={count}, {fusion}"] = (curve["fpir"], curve["dir"])
    if out is not None:
        sizes = {entry["gallery_size"] for per in part["counts"].values() for entry in per.values()}
        size = sizes.pop() if len(sizes) == 1 else None
        part["files"] = {
            "dir_fpir": str(plot_dir_fpir(curves, out / PLOT_FILES["dir_fpir"], gallery_size=size))
        }
    return part


def _check_options(
    protocol: str, pairs_file: object, forgeries: object, folds: int | None, batch_size: int, workers: int
) -> None:
    check_choice(protocol, PROTOCOLS, "protocol")
    if protocol == "oneshot" and (pairs_file is not None or forgeries is not None):
        raise ConfigError("the oneshot protocol reads its own runs; it takes no pairs file and no forgeries")
    if pairs_file is not None and forgeries is not None:
        raise ConfigError(
            "a pairs file already lists its impostors; forgeries are only used to generate pairs"
        )
    checked = [("batch_size", batch_size, 1), ("workers", workers, 0)] + (
        [("folds", folds, 2)] if folds is not None else []
    )
    for name, value, low in checked:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")


def _fold_count(protocol: str, folds: int | None, declared: int | None) -> int | None:
    """The folds of the k-fold part: the pairs file's declared ones (LFW), else `folds` (default
    10) under the "kfold" protocol, else None (no k-fold part).

    Raises:
        ConfigError: `folds` disagrees with the folds the pairs file declares.
    """
    if declared is not None:
        if folds is not None and folds != declared:
            raise ConfigError(
                f"the pairs file declares {declared} folds in its header; --folds {folds} disagrees"
            )
        return declared
    return (10 if folds is None else folds) if protocol == "kfold" else None


def _json_safe(value: Any) -> Any:
    """Plain JSON types; NaN and infinities (e.g. an unreachable FAR threshold) become None."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def evaluate(
    model_path: str | os.PathLike,
    data_root: str | os.PathLike,
    *,
    pairs_file: str | os.PathLike | None = None,
    forgeries: str | os.PathLike | None = None,
    protocol: str = "pairs",
    split: str = "test",
    num_pairs: int = 2000,
    seed: int = 0,
    folds: int | None = None,
    forgery_fraction: float = 0.5,
    references: Sequence[int] = (),
    fusions: Sequence[str] | None = None,
    calibration: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    workers: int = 0,
    on_progress: ProgressCallback | None = None,
    tta: str | None = None,
) -> dict[str, Any]:
    """Evaluate a trained model on a dataset under one protocol.

    Protocols:
        "pairs": verification on pairs read from `pairs_file` or generated deterministically
            (`generate_pairs` with `num_pairs`, `seed`, `forgery_fraction`) on the identities of the
            run's `split` ("all" = every identity of `data_root`). Reports EER, AUC, TAR@FAR,
            accuracy/FAR/FRR at the checkpoint's threshold, plus retrieval metrics over the
            embedded genuine images (their identity: the index's for generated pairs, the folder
            of the images of genuine pairs for a pairs file).
        "kfold": the same plus the LFW k-fold protocol (`folds` contiguous blocks of the pairs).
            A pairs file whose header declares folds (LFW's `10<TAB>300`) gets the k-fold part
            under either protocol, over its own folds.
        "oneshot": `data_root` is an Omniglot `one_shot_runs` folder; per-run N-way accuracy and mean.
        "identify": open-set 1:N identification (`siamese.galleries.protocol`) on the identities of
            the `split`: half enrolled with R references (`references`, default 1 and 5), a quarter
            calibrating the FPIR thresholds, a quarter of fresh strangers measuring them; CMC rank
            1/5/10 and FNIR at FPIR 0.003/0.01/0.1 per R and fusion rule, with the gallery size N,
            and the DIR/FPIR curve (`dir_fpir.png`).

    Args:
        model_path: run directory, checkpoint stem or checkpoint file.
        data_root: identity-folder root, or the one-shot runs folder.
        pairs_file: LFW-style or CSV pair list (its paths relative to `data_root`); `split`,
            `num_pairs`, `seed` and `forgery_fraction` are then not used.
        forgeries: skilled-forgery root for generated pairs.
        protocol: "pairs", "kfold" or "oneshot".
        split: "test", "val", "train" or "all".
        num_pairs: pairs to generate.
        seed: seed of the generated pairs.
        folds: number of folds of the "kfold" protocol (default: the pairs file's declared folds,
            else 10); it must agree with a pairs file that declares its folds.
        forgery_fraction: share of generated impostors that are forgeries (when there are some).
        references: reference counts R; instead of pairs, each identity of the `split` enrols R
            seeded genuine images and its other images, its forgeries and other identities'
            images are its queries (`siamese.inference.references.evaluate_references`), scored by
            every rule of `fusions` at thresholds calibrated on `calibration` (default: the run's
            validation identities). No plots are written.
        fusions: fusion rules of `references` (default: all).
        calibration: labelled folder of other identities calibrating the thresholds of `references`.
        out_dir: if given, `report.json` (and for pairs/kfold `roc.png`, `det.png`, `distances.png`)
            are written there.
        device: where the model runs ("auto" = CUDA when available).
        batch_size: images per forward pass.
        workers: DataLoader processes decoding images.
        on_progress: called with (images embedded, total) after every batch.
        tta: test-time augmentation of every embedding, "none" or "flip"; None = the model's
            default (recorded by `siamese train --tta`).

    Returns:
        The JSON-serialisable report (infinite values are None).

    Raises:
        ConfigError: bad options. DataError: bad data or pairs file (naming the line).
        ImageError: undecodable images. CheckpointError: bad model path.
    """
    _check_options(protocol, pairs_file, forgeries, folds, batch_size, workers)
    if references and (protocol not in ("pairs", "identify") or pairs_file is not None):
        raise ConfigError("references are enrolled from the split's identities: no pairs file, no kfold")
    model = EmbeddingModel.from_checkpoint(model_path, device=device, tta=tta)
    run_dir = model.run.path
    embed = model.embedder(batch_size, workers, on_progress)

    report: dict[str, Any] = {
        "protocol": protocol,
        "model": str(Path(model.source).absolute()),
        "run_dir": str(run_dir.absolute()),
        "data": str(Path(data_root).absolute()),
        "distance": model.distance,
        "threshold": model.info.threshold,
        "threshold_rule": model.info.threshold_rule,
        "tta": model.tta,
    }
    out = Path(out_dir).absolute() if out_dir is not None else None
    if protocol == "oneshot":
        report.update(_oneshot_report(embed, data_root, model.distance))
    elif protocol == "identify":
        report["split"] = split
        report["identification"] = _identify_report(
            embed,
            load_split_index(data_root, None, run_dir, split),
            model.distance,
            references,
            fusions,
            seed,
            out,
        )
    elif references:
        index = load_split_index(data_root, forgeries, run_dir, split)
        report["split"] = split
        part = evaluate_references(embed, index, model, references, fusions, seed, calibration)
        report.update(part)
    else:
        pairs, labels, info = _pair_source(
            data_root, run_dir, pairs_file, forgeries, split, num_pairs, seed, forgery_fraction
        )
        part, distances, is_same = _verification_protocol(
            model, embed, pairs, labels, _fold_count(protocol, folds, info.get("folds"))
        )
        report.update(pairs=info, **part)
        if out is not None:
            report["files"] = _write_plots(out, distances, is_same, model)
    report = _json_safe(report)
    if out is not None:
        report.setdefault("files", {})["report"] = str(out / REPORT_FILE)
        out.mkdir(parents=True, exist_ok=True)
        (out / REPORT_FILE).write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    logger.info("evaluated %s on %s (%s)", report["model"], data_root, protocol)
    return report

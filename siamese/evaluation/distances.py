"""Verification metrics for DISTANCES (same identity when `distance <= threshold`).

The metric functions of `siamese.evaluation.metrics` take scores where higher means "same". A
model gives distances, so every caller used to flip the sign and flip thresholds back; this
module is the one place that does it. Every threshold here, given or returned, is a distance.

>>> d = [0.1, 0.3, 0.7, 0.9]
>>> same = [True, True, False, False]
>>> choose_threshold(d, same)
(0.0, 0.3)
>>> metrics_at_threshold(d, same, 0.5)["accuracy"]
1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from siamese.evaluation.kfold import kfold_verification
from siamese.evaluation.metrics import (
    accuracy_at,
    best_accuracy_threshold,
    eer,
    far_frr_at,
    roc_auc,
    threshold_at_far,
    verification_report,
)

THRESHOLD_RULES = ("eer", "accuracy", "far")


def as_scores(distances: npt.ArrayLike) -> np.ndarray:
    """Scores for the metric functions: `-distance` as float64, higher = more likely the same.

    >>> as_scores([0.5, 2.0]).tolist()
    [-0.5, -2.0]
    """
    return -np.asarray(distances, dtype=np.float64)


def choose_threshold(
    distances: npt.ArrayLike, is_same: npt.ArrayLike, rule: str = "eer", target_far: float = 1e-3
) -> tuple[float, float]:
    """The EER of the pairs and the distance threshold chosen by `rule`.

    Args:
        distances: pair distances `(P,)`.
        is_same: `(P,)` True for genuine pairs.
        rule: "eer" (FAR = FRR), "accuracy" (best accuracy) or "far" (the threshold of the
            highest TAR whose FAR is at most `target_far`; the strictest one on a tie).
        target_far: the FAR target of the "far" rule.

    Returns:
        `(eer, threshold)`; pairs with `distance <= threshold` are declared the same identity.

    Raises:
        ValueError: unknown rule (and everything `siamese.evaluation.metrics` validates).
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; choose one of: {', '.join(THRESHOLD_RULES)}")
    scores = as_scores(distances)
    err, thr = eer(scores, is_same)
    if rule == "accuracy":
        thr, _ = best_accuracy_threshold(scores, is_same)
    elif rule == "far":
        thr = threshold_at_far(scores, is_same, target_far)
    return float(err), float(-thr)


def metrics_at_threshold(
    distances: npt.ArrayLike, is_same: npt.ArrayLike, threshold: float
) -> dict[str, Any]:
    """EER, AUC, and accuracy/FAR/FRR at a distance threshold chosen elsewhere (e.g. on validation).

    Returns:
        `eer`, `auc`, `accuracy`, `far`, `frr` and `pairs`.
    """
    scores = as_scores(distances)
    far, frr = far_frr_at(scores, is_same, -float(threshold))
    return {
        "eer": float(eer(scores, is_same)[0]),
        "auc": float(roc_auc(scores, is_same)),
        "accuracy": float(accuracy_at(scores, is_same, -float(threshold))),
        "far": float(far),
        "frr": float(frr),
        "pairs": int(len(scores)),
    }


def distance_report(
    distances: npt.ArrayLike,
    is_same: npt.ArrayLike,
    threshold: float | None = None,
    fars: tuple[float, ...] = (1e-1, 1e-2, 1e-3),
) -> dict[str, Any]:
    """`verification_report` for distances: its `eer_threshold` and `threshold` are distances.

    `threshold` None skips accuracy/FAR/FRR.
    """
    score_threshold = None if threshold is None else -float(threshold)
    report: dict[str, Any] = verification_report(
        as_scores(distances), is_same, threshold=score_threshold, fars=fars
    )
    report["eer_threshold"] = -report["eer_threshold"]
    if threshold is not None:
        report["threshold"] = float(threshold)
    return report


def kfold_distance_report(distances: npt.ArrayLike, is_same: npt.ArrayLike, **options: Any) -> dict[str, Any]:
    """`kfold_verification` for distances: its per-fold thresholds are distances.

    Args:
        distances: pair distances `(P,)`.
        is_same: `(P,)` True for genuine pairs.
        **options: `folds`, `fars` and `seed` of `kfold_verification` (seed None, its default,
            cuts contiguous folds in the pairs' order, as LFW pair files are laid out).

    Returns:
        The `kfold_verification` dict; a threshold the other folds cannot reach is `-inf`.

    >>> d = [0.1, 0.2, 0.8, 0.9] * 3
    >>> report = kfold_distance_report(d, [True, True, False, False] * 3, folds=3, fars=())
    >>> report["accuracy_mean"], report["fold_thresholds"]
    (1.0, [0.5, 0.5, 0.5])
    """
    report: dict[str, Any] = kfold_verification(as_scores(distances), is_same, **options)
    for key, value in report.items():
        if key.startswith("fold_threshold"):
            report[key] = [-t for t in value]
    return report

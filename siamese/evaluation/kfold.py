"""K-fold verification (the LFW protocol): thresholds from the other folds, scored on the held-out one."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from siamese.errors import ConfigError, DataError
from siamese.evaluation.metrics import (
    _check_far,
    _validate,
    best_accuracy_threshold,
    eer,
    far_key,
    roc_auc,
    threshold_at_far,
)


def _fold_indices(n: int, folds: int, seed: int | None) -> list[npt.NDArray[np.intp]]:
    """Contiguous blocks of `range(n)` (LFW pair files are laid out in folds), or of a seeded permutation."""
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    return np.array_split(order, folds)


def kfold_verification(
    scores: npt.ArrayLike,
    is_same: npt.ArrayLike,
    folds: int = 10,
    fars: tuple[float, ...] = (1e-2, 1e-3),
    seed: int | None = None,
) -> dict[str, float | int | list[float]]:
    """Cross-validated verification accuracy and TAR@FAR.

    For each fold, the accuracy-maximising threshold of the other folds (`best_accuracy_threshold`)
    is applied to the held-out fold; likewise the TAR@FAR threshold of the other folds
    (`threshold_at_far`) is applied to the held-out genuine pairs. Standard deviations are over folds
    with `ddof=0`; the standard error of the mean accuracy is LFW's: the sample standard deviation
    (`ddof=1`) over the square root of the number of folds. Each fold's AUC and EER are its own
    (threshold-free).

    Args:
        scores: Pair scores, higher = more likely the same.
        is_same: True for genuine pairs.
        folds: Number of folds (LFW uses 10).
        fars: Target FARs.
        seed: None keeps the pairs' order and cuts contiguous blocks (as LFW pair files are); an int
            shuffles with that seed first.

    Returns:
        `n_folds`, `accuracy_mean`, `accuracy_std`, `accuracy_se`, `fold_accuracies`,
        `fold_thresholds`, `auc_mean`, `fold_aucs`, `eer_mean`, `fold_eers` (NaN for a fold
        without both kinds of pair), and per
        target FAR `f`: `tar@far=<f>_mean`, `tar@far=<f>_std`, `fold_tar@far=<f>`,
        `fold_threshold@far=<f>` (a threshold is `inf` when the other folds cannot reach that FAR).

    >>> scores = [0.9, 0.8, 0.2, 0.1] * 3
    >>> is_same = [True, True, False, False] * 3
    >>> result = kfold_verification(scores, is_same, folds=3, fars=(0.1,))
    >>> result["accuracy_mean"], result["fold_thresholds"], result["tar@far=0.1_mean"]
    (1.0, [0.5, 0.5, 0.5], 1.0)
    """
    s, y = _validate(scores, is_same)
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= len(s):
        raise ConfigError(f"folds must be an integer in [2, number of pairs = {len(s)}], got {folds!r}")
    fars = tuple(_check_far(f) for f in fars)
    accuracies: list[float] = []
    thresholds: list[float] = []
    aucs: list[float] = []
    eers: list[float] = []
    tars: dict[float, list[float]] = {f: [] for f in fars}
    far_thresholds: dict[float, list[float]] = {f: [] for f in fars}
    for k, test in enumerate(_fold_indices(len(s), folds, seed)):
        train = np.setdiff1d(np.arange(len(s)), test, assume_unique=True)
        if y[train].all() or not y[train].any():
            raise DataError(f"fold {k}: the other folds lack genuine or impostor pairs; use fewer folds")
        threshold, _ = best_accuracy_threshold(s[train], y[train])
        thresholds.append(threshold)
        accuracies.append(float(np.mean((s[test] >= threshold) == y[test])))
        both = y[test].any() and not y[test].all()
        aucs.append(roc_auc(s[test], y[test]) if both else float("nan"))
        eers.append(eer(s[test], y[test])[0] if both else float("nan"))
        genuine = s[test][y[test]]
        if fars and len(genuine) == 0:
            raise DataError(f"fold {k} has no genuine pairs, so its TAR is undefined; use fewer folds")
        for f in fars:
            far_threshold = threshold_at_far(s[train], y[train], f)
            far_thresholds[f].append(far_threshold)
            tars[f].append(float(np.mean(genuine >= far_threshold)))
    result: dict[str, float | int | list[float]] = {
        "n_folds": folds,
        "accuracy_mean": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "accuracy_se": float(np.std(accuracies, ddof=1) / np.sqrt(folds)),
        "fold_accuracies": accuracies,
        "fold_thresholds": thresholds,
        "auc_mean": float(np.mean(aucs)),
        "fold_aucs": aucs,
        "eer_mean": float(np.mean(eers)),
        "fold_eers": eers,
    }
    for f in fars:
        key = far_key(f)
        result[f"{key}_mean"] = float(np.mean(tars[f]))
        result[f"{key}_std"] = float(np.std(tars[f]))
        result[f"fold_{key}"] = tars[f]
        result[f"fold_threshold@far={f:g}"] = far_thresholds[f]
    return result

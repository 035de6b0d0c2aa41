"""Verification metrics on pair scores: ROC, DET, EER, TAR@FAR and accuracy at a threshold.

Convention (scikit-learn's): a higher score means "more likely the same", so pass a similarity or a
negated distance. `is_same` is a boolean array (True = genuine pair, False = impostor pair) and the
decision rule is "same if score >= threshold". FAR (false accept rate) is the false positive rate,
TAR (true accept rate) the true positive rate, and FRR = 1 - TAR.

scikit-learn is imported inside the functions that need it so `import siamese.evaluation` stays cheap.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from siamese.errors import ConfigError, DataError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _validate(
    scores: npt.ArrayLike, is_same: npt.ArrayLike, *, need_both: bool = True
) -> tuple[FloatArray, BoolArray]:
    """Return `(scores, is_same)` as 1-D float64 / bool arrays, or raise `DataError`."""
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"scores must be numbers: {err}") from None
    y = np.asarray(is_same)
    if s.ndim != 1 or y.ndim != 1:
        raise DataError(f"scores and is_same must be 1-D, got shapes {s.shape} and {y.shape}")
    if len(s) != len(y):
        raise DataError(f"scores and is_same have different lengths ({len(s)} vs {len(y)})")
    if len(s) == 0:
        raise DataError("scores and is_same are empty")
    if y.dtype != np.bool_:
        if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
            raise DataError("is_same must be boolean (True = same identity), or 0/1")
        y = y.astype(bool)
    n_bad = int(np.count_nonzero(~np.isfinite(s)))
    if n_bad:
        raise DataError(f"scores contain {n_bad} non-finite value(s) (NaN or inf)")
    if need_both and (y.all() or not y.any()):
        missing = "impostor" if y.all() else "genuine"
        raise DataError(f"is_same has no {missing} pairs; the metric needs both genuine and impostor pairs")
    return s, y


def _check_far(far: float) -> float:
    """Return `far` as a float in [0, 1], or raise `ConfigError`."""
    if not (isinstance(far, (int, float, np.integer, np.floating)) and 0.0 <= far <= 1.0):
        raise ConfigError(f"a target FAR must be a number in [0, 1], got {far!r}")
    return float(far)


def _check_threshold(threshold: float) -> float:
    """Return `threshold` as a float (infinities allowed), or raise `ConfigError` on NaN / non-numbers."""
    if not isinstance(threshold, (int, float, np.floating, np.integer)) or math.isnan(threshold):
        raise ConfigError(f"threshold must be a number, got {threshold!r}")
    return float(threshold)


def far_key(far: float) -> str:
    """Name of the TAR@FAR entry in report dicts.

    >>> far_key(1e-3)
    'tar@far=0.001'
    """
    return f"tar@far={far:g}"


def roc_curve(
    scores: npt.ArrayLike, is_same: npt.ArrayLike, *, drop_intermediate: bool = False
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """ROC curve as (FAR, TAR, thresholds), ordered by decreasing threshold.

    Thin wrapper over `sklearn.metrics.roc_curve`: point `i` is the rule "same if score >=
    thresholds[i]"; `thresholds[0]` is `inf` (accept nothing, FAR = TAR = 0). Unlike scikit-learn the
    default keeps every point, which the threshold look-ups in this module rely on.

    Args:
        scores: Pair scores, higher = more likely the same.
        is_same: True for genuine pairs.
        drop_intermediate: Drop collinear points (lighter curves for plotting).

    Returns:
        far, tar, thresholds.

    >>> far, tar, thr = roc_curve([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
    >>> far.tolist(), tar.tolist(), thr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0], [inf, 0.9, 0.8, 0.3, 0.1])
    """
    from sklearn.metrics import roc_curve as sk_roc_curve

    s, y = _validate(scores, is_same)
    far, tar, thresholds = sk_roc_curve(y, s, drop_intermediate=drop_intermediate)
    return far, tar, thresholds


def roc_auc(scores: npt.ArrayLike, is_same: npt.ArrayLike) -> float:
    """Area under the ROC curve (`sklearn.metrics.roc_auc_score`); 0.5 is chance, 1.0 perfect.

    >>> roc_auc([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
    0.75
    """
    from sklearn.metrics import roc_auc_score

    s, y = _validate(scores, is_same)
    return float(roc_auc_score(y, s))


def det_curve(scores: npt.ArrayLike, is_same: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """DET curve as (FAR, FRR, thresholds) from `sklearn.metrics.det_curve` (increasing threshold).

    scikit-learn keeps only the part of the curve between the last point with FRR = 0 and the first
    with FAR = 0, so a perfectly separable set gives a single point.

    >>> far, frr, thr = det_curve([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
    >>> far.tolist(), frr.tolist(), thr.tolist()
    ([0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.3, 0.8, 0.9])
    """
    from sklearn.metrics import det_curve as sk_det_curve

    s, y = _validate(scores, is_same)
    far, frr, thresholds = sk_det_curve(y, s)
    return far, frr, thresholds


def eer(scores: npt.ArrayLike, is_same: npt.ArrayLike) -> tuple[float, float]:
    """Equal error rate and its threshold: where FAR = FRR, linearly interpolated on the ROC.

    Walking the ROC from the strictest threshold, FRR - FAR goes from +1 to -1; the EER is where
    the segment that crosses zero meets FAR = FRR, and the threshold is interpolated the same way
    (the `inf` end of the ROC counts as the highest score).

    Returns:
        (eer, threshold) - apply the threshold as "same if score >= threshold".

    >>> eer([0.9, 0.8, 0.7, 0.5, 0.6, 0.4, 0.3, 0.2], [True] * 4 + [False] * 4)
    (0.25, 0.6)
    >>> rate, threshold = eer([0.9, 0.5, 0.7, 0.6, 0.1], [True, True, False, False, False])
    >>> round(rate, 6), round(threshold, 6)
    (0.5, 0.65)
    """
    far, tar, thresholds = roc_curve(scores, is_same)
    thresholds = thresholds.copy()
    thresholds[0] = thresholds[1]  # inf -> the top score, so the interpolation stays finite
    diff = (1.0 - tar) - far  # FRR - FAR: 1 at the first point, -1 at the last
    i = int(np.argmax(diff <= 0.0))  # first point at or past the crossing; i >= 1
    a = diff[i - 1] / (diff[i - 1] - diff[i])  # in (0, 1]
    rate = far[i - 1] + a * (far[i] - far[i - 1])
    threshold = thresholds[i - 1] + a * (thresholds[i] - thresholds[i - 1])
    return float(rate), float(threshold)


def far_frr_at(scores: npt.ArrayLike, is_same: npt.ArrayLike, threshold: float) -> tuple[float, float]:
    """(FAR, FRR) of the rule "same if score >= threshold".

    >>> far_frr_at([0.9, 0.8, 0.3, 0.1], [True, False, True, False], 0.5)
    (0.5, 0.5)
    """
    s, y = _validate(scores, is_same)
    accept = s >= _check_threshold(threshold)
    return float(np.mean(accept[~y])), float(np.mean(~accept[y]))


def accuracy_at(scores: npt.ArrayLike, is_same: npt.ArrayLike, threshold: float) -> float:
    """Fraction of pairs the rule "same if score >= threshold" gets right (one class alone is allowed).

    >>> accuracy_at([0.9, 0.8, 0.3, 0.1], [True, False, True, False], 0.85)
    0.75
    """
    s, y = _validate(scores, is_same, need_both=False)
    return float(np.mean((s >= _check_threshold(threshold)) == y))


def _candidate_thresholds(scores: FloatArray) -> FloatArray:
    """Midpoints between sorted unique scores, plus one below the minimum and one above the maximum."""
    u = np.unique(scores)
    half_gap = 0.5 * (u[-1] - u[0]) / (len(u) - 1) if len(u) > 1 else 0.5
    lo = min(u[0] - half_gap, np.nextafter(u[0], -np.inf))
    hi = max(u[-1] + half_gap, np.nextafter(u[-1], np.inf))
    return np.concatenate([[lo], 0.5 * (u[:-1] + u[1:]), [hi]])


def best_accuracy_threshold(scores: npt.ArrayLike, is_same: npt.ArrayLike) -> tuple[float, float]:
    """Threshold maximising accuracy, searched over midpoints between sorted unique scores.

    The extremes (accept everything, reject everything) are candidates too. Ties go to the lowest
    threshold.

    Returns:
        (threshold, accuracy).

    >>> best_accuracy_threshold([0.9, 0.8, 0.3, 0.1], [True, True, False, False])
    (0.55, 1.0)
    """
    s, y = _validate(scores, is_same)
    candidates = _candidate_thresholds(s)  # (C,)
    genuine, impostor = np.sort(s[y]), np.sort(s[~y])
    accepted_genuine = len(genuine) - np.searchsorted(genuine, candidates, side="left")
    rejected_impostor = np.searchsorted(impostor, candidates, side="left")
    accuracy = (accepted_genuine + rejected_impostor) / len(s)  # (C,)
    k = int(np.argmax(accuracy))
    return float(candidates[k]), float(accuracy[k])


def tar_at_far(scores: npt.ArrayLike, is_same: npt.ArrayLike, far: float) -> tuple[float, float]:
    """Highest TAR whose FAR is at most `far`, and the threshold that achieves it.

    Among ROC points with FAR <= `far` the one with the highest TAR wins; on a TAR tie the highest
    threshold (lowest FAR) is returned. When no finite threshold keeps FAR <= `far` (the top score
    is an impostor's and `far` < 1 / n_impostor), the answer is `(0.0, inf)`: reject everything.

    Returns:
        (tar, threshold) - apply as "same if score >= threshold".

    >>> tar_at_far([0.9, 0.8, 0.7, 0.5, 0.6, 0.4, 0.3, 0.2], [True] * 4 + [False] * 4, 0.1)
    (0.75, 0.7)
    >>> tar_at_far([0.9, 0.8, 0.3, 0.1], [False, True, True, False], 0.1)
    (0.0, inf)
    """
    target = _check_far(far)
    fars, tars, thresholds = roc_curve(scores, is_same)
    allowed = fars <= target  # always true at thresholds[0] = inf
    best = tars[allowed].max()
    j = int(np.flatnonzero(allowed & (tars == best))[0])
    return float(tars[j]), float(thresholds[j])


def threshold_at_far(scores: npt.ArrayLike, is_same: npt.ArrayLike, far: float) -> float:
    """Threshold of `tar_at_far`: the best-TAR threshold with FAR <= `far` (`inf` when unreachable).

    >>> threshold_at_far([0.9, 0.8, 0.7, 0.5, 0.6, 0.4, 0.3, 0.2], [True] * 4 + [False] * 4, 0.0)
    0.7
    """
    return tar_at_far(scores, is_same, far)[1]


def verification_report(
    scores: npt.ArrayLike,
    is_same: npt.ArrayLike,
    threshold: float | None = None,
    fars: tuple[float, ...] = (1e-1, 1e-2, 1e-3),
) -> dict[str, float | int]:
    """All the usual verification numbers in one JSON-serialisable dict.

    Keys: `n_genuine`, `n_impostor`, `auc`, `eer`, `eer_threshold`, `tar@far=<f>` per target FAR
    (see `far_key`), and when `threshold` is given also `threshold`, `accuracy`, `far`, `frr`.

    >>> report = verification_report([0.9, 0.8, 0.3, 0.1], [True, False, True, False], 0.5, fars=(0.5,))
    >>> report["eer"], report["tar@far=0.5"], report["accuracy"]
    (0.5, 1.0, 0.5)
    """
    s, y = _validate(scores, is_same)
    fars = tuple(_check_far(f) for f in fars)
    rate, rate_threshold = eer(s, y)
    report: dict[str, float | int] = {
        "n_genuine": int(np.count_nonzero(y)),
        "n_impostor": int(np.count_nonzero(~y)),
        "auc": roc_auc(s, y),
        "eer": rate,
        "eer_threshold": rate_threshold,
    }
    for f in fars:
        report[far_key(f)] = tar_at_far(s, y, f)[0]
    if threshold is not None:
        far, frr = far_frr_at(s, y, threshold)
        report.update(threshold=float(threshold), accuracy=accuracy_at(s, y, threshold), far=far, frr=frr)
    return report

"""Tests for siamese/evaluation/distances.py: metrics on distances (same when `distance <= threshold`).

Hand-computed cases first, then random distances against scikit-learn's `roc_curve` /
`roc_auc_score` (fed `-distance`, since sklearn wants higher = more likely positive) and naive loops.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from siamese.evaluation import (
    THRESHOLD_RULES,
    as_scores,
    choose_threshold,
    distance_report,
    kfold_distance_report,
    kfold_verification,
    metrics_at_threshold,
)

# Sorted by distance: G .1, G .2, G .3, I .4, G .5, I .6, I .7, I .8.
DIST = [0.1, 0.2, 0.3, 0.5, 0.4, 0.6, 0.7, 0.8]
SAME = [True] * 4 + [False] * 4


def random_distances(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Genuine pairs nearer on average, overlapping impostors, no ties."""
    rng = np.random.default_rng(seed)
    is_same = rng.random(n) < 0.4
    return np.abs(rng.normal(size=n) + 1.5 * ~is_same) + 0.01, is_same


def naive_at(d: np.ndarray, is_same: np.ndarray, t: float) -> dict[str, float]:
    """Accuracy, FAR and FRR of "same if distance <= t" by counting."""
    accept = d <= t
    return {
        "accuracy": float(np.mean(accept == is_same)),
        "far": float(np.mean(accept[~is_same])),
        "frr": float(np.mean(~accept[is_same])),
    }


def sklearn_eer(d: np.ndarray, is_same: np.ndarray) -> float:
    """EER where FRR - FAR crosses zero on sklearn's full ROC, linearly interpolated."""
    far, tar, _ = roc_curve(is_same, -d, drop_intermediate=False)
    diff = (1 - tar) - far  # +1 at the strictest point, -1 at the loosest
    i = int(np.flatnonzero(diff <= 0)[0])
    a = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(far[i - 1] + a * (far[i] - far[i - 1]))


# --- hand-computed cases -------------------------------------------------------------------------


def test_as_scores_negates_into_float64() -> None:
    scores = as_scores(np.array([0.5, 2.0, 0.0], dtype=np.float32))
    assert scores.dtype == np.float64 and scores.tolist() == [-0.5, -2.0, -0.0]


def test_choose_threshold_eer_rule_by_hand() -> None:
    # Accepting d <= 0.4 rejects G .5 (FRR 1/4) and accepts I .4 (FAR 1/4): the EER point.
    assert choose_threshold(DIST, SAME) == pytest.approx((0.25, 0.4))
    assert choose_threshold(DIST, SAME, rule="eer") == pytest.approx((0.25, 0.4))


def test_choose_threshold_far_rule_by_hand() -> None:
    # FAR <= 1/4 allows accepting I .4 but not I .6; the loosest such threshold accepts G .5 too.
    assert choose_threshold(DIST, SAME, rule="far", target_far=0.25) == pytest.approx((0.25, 0.5))
    # FAR <= 0.1 allows no impostor: the threshold stops at G .3.
    assert choose_threshold(DIST, SAME, rule="far", target_far=0.1) == pytest.approx((0.25, 0.3))


def test_choose_threshold_accuracy_rule_by_hand() -> None:
    # Separable: the best threshold is half-way between the farthest genuine and nearest impostor.
    assert choose_threshold([0.1, 0.2, 0.6, 0.7], [True, True, False, False], "accuracy") == pytest.approx(
        (0.0, 0.4)
    )
    # Two cuts tie at 7/8 correct (d <= .3 and d <= .5); whichever is chosen scores 7/8.
    _, t = choose_threshold(DIST, SAME, rule="accuracy")
    assert naive_at(np.array(DIST), np.array(SAME), t)["accuracy"] == 7 / 8


def test_choose_threshold_unknown_rule() -> None:
    assert THRESHOLD_RULES == ("eer", "accuracy", "far")
    with pytest.raises(ValueError, match="unknown threshold rule 'median'"):
        choose_threshold(DIST, SAME, rule="median")


def test_metrics_at_threshold_by_hand() -> None:
    # AUC: of the 16 (genuine, impostor) pairs only (G .5, I .4) is ordered wrongly.
    assert metrics_at_threshold(DIST, SAME, 0.4) == pytest.approx(
        {"eer": 0.25, "auc": 15 / 16, "accuracy": 0.75, "far": 0.25, "frr": 0.25, "pairs": 8}
    )
    at_half = metrics_at_threshold(DIST, SAME, 0.5)
    assert (at_half["accuracy"], at_half["far"], at_half["frr"]) == (0.875, 0.25, 0.0)


def test_distance_report_thresholds_are_distances() -> None:
    report = distance_report(DIST, SAME, threshold=0.4, fars=(0.25, 0.1))
    assert report == pytest.approx(
        {
            "n_genuine": 4,
            "n_impostor": 4,
            "auc": 15 / 16,
            "eer": 0.25,
            "eer_threshold": 0.4,
            "tar@far=0.25": 1.0,
            "tar@far=0.1": 0.75,
            "threshold": 0.4,
            "accuracy": 0.75,
            "far": 0.25,
            "frr": 0.25,
        }
    )
    without = distance_report(DIST, SAME)
    assert without["eer_threshold"] == pytest.approx(0.4)
    assert not {"threshold", "accuracy", "far", "frr"} & set(without)


def test_kfold_distance_report_by_hand() -> None:
    # Every fold is separable at 0.5 (G .1/.2 vs I .8/.9); the FAR target's threshold stays below
    # the nearest impostor.
    d = [0.1, 0.2, 0.8, 0.9] * 3
    report = kfold_distance_report(d, [True, True, False, False] * 3, folds=3, fars=(0.1,))
    assert report["accuracy_mean"] == 1.0 and report["fold_thresholds"] == pytest.approx([0.5] * 3)
    assert report["tar@far=0.1_mean"] == 1.0
    assert all(0.2 <= t < 0.8 for t in report["fold_threshold@far=0.1"])


# --- random distances against scikit-learn and naive loops ---------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eer_and_auc_match_sklearn(seed: int) -> None:
    d, is_same = random_distances(seed)
    rate, threshold = choose_threshold(d, is_same)
    assert rate == pytest.approx(sklearn_eer(d, is_same))
    assert d.min() <= threshold <= d.max()
    at = naive_at(d, is_same, threshold)  # at the EER threshold FAR and FRR meet (within a pair)
    assert abs(at["far"] - at["frr"]) <= 1.0 / min(is_same.sum(), (~is_same).sum())
    assert min(at["far"], at["frr"]) <= rate <= max(at["far"], at["frr"])
    m = metrics_at_threshold(d, is_same, threshold)
    assert m["auc"] == pytest.approx(roc_auc_score(is_same, -d))
    assert m["eer"] == pytest.approx(rate)


@pytest.mark.parametrize("seed", [3, 4])
def test_metrics_at_any_threshold_match_counting(seed: int) -> None:
    d, is_same = random_distances(seed)
    for t in np.quantile(d, [0.1, 0.37, 0.5, 0.8]):
        m = metrics_at_threshold(d, is_same, t)
        assert {k: m[k] for k in ("accuracy", "far", "frr")} == pytest.approx(naive_at(d, is_same, t))
        assert m["pairs"] == len(d)


@pytest.mark.parametrize("seed", [5, 6])
def test_far_rule_is_the_best_tar_within_the_target(seed: int) -> None:
    d, is_same = random_distances(seed)
    fpr, tpr, _ = roc_curve(is_same, -d)
    for target in (0.2, 0.05):
        _, t = choose_threshold(d, is_same, rule="far", target_far=target)
        at = naive_at(d, is_same, t)
        assert at["far"] <= target
        assert 1 - at["frr"] == pytest.approx(tpr[fpr <= target].max())  # the best TAR sklearn allows
        assert is_same[d == t].all()  # the strictest threshold with that TAR: a genuine pair's distance


@pytest.mark.parametrize("seed", [7, 8])
def test_accuracy_rule_beats_every_cut(seed: int) -> None:
    d, is_same = random_distances(seed)
    _, t = choose_threshold(d, is_same, rule="accuracy")
    cuts = np.concatenate([[d.min() - 1], np.sort(d)])
    best = max(naive_at(d, is_same, c)["accuracy"] for c in cuts)
    assert naive_at(d, is_same, t)["accuracy"] == pytest.approx(best)


@pytest.mark.parametrize("seed", [9, 10])
def test_distance_report_matches_sklearn_and_counting(seed: int) -> None:
    d, is_same = random_distances(seed)
    t = float(np.median(d))
    report = distance_report(d, is_same, threshold=t, fars=(0.1, 0.01))
    fpr, tpr, _ = roc_curve(is_same, -d)
    assert report["auc"] == pytest.approx(roc_auc_score(is_same, -d))
    assert report["tar@far=0.1"] == pytest.approx(tpr[fpr <= 0.1].max())
    assert report["tar@far=0.01"] == pytest.approx(tpr[fpr <= 0.01].max())
    assert {k: report[k] for k in ("accuracy", "far", "frr")} == pytest.approx(naive_at(d, is_same, t))
    assert (report["n_genuine"], report["n_impostor"]) == (is_same.sum(), (~is_same).sum())
    assert (report["eer"], report["eer_threshold"]) == pytest.approx(choose_threshold(d, is_same))


def test_kfold_distance_report_is_kfold_verification_with_distance_thresholds() -> None:
    d, is_same = random_distances(11, n=200)
    report = kfold_distance_report(d, is_same, folds=5, fars=(0.1,))
    scores = kfold_verification(-d, is_same, folds=5, fars=(0.1,))
    assert report["fold_thresholds"] == pytest.approx([-t for t in scores["fold_thresholds"]])
    assert report["fold_threshold@far=0.1"] == pytest.approx([-t for t in scores["fold_threshold@far=0.1"]])
    assert report["fold_accuracies"] == scores["fold_accuracies"]
    # Each fold's accuracy is that of its distance threshold on the held-out fold (contiguous blocks).
    for block, t, acc in zip(
        np.array_split(np.arange(200), 5), report["fold_thresholds"], report["fold_accuracies"], strict=True
    ):
        assert naive_at(d[block], is_same[block], t)["accuracy"] == pytest.approx(acc)

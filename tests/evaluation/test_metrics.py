"""Tests for siamese/evaluation/metrics.py: hand-computed cases, sklearn, and naive loops."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from siamese.errors import ConfigError, DataError
from siamese.evaluation import (
    accuracy_at,
    best_accuracy_threshold,
    det_curve,
    eer,
    far_frr_at,
    roc_auc,
    roc_curve,
    tar_at_far,
    threshold_at_far,
    verification_report,
)

# Sorted by score: G G G I G I I I -> at threshold 0.6, one genuine rejected and one impostor accepted.
EXACT_SCORES = [0.9, 0.8, 0.7, 0.5, 0.6, 0.4, 0.3, 0.2]
EXACT_SAME = [True] * 4 + [False] * 4


def random_pairs(seed: int, n: int = 400, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    is_same = rng.random(n) < 0.4
    scores = rng.normal(size=n) + 1.5 * is_same
    if ties:
        scores = np.round(scores, 1)
    return scores, is_same


def naive_rates(scores, is_same, t: float) -> tuple[float, float]:
    """(FAR, TAR) of "same if score >= t" by an explicit loop."""
    acc_imp = sum(1 for s, y in zip(scores, is_same, strict=True) if not y and s >= t)
    acc_gen = sum(1 for s, y in zip(scores, is_same, strict=True) if y and s >= t)
    n_imp = sum(1 for y in is_same if not y)
    return acc_imp / n_imp, acc_gen / (len(is_same) - n_imp)


# --- hand-computed cases -------------------------------------------------------------------------


def test_eer_exact_point() -> None:
    assert eer(EXACT_SCORES, EXACT_SAME) == (0.25, 0.6)
    assert far_frr_at(EXACT_SCORES, EXACT_SAME, 0.6) == (0.25, 0.25)


def test_eer_interpolated_between_roc_points() -> None:
    # G .9, I .7, I .6, G .5, I .1: FRR stays 0.5 while FAR goes 1/3 -> 2/3 between thresholds .7 and .6.
    rate, threshold = eer([0.9, 0.5, 0.7, 0.6, 0.1], [True, True, False, False, False])
    assert rate == pytest.approx(0.5)
    assert threshold == pytest.approx(0.65)


def test_perfectly_separable() -> None:
    scores, same = [0.9, 0.8, 0.2, 0.1], [True, True, False, False]
    assert eer(scores, same) == (0.0, 0.8)
    assert roc_auc(scores, same) == 1.0
    assert best_accuracy_threshold(scores, same) == (pytest.approx(0.5), 1.0)
    assert tar_at_far(scores, same, 0.0) == (1.0, 0.8)


def test_fully_reversed() -> None:
    scores, same = [0.1, 0.2, 0.8, 0.9], [True, True, False, False]
    assert eer(scores, same) == (1.0, 0.8)
    assert roc_auc(scores, same) == 0.0
    # Accept-all and reject-all both reach 50 %; ties go to the lowest threshold (accept all).
    threshold, accuracy = best_accuracy_threshold(scores, same)
    assert accuracy == 0.5
    assert threshold < 0.1
    assert tar_at_far(scores, same, 0.4) == (0.0, math.inf)


def test_all_scores_tied() -> None:
    scores, same = [0.5] * 4, [True, False, True, False]
    assert eer(scores, same) == (0.5, 0.5)
    assert roc_auc(scores, same) == 0.5


def test_far_frr_and_accuracy_hand() -> None:
    scores, same = [0.9, 0.8, 0.3, 0.1], [True, False, True, False]
    assert far_frr_at(scores, same, 0.85) == (0.0, 0.5)
    assert far_frr_at(scores, same, 0.8) == (0.5, 0.5)  # >= : the 0.8 impostor is accepted
    assert accuracy_at(scores, same, 0.85) == 0.75
    assert accuracy_at(scores, same, -math.inf) == 0.5
    assert accuracy_at([0.9, 0.1], [True, True], 0.5) == 0.5  # one class is allowed here


def test_tar_at_far_hand_and_tie_goes_to_highest_threshold() -> None:
    assert tar_at_far(EXACT_SCORES, EXACT_SAME, 0.1) == (0.75, 0.7)
    assert tar_at_far(EXACT_SCORES, EXACT_SAME, 0.25) == (1.0, 0.5)
    assert tar_at_far(EXACT_SCORES, EXACT_SAME, 1.0) == (1.0, 0.5)
    # G .95, I .9, I .8, G .1: TAR 0.5 at both .95 (FAR 0) and .9 (FAR .5) -> the stricter .95.
    assert tar_at_far([0.95, 0.9, 0.8, 0.1], [True, False, False, True], 0.5) == (0.5, 0.95)
    assert threshold_at_far(EXACT_SCORES, EXACT_SAME, 0.1) == 0.7


# --- sklearn on random data --------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("drop", [False, True])
def test_roc_curve_matches_sklearn(seed: int, drop: bool) -> None:
    scores, same = random_pairs(seed, ties=seed == 2)
    ours = roc_curve(scores, same, drop_intermediate=drop)
    theirs = skm.roc_curve(same, scores, drop_intermediate=drop)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_and_det_match_sklearn(seed: int) -> None:
    scores, same = random_pairs(seed, ties=seed == 2)
    assert roc_auc(scores, same) == pytest.approx(skm.roc_auc_score(same, scores))
    for a, b in zip(det_curve(scores, same), skm.det_curve(same, scores), strict=True):
        np.testing.assert_array_equal(a, b)


def test_zero_one_is_same_equals_boolean() -> None:
    scores, same = random_pairs(3)
    assert eer(scores, same.astype(int)) == eer(scores, same)
    assert roc_auc(scores, same.astype(float)) == roc_auc(scores, same)


# --- brute force -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_eer_against_fine_threshold_sweep(seed: int) -> None:
    scores, same = random_pairs(seed, n=600)
    rate, threshold = eer(scores, same)
    sweep = np.linspace(scores.min() - 0.01, scores.max() + 0.01, 20001)
    gen, imp = scores[same], scores[~same]
    far = (imp[None, :] >= sweep[:, None]).mean(1)
    frr = (gen[None, :] < sweep[:, None]).mean(1)
    k = int(np.argmin(np.abs(far - frr)))
    step = 1.0 / min(len(gen), len(imp))
    assert rate == pytest.approx((far[k] + frr[k]) / 2, abs=step)
    far_t, frr_t = far_frr_at(scores, same, threshold)
    assert abs(far_t - frr_t) <= 2 * step
    assert rate == pytest.approx((far_t + frr_t) / 2, abs=step)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_accuracy_threshold_against_loop(seed: int) -> None:
    scores, same = random_pairs(seed, n=150, ties=seed == 2)
    threshold, accuracy = best_accuracy_threshold(scores, same)
    # Every split of the sorted unique scores, plus accept-all and reject-all.
    candidates = [-math.inf, *np.unique(scores), math.inf]
    best = max(np.mean([(s >= t) == y for s, y in zip(scores, same, strict=True)]) for t in candidates)
    assert accuracy == pytest.approx(best)
    assert accuracy_at(scores, same, threshold) == pytest.approx(accuracy)
    assert not np.isin(threshold, scores)  # a midpoint or an extreme, never a score itself


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("target", [0.0, 0.001, 0.01, 0.05, 0.1, 0.3, 1.0])
def test_tar_at_far_against_loop(seed: int, target: float) -> None:
    scores, same = random_pairs(seed, n=300, ties=seed == 2)
    best_tar, best_t = 0.0, math.inf
    for t in sorted(set(scores.tolist()), reverse=True):  # highest threshold first wins TAR ties
        far, tar = naive_rates(scores, same, t)
        if far <= target and tar > best_tar:
            best_tar, best_t = tar, t
    assert tar_at_far(scores, same, target) == (pytest.approx(best_tar), best_t)
    if math.isfinite(best_t):
        assert far_frr_at(scores, same, best_t)[0] <= target


@pytest.mark.parametrize("seed", [0, 1])
def test_far_frr_and_accuracy_against_loop(seed: int) -> None:
    scores, same = random_pairs(seed, n=200)
    for t in (-1.0, 0.0, 0.7, 2.5):
        far, tar = naive_rates(scores, same, t)
        assert far_frr_at(scores, same, t) == (pytest.approx(far), pytest.approx(1 - tar))
        expected = sum((s >= t) == y for s, y in zip(scores, same, strict=True)) / len(same)
        assert accuracy_at(scores, same, t) == pytest.approx(expected)


# --- report --------------------------------------------------------------------------------------


def test_verification_report_keys_values_and_json() -> None:
    scores, same = random_pairs(5)
    report = verification_report(scores, same, threshold=0.7, fars=(0.1, 0.01))
    assert set(report) == {
        "n_genuine", "n_impostor", "auc", "eer", "eer_threshold", "tar@far=0.1", "tar@far=0.01",
        "threshold", "accuracy", "far", "frr",
    }  # fmt: skip
    assert report["n_genuine"] == int(same.sum()) and report["n_impostor"] == int((~same).sum())
    assert (report["eer"], report["eer_threshold"]) == eer(scores, same)
    assert report["tar@far=0.01"] == tar_at_far(scores, same, 0.01)[0]
    assert (report["far"], report["frr"]) == far_frr_at(scores, same, 0.7)
    assert report["accuracy"] == accuracy_at(scores, same, 0.7)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    assert all(type(v) in (int, float) for v in report.values())


def test_verification_report_without_threshold() -> None:
    report = verification_report(EXACT_SCORES, EXACT_SAME)
    assert "threshold" not in report and "accuracy" not in report
    assert {"tar@far=0.1", "tar@far=0.01", "tar@far=0.001"} <= set(report)
    assert report["eer"] == 0.25


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "same", "match"),
    [
        ([0.1, 0.2, 0.3], [True, False], "different lengths"),
        ([], [], "empty"),
        ([0.1, 0.2], [True, True], "no impostor"),
        ([0.1, 0.2], [False, False], "no genuine"),
        ([0.1, float("nan")], [True, False], "non-finite"),
        ([0.1, float("inf")], [True, False], "non-finite"),
        ([0.1, 0.2], [1, 2], "boolean"),
        ([0.1, 0.2], ["a", "b"], "boolean"),
        ([[0.1, 0.2]], [[True, False]], "1-D"),
        (["x", "y"], [True, False], "numbers"),
    ],
)
def test_bad_inputs_raise_data_error(scores, same, match: str) -> None:
    for fn in (eer, roc_auc, roc_curve, det_curve, best_accuracy_threshold, verification_report):
        with pytest.raises(DataError, match=match):
            fn(scores, same)


def test_bad_options_raise_config_error() -> None:
    for far in (-0.1, 1.5, float("nan"), "0.1"):
        with pytest.raises(ConfigError, match="FAR"):
            tar_at_far(EXACT_SCORES, EXACT_SAME, far)
    assert tar_at_far(EXACT_SCORES, EXACT_SAME, np.float32(0.25)) == (1.0, 0.5)
    with pytest.raises(ConfigError, match="threshold"):
        accuracy_at(EXACT_SCORES, EXACT_SAME, float("nan"))
    with pytest.raises(ConfigError, match="FAR"):
        verification_report(EXACT_SCORES, EXACT_SAME, fars=(2.0,))

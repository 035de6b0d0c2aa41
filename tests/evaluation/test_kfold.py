"""Tests for siamese/evaluation/kfold.py against a naive re-implementation of the LFW protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest

from siamese.errors import ConfigError, DataError
from siamese.evaluation import kfold_verification


def random_pairs(seed: int, n: int = 240, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    is_same = rng.random(n) < 0.5
    scores = rng.normal(size=n) + 1.2 * is_same
    return (np.round(scores, 1) if ties else scores), is_same


def naive_best_threshold(scores: list[float], same: list[bool]) -> float:
    """Loop over accept-all, every midpoint and reject-all; the first (lowest) best threshold wins."""
    u = sorted(set(scores))
    half_gap = 0.5 * (u[-1] - u[0]) / (len(u) - 1)
    candidates = (
        [u[0] - half_gap] + [(a + b) / 2 for a, b in zip(u, u[1:], strict=False)] + [u[-1] + half_gap]
    )
    best_t, best_acc = None, -1.0
    for t in candidates:
        acc = sum((s >= t) == y for s, y in zip(scores, same, strict=True)) / len(same)
        if acc > best_acc:
            best_t, best_acc = t, acc
    return best_t


def naive_threshold_at_far(scores: list[float], same: list[bool], target: float) -> float:
    n_imp = sum(not y for y in same)
    n_gen = len(same) - n_imp
    best_tar, best_t = 0.0, math.inf
    for t in sorted(set(scores), reverse=True):
        far = sum(s >= t for s, y in zip(scores, same, strict=True) if not y) / n_imp
        tar = sum(s >= t for s, y in zip(scores, same, strict=True) if y) / n_gen
        if far <= target and tar > best_tar:
            best_tar, best_t = tar, t
    return best_t


def naive_kfold(scores, same, folds, fars, seed):
    n = len(scores)
    order = list(range(n)) if seed is None else list(np.random.default_rng(seed).permutation(n))
    size, extra = divmod(n, folds)
    blocks, start = [], 0
    for k in range(folds):  # the first `extra` folds get one more pair, like np.array_split
        stop = start + size + (k < extra)
        blocks.append(order[start:stop])
        start = stop
    accs, thrs, tars = [], [], {f: [] for f in fars}
    for test in blocks:
        train = [i for i in range(n) if i not in set(test)]
        tr_s, tr_y = [scores[i] for i in train], [same[i] for i in train]
        t = naive_best_threshold(tr_s, tr_y)
        thrs.append(t)
        accs.append(sum((scores[i] >= t) == same[i] for i in test) / len(test))
        genuine = [scores[i] for i in test if same[i]]
        for f in fars:
            tf = naive_threshold_at_far(tr_s, tr_y, f)
            tars[f].append(sum(g >= tf for g in genuine) / len(genuine))
    return accs, thrs, tars


@pytest.mark.parametrize(("seed", "folds", "shuffle_seed"), [(0, 10, None), (1, 7, None), (2, 5, 123)])
def test_matches_naive_loop(seed: int, folds: int, shuffle_seed: int | None) -> None:
    scores, same = random_pairs(seed, ties=seed == 1)
    fars = (0.01, 0.1)
    result = kfold_verification(scores, same, folds=folds, fars=fars, seed=shuffle_seed)
    accs, thrs, tars = naive_kfold(scores.tolist(), same.tolist(), folds, fars, shuffle_seed)
    assert result["n_folds"] == folds
    np.testing.assert_allclose(result["fold_accuracies"], accs)
    np.testing.assert_allclose(result["fold_thresholds"], thrs)
    assert result["accuracy_mean"] == pytest.approx(np.mean(accs))
    assert result["accuracy_std"] == pytest.approx(np.std(accs))
    for f in fars:
        np.testing.assert_allclose(result[f"fold_tar@far={f:g}"], tars[f])
        assert result[f"tar@far={f:g}_mean"] == pytest.approx(np.mean(tars[f]))
        assert result[f"tar@far={f:g}_std"] == pytest.approx(np.std(tars[f]))


def test_lfw_standard_error_and_fold_auc_eer_by_hand() -> None:
    """Three folds of four pairs; fold 0 has one impostor above its genuine pairs.

    Thresholds: fold 0's other folds are separable, any threshold in (0.4, 0.6] is best and the
    lowest candidate is 0.5 -> fold 0 scores 3/4. Folds 1 and 2 see fold 0's impostor at 0.95 in
    their training pairs; 0.5 is still the best (7/8) -> 4/4. Accuracies 0.75, 1, 1: mean 11/12,
    sample std sqrt(((0.75 - 11/12)^2 + 2 (1 - 11/12)^2) / 2) = 0.144338, SE = that / sqrt(3).
    Fold 0's AUC: of 2 x 2 genuine-impostor orderings, 0.9 and 0.8 beat 0.1 but not 0.95: 2/4.
    """
    scores = np.array([0.9, 0.8, 0.95, 0.1, 0.9, 0.8, 0.2, 0.1, 0.9, 0.6, 0.4, 0.1])
    same = np.array([True, True, False, False] * 3)
    result = kfold_verification(scores, same, folds=3, fars=())
    assert result["fold_accuracies"] == [0.75, 1.0, 1.0]
    sample_std = math.sqrt(((0.75 - 11 / 12) ** 2 + 2 * (1 - 11 / 12) ** 2) / 2)
    assert result["accuracy_se"] == pytest.approx(sample_std / math.sqrt(3))
    assert result["fold_aucs"] == [pytest.approx(0.5), 1.0, 1.0]
    assert result["fold_eers"][1:] == [0.0, 0.0] and result["fold_eers"][0] == pytest.approx(0.5)
    assert result["auc_mean"] == pytest.approx(2.5 / 3)


def test_contiguous_folds_follow_the_pair_order() -> None:
    # Fold 0 (the first quarter) is reversed; the rest is separable with the threshold near 0.5.
    same = np.array([True, False] * 8)
    scores = np.where(same, 0.9, 0.1)
    scores[:4] = np.where(same[:4], 0.1, 0.9)
    result = kfold_verification(scores, same, folds=4, fars=())
    assert result["fold_accuracies"] == [0.0, 1.0, 1.0, 1.0]
    shuffled = kfold_verification(scores, same, folds=4, fars=(), seed=0)
    assert shuffled["fold_accuracies"] != result["fold_accuracies"]
    assert kfold_verification(scores, same, folds=4, fars=(), seed=0) == shuffled


def test_separable_gives_perfect_scores() -> None:
    scores = np.array([0.9, 0.8, 0.2, 0.1] * 5)
    same = np.array([True, True, False, False] * 5)
    result = kfold_verification(scores, same, folds=5, fars=(0.0,))
    assert result["accuracy_mean"] == 1.0 and result["accuracy_std"] == 0.0
    assert result["tar@far=0_mean"] == 1.0
    assert result["fold_threshold@far=0"] == [0.8] * 5


def test_bad_folds_raise_config_error() -> None:
    scores, same = random_pairs(0, n=20)
    for folds in (1, 0, 21, True, 2.5):
        with pytest.raises(ConfigError, match="folds"):
            kfold_verification(scores, same, folds=folds)
    with pytest.raises(ConfigError, match="FAR"):
        kfold_verification(scores, same, folds=2, fars=(1.5,))


def test_fold_without_genuine_pairs_raises_data_error() -> None:
    same = np.array([True] * 5 + [False] * 5)
    scores = np.linspace(0, 1, 10)
    with pytest.raises(DataError, match="fold"):
        kfold_verification(scores, same, folds=2)  # the held-out half has one class only
    with pytest.raises(DataError, match="no genuine"):
        kfold_verification(scores, same, folds=5, fars=(0.1,))

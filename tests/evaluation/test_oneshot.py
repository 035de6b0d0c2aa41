"""Tests for siamese/evaluation/oneshot.py: a hand-made 3-way episode and a naive nearest-neighbour loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from siamese.errors import ConfigError, DataError
from siamese.evaluation import n_way_one_shot_accuracy, one_shot_predictions
from siamese.names import DISTANCES

SUPPORT = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])  # classes "a", "b", "c"
SUPPORT_LABELS = np.array(["a", "b", "c"])
QUERIES = np.array([[1.0, 1.0], [8.0, 1.0], [2.0, 9.0], [6.0, 0.5], [4.0, 4.5]])
# Nearest support: a, b, c, then (6, 0.5) -> b (4.03 vs 6.02 to a), (4, 4.5) -> a (6.02; c 6.80, b 7.50).
TRUE_LABELS = np.array(["a", "b", "c", "a", "c"])


def test_three_way_euclidean_by_hand() -> None:
    predicted = one_shot_predictions(SUPPORT, SUPPORT_LABELS, QUERIES)
    assert predicted.tolist() == ["a", "b", "c", "b", "a"]
    assert n_way_one_shot_accuracy(SUPPORT, SUPPORT_LABELS, QUERIES, TRUE_LABELS) == pytest.approx(3 / 5)


def test_cosine_differs_from_euclidean_by_hand() -> None:
    support, labels = [[1.0, 0.0], [10.0, 10.0]], [0, 1]
    query = [[3.0, 3.0]]  # closer to (1, 0) in space, same direction as (10, 10)
    assert one_shot_predictions(support, labels, query, "euclidean").tolist() == [0]
    assert one_shot_predictions(support, labels, query, "cosine").tolist() == [1]
    assert n_way_one_shot_accuracy(support, labels, query, [1], distance="cosine") == 1.0


def naive_nearest(support, labels, queries, distance: str) -> list:
    out = []
    for q in queries:
        best, best_d = None, math.inf
        for s, label in zip(support, labels, strict=True):
            if distance == "euclidean":
                d = math.dist(q, s)
            else:
                d = 1 - float(np.dot(q, s)) / (math.hypot(*q) * math.hypot(*s))
            if d < best_d:
                best, best_d = label, d
        out.append(best)
    return out


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_naive_loop(distance: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    support = rng.normal(size=(20, 5))
    labels = rng.integers(0, 5, size=20)
    queries = rng.normal(size=(30, 5))
    truth = rng.integers(0, 5, size=30)
    expected = naive_nearest(support, labels, queries, distance)
    predicted = one_shot_predictions(support, labels, queries, distance)
    assert predicted.tolist() == expected
    assert n_way_one_shot_accuracy(support, labels, queries, truth, distance) == pytest.approx(
        np.mean(np.array(expected) == truth)
    )


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="distance"):
        one_shot_predictions(SUPPORT, SUPPORT_LABELS, QUERIES, distance="manhattan")
    with pytest.raises(DataError, match="dimension"):
        one_shot_predictions(SUPPORT, SUPPORT_LABELS, np.zeros((2, 3)))
    with pytest.raises(DataError, match="support_labels"):
        one_shot_predictions(SUPPORT, ["a", "b"], QUERIES)
    with pytest.raises(DataError, match="query_labels"):
        n_way_one_shot_accuracy(SUPPORT, SUPPORT_LABELS, QUERIES, ["a"])
    with pytest.raises(DataError, match="support_emb"):
        one_shot_predictions(np.zeros((0, 2)), [], QUERIES)
    with pytest.raises(DataError, match="non-finite"):
        one_shot_predictions(SUPPORT, SUPPORT_LABELS, [[np.nan, 0.0]])
    with pytest.raises(DataError, match="all-zero"):
        one_shot_predictions(SUPPORT, SUPPORT_LABELS, QUERIES, distance="cosine")  # (0, 0) support

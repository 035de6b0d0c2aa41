"""knn_predict / knn_accuracy against a naive loop and sklearn; embedding_spread on known cases."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from siamese.evaluation.knn import embedding_spread, knn_accuracy, knn_predict


def _data(seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, 8))
    labels = rng.integers(0, 3, 60)
    x = centers[labels] + 0.8 * rng.normal(size=(60, 8))
    return x[:40], labels[:40], x[40:], labels[40:]


def test_matches_a_naive_weighted_vote():
    mem, ml, qry, _ = _data()
    got = knn_predict(mem, ml, qry, k=5, temperature=0.1)
    for q, pred in zip(qry, got, strict=True):
        cos = [m @ q / np.linalg.norm(m) / np.linalg.norm(q) for m in mem]
        order = sorted(range(len(mem)), key=lambda i: -cos[i])[:5]
        votes = {}
        for i in order:
            votes[ml[i]] = votes.get(ml[i], 0.0) + np.exp(cos[i] / 0.1)
        assert pred == max(votes, key=votes.get)


def test_large_temperature_is_sklearn_majority_vote_on_cosine():
    mem, ml, qry, ql = _data(1)
    ref = KNeighborsClassifier(n_neighbors=5, metric="cosine", algorithm="brute").fit(mem, ml).predict(qry)
    assert (knn_predict(mem, ml, qry, k=5, temperature=1e9) == ref).mean() >= 0.95  # ties may differ
    assert knn_accuracy(mem, ml, qry, ql, k=5) == pytest.approx(np.mean(knn_predict(mem, ml, qry, 5) == ql))


def test_spread_is_zero_when_collapsed_and_near_one_when_spread():
    rng = np.random.default_rng(0)
    assert embedding_spread(np.ones((50, 16))) == 0.0
    assert embedding_spread(rng.normal(size=(5000, 16))) == pytest.approx(1.0, abs=0.05)


def test_bad_arguments():
    with pytest.raises(ValueError):
        knn_predict([[1.0]], [0], [[1.0]], k=0)

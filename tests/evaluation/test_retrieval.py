"""Tests for siamese/evaluation/retrieval.py: hand-computed tiny case and a naive leave-one-out loop."""

from __future__ import annotations

import numpy as np
import pytest

from siamese.errors import ConfigError, DataError
from siamese.evaluation import retrieval_metrics

# 1-D points, no tied distances. R = 2 for every query (3 per class, self excluded).
#   A0=0    -> A1 1,  B0 2.2, ...     top-2 [A, B]: P@1 1, R-prec 1/2, AP@R (1 + 0) / 2   = 1/2
#   A1=1    -> A0 1,  B0 1.2, ...     [A, B]:       1,     1/2,        1/2
#   A2=5.2  -> B2 1.3, B1 2.2, ...    [B, B]:       0,     0,          0
#   B0=2.2  -> B1 0.8, A1 1.2, ...    [B, A]:       1,     1/2,        1/2
#   B1=3    -> B0 0.8, A1 2,  A2 2.2  [B, A]:       1,     1/2,        1/2
#   B2=6.5  -> A2 1.3, B1 3.5, ...    [A, B]:       0,     1/2,        (0 + 1/2) / 2 = 1/4
POINTS = np.array([[0.0], [1.0], [5.2], [2.2], [3.0], [6.5]])
LABELS = np.array(["A", "A", "A", "B", "B", "B"])
EXPECTED = {"precision_at_1": 4 / 6, "r_precision": 2.5 / 6, "mean_average_precision_at_r": 2.25 / 6}


def test_faiss_is_not_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    # pml 2.9 builds a FaissKNN unless given a knn_func, and fails without faiss; make that fatal.
    from pytorch_metric_learning.utils import accuracy_calculator

    def no_faiss(*args, **kwargs):
        raise AssertionError("FaissKNN must not be used")

    monkeypatch.setattr(accuracy_calculator, "FaissKNN", no_faiss)
    assert retrieval_metrics(POINTS, LABELS) == pytest.approx(EXPECTED)


@pytest.mark.parametrize("k", [None, "max_bin_count", 5])
def test_hand_computed_case(k) -> None:
    assert retrieval_metrics(POINTS, LABELS, k=k) == pytest.approx(EXPECTED)


def test_singleton_labels_are_skipped() -> None:
    points = np.vstack([POINTS, [[100.0]]])
    labels = np.append(LABELS, "lonely")
    assert retrieval_metrics(points, labels) == pytest.approx(EXPECTED)


def naive_retrieval(emb: np.ndarray, labels: np.ndarray, distance: str) -> dict[str, float]:
    if distance == "cosine":
        unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        dist = 1 - unit @ unit.T
    else:
        dist = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    p1, rp, ap = [], [], []
    for i in range(len(emb)):
        r = int(np.sum(labels == labels[i])) - 1
        if r == 0:
            continue
        others = [j for j in np.argsort(dist[i], kind="stable") if j != i][:r]
        relevant = [labels[j] == labels[i] for j in others]
        p1.append(float(relevant[0]))
        rp.append(sum(relevant) / r)
        hits, total = 0, 0.0
        for rank, rel in enumerate(relevant, start=1):
            if rel:
                hits += 1
                total += hits / rank
        ap.append(total / r)
    return {
        "precision_at_1": float(np.mean(p1)),
        "r_precision": float(np.mean(rp)),
        "mean_average_precision_at_r": float(np.mean(ap)),
    }


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_matches_naive_loop(distance: str) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, size=60)
    emb = rng.normal(size=(60, 8)) + 1.5 * np.eye(8)[labels]
    expected = naive_retrieval(emb, labels, distance)
    assert retrieval_metrics(emb, labels, distance=distance) == pytest.approx(expected, abs=1e-6)


def test_bad_inputs() -> None:
    with pytest.raises(DataError, match="once"):
        retrieval_metrics(POINTS[:2], ["A", "B"])
    with pytest.raises(DataError, match="labels"):
        retrieval_metrics(POINTS, LABELS[:3])
    with pytest.raises(DataError, match="non-finite"):
        retrieval_metrics(np.full((3, 2), np.nan), [0, 0, 1])
    with pytest.raises(DataError, match=r"\(N, D\)"):
        retrieval_metrics(np.zeros(4), [0, 0, 1, 1])
    with pytest.raises(ConfigError, match="distance"):
        retrieval_metrics(POINTS, LABELS, distance="hamming")
    for k in (0, -1, "all", 1.5):
        with pytest.raises(ConfigError, match="k must"):
            retrieval_metrics(POINTS, LABELS, k=k)

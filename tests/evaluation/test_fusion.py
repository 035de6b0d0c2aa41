"""Fusion rules against hand-computed cases, naive loops, the twin's pair distance and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.svm import SVC

from siamese.errors import ConfigError, DataError
from siamese.evaluation.fusion import (
    SPREAD_WEIGHT,
    LinearScorer,
    distance_matrix,
    fit_identity_svms,
    fit_svm,
    fused_distances,
    fused_matrix,
    reference_spread,
    reference_template,
)
from siamese.models.twin import pair_distance

# references of one identity at (0, 0), (4, 0), (0, 3); queries hand-placed around them
REFS = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]])
QUERIES = np.array([[0.0, 0.0], [4.0, 3.0]])


def test_mean_min_template_euclidean_by_hand() -> None:
    # query (0,0): distances 0, 4, 3 -> mean 7/3, min 0; template (4/3, 1) at distance 5/3
    # query (4,3): distances 5, 3, 4 -> mean 4, min 3; template at distance sqrt((8/3)^2 + 2^2) = 10/3
    assert fused_distances(QUERIES, REFS, "mean").tolist() == pytest.approx([7 / 3, 4.0])
    assert fused_distances(QUERIES, REFS, "min").tolist() == pytest.approx([0.0, 3.0])
    assert fused_distances(QUERIES, REFS, "template").tolist() == pytest.approx([5 / 3, 10 / 3])


def test_adaptive_by_hand() -> None:
    # leave-one-out templates of REFS: (2, 1.5), (0, 1.5), (2, 0); each reference's distance to
    # the template of the other two: 2.5, sqrt(16 + 2.25) = 4.272, sqrt(4 + 9) = 3.606
    spread = (2.5 + np.sqrt(18.25) + np.sqrt(13.0)) / 3
    assert reference_spread(REFS) == pytest.approx(spread)
    expected = np.array([5 / 3, 10 / 3]) - SPREAD_WEIGHT * spread
    assert fused_distances(QUERIES, REFS, "adaptive").tolist() == pytest.approx(expected.tolist())
    # weight 0 is the template rule; the weight scales the offset
    assert fused_distances(QUERIES, REFS, "adaptive", spread_weight=0.0).tolist() == pytest.approx(
        [5 / 3, 10 / 3]
    )
    two = fused_matrix(QUERIES, [REFS], "adaptive", spread_weight=2.0)[:, 0]
    assert two.tolist() == pytest.approx((np.array([5 / 3, 10 / 3]) - 2.0 * spread).tolist())
    # the offset is per identity: an identity whose references vary more gets a looser threshold
    tight, loose = REFS / 2, REFS * 2
    query = np.array([[10.0, 10.0]])
    assert reference_spread(loose) == pytest.approx(4 * reference_spread(tight))
    offsets = [
        fused_distances(query, r, "template")[0] - fused_distances(query, r, "adaptive")[0]
        for r in (tight, loose)
    ]
    assert offsets == pytest.approx([SPREAD_WEIGHT * spread / 2, SPREAD_WEIGHT * spread * 2])


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_adaptive_matches_a_naive_loop(distance: str) -> None:
    rng = np.random.default_rng(7)
    refs, queries = rng.normal(size=(5, 4)), rng.normal(size=(3, 4))

    def dist(a: np.ndarray, b: np.ndarray) -> float:
        if distance == "cosine":
            return float(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        return float(np.linalg.norm(a - b))

    def template(r: np.ndarray) -> np.ndarray:
        if distance == "cosine":
            m = (r / np.linalg.norm(r, axis=1, keepdims=True)).mean(0)
            return m / np.linalg.norm(m)
        return r.mean(0)

    loo = [dist(refs[i], template(np.delete(refs, i, axis=0))) for i in range(len(refs))]
    spread = sum(loo) / len(loo)
    naive = [dist(q, template(refs)) - SPREAD_WEIGHT * spread for q in queries]
    assert fused_distances(queries, refs, "adaptive", distance).tolist() == pytest.approx(naive, abs=1e-12)


def test_cosine_rules_by_hand() -> None:
    refs = np.array([[1.0, 0.0], [0.0, 2.0]])  # directions 0 and 90 degrees (lengths do not matter)
    query = np.array([[1.0, 1.0]])  # 45 degrees: cos 1/sqrt(2) to both references and to the template
    d45 = 1.0 - 1.0 / np.sqrt(2.0)
    assert fused_distances(query, refs, "mean", "cosine")[0] == pytest.approx(d45)
    assert fused_distances(query, refs, "min", "cosine")[0] == pytest.approx(d45)
    assert fused_distances(query, refs, "template", "cosine")[0] == pytest.approx(0.0, abs=1e-12)
    # the cosine template is the re-normalised mean of the unit references: 45 degrees, unit length
    assert reference_template(refs, "cosine").tolist() == pytest.approx([1 / np.sqrt(2), 1 / np.sqrt(2)])
    assert reference_template(refs, "euclidean").tolist() == [0.5, 1.0]


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_one_reference_equals_the_pair_distance(distance: str) -> None:
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(6, 5)), rng.normal(size=(1, 5))
    expected = pair_distance(torch.from_numpy(q), torch.from_numpy(np.repeat(r, 6, axis=0)), distance).numpy()
    for rule in ("mean", "min", "template", "adaptive"):  # one reference: no spread
        assert fused_distances(q, r, rule, distance) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_distance_matrix_matches_a_naive_loop(distance: str) -> None:
    rng = np.random.default_rng(1)
    q, r = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    naive = np.empty((4, 5))
    for i in range(4):
        for j in range(5):
            if distance == "euclidean":
                naive[i, j] = np.sqrt(((q[i] - r[j]) ** 2).sum())
            else:
                naive[i, j] = 1.0 - q[i] @ r[j] / (np.linalg.norm(q[i]) * np.linalg.norm(r[j]))
    assert distance_matrix(q, r, distance) == pytest.approx(naive, abs=1e-12)


@pytest.mark.parametrize("rule", ["mean", "min", "template", "adaptive", "svm"])
def test_fused_matrix_column_k_is_identity_k(rule: str) -> None:
    rng = np.random.default_rng(2)
    groups = [rng.normal(loc=k, size=(k + 1, 4)) for k in range(3)]  # 1, 2 and 3 references
    queries = rng.normal(size=(7, 4))
    scorers = fit_identity_svms(groups) if rule == "svm" else None
    matrix = fused_matrix(queries, groups, rule, "euclidean", scorers)
    assert matrix.shape == (7, 3)
    for k, refs in enumerate(groups):
        scorer = scorers[k] if scorers is not None else None
        assert matrix[:, k] == pytest.approx(fused_distances(queries, refs, rule, "euclidean", scorer))


def _naive_euclidean(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.array([[np.linalg.norm(a - b) for b in r] for a in q])


@pytest.mark.parametrize("rule", ["mean", "min", "template", "adaptive"])
def test_a_pair_metric_fuses_like_the_named_distance_it_computes(rule: str) -> None:
    rng = np.random.default_rng(5)
    groups = [rng.normal(loc=k, size=(k + 2, 3)) for k in range(3)]
    queries = rng.normal(size=(4, 3))
    by_name = fused_matrix(queries, groups, rule, "euclidean")
    assert fused_matrix(queries, groups, rule, _naive_euclidean) == pytest.approx(by_name, abs=1e-12)


def test_a_pair_metric_is_called_on_the_raw_features_and_its_shape_checked() -> None:
    # a learned, non-symmetric "distance": the negated dot product (template = plain mean)
    def metric(q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return -(q @ r.T)

    # dot products with (0,0), (4,0), (0,3) for query (4,3): 0, 16, 9; template (4/3, 1): 25/3
    assert fused_distances(QUERIES[1:], REFS, "mean", metric).tolist() == pytest.approx([-25 / 3])
    assert fused_distances(QUERIES[1:], REFS, "min", metric).tolist() == pytest.approx([-16.0])
    assert fused_distances(QUERIES[1:], REFS, "template", metric).tolist() == pytest.approx([-25 / 3])
    with pytest.raises(DataError, match="pair metric returned shape"):
        distance_matrix(QUERIES, REFS, lambda q, r: np.zeros(len(q)))


def test_svm_matches_a_direct_scikit_learn_fit() -> None:
    rng = np.random.default_rng(3)
    pos = rng.normal(loc=1.0, size=(5, 6))
    neg = rng.normal(loc=-1.0, size=(40, 6))
    queries = rng.normal(size=(10, 6))
    svm = SVC(kernel="linear", C=1.0, class_weight="balanced")
    svm.fit(np.vstack([pos, neg]), np.r_[np.ones(5), np.zeros(40)])
    scorer = fit_svm(pos, neg)
    assert scorer.decision(queries) == pytest.approx(svm.decision_function(queries), abs=1e-9)
    assert fused_distances(queries, pos, "svm", scorer=scorer) == pytest.approx(
        -svm.decision_function(queries)
    )
    # the identity's side is positive: its own references score higher than the negatives
    assert scorer.decision(pos).min() > scorer.decision(neg).max()


def test_identity_svms_use_the_other_identities_as_negatives() -> None:
    rng = np.random.default_rng(4)
    groups = [rng.normal(loc=3 * k, size=(3, 2)) for k in range(3)]
    scorers = fit_identity_svms(groups)
    for k in range(3):
        neg = np.vstack([g for j, g in enumerate(groups) if j != k])
        direct = SVC(kernel="linear", C=1.0, class_weight="balanced")
        direct.fit(np.vstack([groups[k], neg]), np.r_[np.ones(3), np.zeros(6)])
        assert scorers[k].weights == pytest.approx(direct.coef_[0], abs=1e-9)
        assert scorers[k].bias == pytest.approx(direct.intercept_[0], abs=1e-9)


def test_linear_scorer_by_hand() -> None:
    s = LinearScorer(weights=np.array([2.0, -1.0]), bias=0.5)
    assert s.decision([[1.0, 1.0], [0.0, 3.0]]).tolist() == [1.5, -2.5]
    assert s.distance([[1.0, 1.0]]).tolist() == [-1.5]


def test_errors() -> None:
    with pytest.raises(ConfigError, match="unknown fusion"):
        fused_distances(QUERIES, REFS, "median")
    with pytest.raises(ConfigError, match="classifier"):
        fused_distances(QUERIES, REFS, "svm")
    with pytest.raises(DataError, match="at least two identities"):
        fit_identity_svms([REFS])
    with pytest.raises(DataError, match="dimensions"):
        distance_matrix(QUERIES, np.zeros((2, 3)))
    with pytest.raises(DataError, match="non-finite"):
        fused_distances([[np.nan, 0.0]], REFS)
    with pytest.raises(DataError, match="non-empty"):
        fused_distances(QUERIES, np.zeros((0, 2)))


def test_doctests() -> None:
    import doctest

    from siamese.evaluation import fusion

    result = doctest.testmod(fusion)
    assert result.attempted > 0 and result.failed == 0

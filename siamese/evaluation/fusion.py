"""Fusing a query's comparison with an identity's R enrolled references into one distance.

Rules (`FUSIONS`):
    "mean": the mean distance from the query to the R references.
    "min": the distance to the nearest reference.
    "template": the distance to the mean of the references (for cosine, the re-normalised mean of
        the unit-length references).
    "adaptive": the template distance minus `SPREAD_WEIGHT` times the identity's reference spread
        (`reference_spread`: how far its references lie from the template of the others), i.e. a
        per-identity threshold, looser for an identity whose own images vary more.
    "svm": a writer-dependent linear SVM per identity, trained on its references (positives)
        against other identities' references (negatives), as in Hafemann et al.'s sigver; the
        fused distance is the NEGATED decision value.

Every fused value is a DISTANCE, like a pair distance: lower means "more likely the claimed
identity", the claim is accepted when `distance <= threshold`, and `siamese.evaluation.distances`
(the one owner of the score sign) turns it into scores. With one reference, "mean", "min",
"template" and "adaptive" (no spread) all equal the pair distance of `siamese.models.twin.pair_distance`.

NumPy only; scikit-learn is imported by `fit_svm` alone, so scoring a stored classifier is free of it.

>>> refs = np.array([[0.0, 0.0], [2.0, 0.0]])
>>> query = np.array([[1.0, 1.0]])
>>> rules = ("mean", "min", "template", "adaptive")
>>> [round(float(fused_distances(query, refs, rule)[0]), 4) for rule in rules]
[1.4142, 1.4142, 1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from siamese.errors import ConfigError, DataError
from siamese.names import DISTANCES, FUSIONS, check_choice

FloatArray = npt.NDArray[np.float64]
PairMetric = Callable[[FloatArray, FloatArray], npt.ArrayLike]
"""A learned pairwise distance: `(Q, D)` and `(R, D)` features -> `(Q, R)` distances (lower = same)."""
Distance = str | PairMetric
"""A distance name of `DISTANCES`, or a `PairMetric` (e.g. a pair classifier's negated logit)."""

# The "adaptive" rule's weight of the reference spread. Chosen on validation identities only (the
# writers/people that calibrate thresholds, never the test ones) of all 5 CEDAR and 4 ORL folds:
# 0 (plain template), 0.25, 0.5, 0.75, 1; from 0.25 to 0.75 all lowered their EER at R >= 3, and at
# 1 CEDAR's random-forgery EER rose again (`benchmarks/spread_weight.py`).
SPREAD_WEIGHT = 0.5

_EPS = 1e-8  # the norm floor of torch's cosine_similarity, so cosine distances match pair_distance


def _rows(x: npt.ArrayLike, name: str) -> FloatArray:
    """`x` as a non-empty, finite `(N, D)` float64 array, or a `DataError`."""
    out = np.asarray(x, dtype=np.float64)
    if out.ndim != 2 or out.shape[0] == 0 or out.shape[1] == 0:
        raise DataError(f"{name} must be a non-empty (N, D) array, got shape {out.shape}")
    if not np.isfinite(out).all():
        raise DataError(f"{name} contains non-finite values (NaN or inf)")
    return out


def _unit(x: FloatArray) -> FloatArray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), _EPS)


def distance_matrix(
    queries: npt.ArrayLike, references: npt.ArrayLike, distance: Distance = "euclidean"
) -> FloatArray:
    """Distances between every query and every reference.

    Args:
        queries: `(Q, D)` embeddings.
        references: `(R, D)` embeddings.
        distance: "euclidean" (L2 norm of the difference), "cosine" (`1 - cos`) or a `PairMetric`.

    Returns:
        `(Q, R)` float64 distances.

    >>> distance_matrix([[0.0, 0.0]], [[3.0, 4.0], [1.0, 0.0]]).tolist()
    [[5.0, 1.0]]
    >>> distance_matrix([[1.0, 0.0]], [[0.0, 2.0]], "cosine").tolist()
    [[1.0]]
    >>> distance_matrix([[1.0], [2.0]], [[0.0]], lambda q, r: q @ r.T - 1.0).tolist()
    [[-1.0], [-1.0]]
    """
    if not callable(distance):
        check_choice(distance, DISTANCES, "distance")
    q, r = _rows(queries, "queries"), _rows(references, "references")
    if q.shape[1] != r.shape[1]:
        raise DataError(f"queries have {q.shape[1]} dimensions but references {r.shape[1]}")
    if callable(distance):
        out = np.asarray(distance(q, r), dtype=np.float64)
        if out.shape != (len(q), len(r)):
            raise DataError(f"the pair metric returned shape {out.shape}, expected {(len(q), len(r))}")
        return out
    if distance == "cosine":
        return 1.0 - _unit(q) @ _unit(r).T  # (Q, R)
    sq = (q**2).sum(1)[:, None] - 2.0 * q @ r.T + (r**2).sum(1)[None, :]  # (Q, R)
    return np.sqrt(np.maximum(sq, 0.0))


def reference_template(references: npt.ArrayLike, distance: Distance = "euclidean") -> FloatArray:
    """The mean of an identity's references; for cosine, the re-normalised mean of the unit references
    (cosine ignores lengths, so a longer reference does not weigh more); for a `PairMetric`, the mean.

    >>> reference_template([[1.0, 0.0], [0.0, 1.0]]).tolist()
    [0.5, 0.5]
    >>> [round(v, 4) for v in reference_template([[1.0, 0.0], [0.0, 1.0]], "cosine").tolist()]
    [0.7071, 0.7071]
    """
    if not callable(distance):
        check_choice(distance, DISTANCES, "distance")
    refs = _rows(references, "references")  # (R, D)
    if distance == "cosine":
        return _unit(_unit(refs).mean(axis=0))  # (D,)
    return refs.mean(axis=0)


def reference_spread(references: npt.ArrayLike, distance: Distance = "euclidean") -> float:
    """How far an identity's references lie from one another: the mean, over its R references, of
    the distance from each to the `reference_template` of the other R - 1 (leave-one-out, so each
    is measured like a new genuine query). 0 for a single reference.

    >>> reference_spread([[0.0, 0.0], [2.0, 0.0]])
    2.0
    >>> reference_spread([[1.0, 2.0]])
    0.0
    """
    refs = _rows(references, "references")  # (R, D)
    if len(refs) < 2:
        return 0.0
    loo = [
        distance_matrix(
            refs[i : i + 1], reference_template(np.delete(refs, i, axis=0), distance)[None, :], distance
        )
        for i in range(len(refs))
    ]  # R x (1, 1)
    return float(np.mean(loo))


@dataclass(frozen=True)
class LinearScorer:
    """A linear decision function `x @ weights + bias` (positive = the identity).

    Attributes:
        weights: `(D,)` float64.
        bias: the intercept.
    """

    weights: FloatArray
    bias: float

    def decision(self, x: npt.ArrayLike) -> FloatArray:
        """Decision values `(Q,)` of `(Q, D)` embeddings; higher = more likely the identity."""
        return _rows(x, "queries") @ np.asarray(self.weights, dtype=np.float64) + float(self.bias)

    def distance(self, x: npt.ArrayLike) -> FloatArray:
        """The fused "distance" `(Q,)`: the negated decision value.

        >>> LinearScorer(np.array([1.0, -1.0]), 0.5).distance([[2.0, 1.0]]).tolist()
        [-1.5]
        """
        return -self.decision(x)


def fit_svm(positives: npt.ArrayLike, negatives: npt.ArrayLike, c: float = 1.0) -> LinearScorer:
    """A linear SVM separating an identity's references from other identities' references.

    scikit-learn's `SVC(kernel="linear", C=c, class_weight="balanced")` (libsvm, deterministic),
    positives labelled 1, so its decision function is positive on the identity's side.

    Args:
        positives: `(P, D)` the identity's reference embeddings.
        negatives: `(N, D)` other identities' reference embeddings.
        c: the SVM's regularisation parameter C.

    Raises:
        DataError: no positives or no negatives, or mismatched dimensions.
    """
    from sklearn.svm import SVC

    pos, neg = _rows(positives, "positives"), _rows(negatives, "negatives")
    if pos.shape[1] != neg.shape[1]:
        raise DataError(f"positives have {pos.shape[1]} dimensions but negatives {neg.shape[1]}")
    x = np.concatenate([pos, neg])  # (P + N, D)
    y = np.concatenate([np.ones(len(pos), dtype=int), np.zeros(len(neg), dtype=int)])
    svm = SVC(kernel="linear", C=c, class_weight="balanced").fit(x, y)
    return LinearScorer(weights=np.asarray(svm.coef_[0], dtype=np.float64), bias=float(svm.intercept_[0]))


def fit_identity_svms(references: Sequence[npt.ArrayLike], c: float = 1.0) -> list[LinearScorer]:
    """One `fit_svm` per identity: its references against every other identity's references.

    Args:
        references: per identity, its `(R_k, D)` reference embeddings.
        c: the SVMs' C.

    Raises:
        DataError: fewer than two identities (no negatives).
    """
    groups = [_rows(r, "references") for r in references]
    if len(groups) < 2:
        raise DataError("svm fusion needs at least two identities (the others' references are its negatives)")
    return [
        fit_svm(own, np.concatenate([g for j, g in enumerate(groups) if j != k]), c)
        for k, own in enumerate(groups)
    ]


def _check_rule(rule: str, scorer: object) -> None:
    check_choice(rule, FUSIONS, "fusion")
    if rule == "svm" and scorer is None:
        raise ConfigError("svm fusion needs the identity's fitted classifier (enrol with `siamese enroll`)")


def fused_distances(
    queries: npt.ArrayLike,
    references: npt.ArrayLike,
    rule: str = "mean",
    distance: Distance = "euclidean",
    scorer: LinearScorer | None = None,
    spread_weight: float = SPREAD_WEIGHT,
) -> FloatArray:
    """Fused distance `(Q,)` of each query to ONE identity's references.

    Args:
        queries: `(Q, D)` embeddings.
        references: `(R, D)` the identity's reference embeddings.
        rule: one of `FUSIONS`.
        distance: the model's distance, "euclidean", "cosine" or a `PairMetric`.
        scorer: the identity's classifier, needed (only) by "svm".
        spread_weight: the weight of the reference spread in "adaptive".

    Raises:
        ConfigError: unknown rule, or "svm" without a scorer. DataError: bad arrays.

    >>> fused_distances([[0.0, 0.0]], [[3.0, 4.0], [1.0, 0.0]], "mean").tolist()
    [3.0]
    """
    _check_rule(rule, scorer)
    scorers = None if scorer is None else [scorer]
    return fused_matrix(queries, [references], rule, distance, scorers, spread_weight)[:, 0]


def fused_matrix(
    queries: npt.ArrayLike,
    references: Sequence[npt.ArrayLike],
    rule: str = "mean",
    distance: Distance = "euclidean",
    scorers: Sequence[LinearScorer] | None = None,
    spread_weight: float = SPREAD_WEIGHT,
) -> FloatArray:
    """Fused distances of every query to every identity: `(Q, K)`, column k for identity k.

    Args:
        queries: `(Q, D)` embeddings.
        references: per identity, its `(R_k, D)` reference embeddings (K identities).
        rule: one of `FUSIONS`.
        distance: "euclidean", "cosine" or a `PairMetric`.
        scorers: per identity its classifier, needed (only) by "svm".
        spread_weight: the weight of the reference spread in "adaptive".

    >>> fused_matrix([[0.0, 0.0]], [[[1.0, 0.0], [3.0, 0.0]], [[0.0, 2.0]]], "min").tolist()
    [[1.0, 2.0]]
    """
    _check_rule(rule, scorers)
    if scorers is not None and len(scorers) != len(references):
        raise DataError(f"{len(scorers)} classifiers for {len(references)} identities")
    q = _rows(queries, "queries")
    if rule == "svm":
        assert scorers is not None
        weights = np.stack([np.asarray(s.weights, dtype=np.float64) for s in scorers])  # (K, D)
        bias = np.array([float(s.bias) for s in scorers])  # (K,)
        return -(q @ weights.T + bias)  # (Q, K)
    if rule in ("template", "adaptive"):
        templates = np.stack([reference_template(r, distance) for r in references])  # (K, D)
        d = distance_matrix(q, templates, distance)  # (Q, K)
        if rule == "template":
            return d
        return d - spread_weight * np.array([reference_spread(r, distance) for r in references])[None, :]
    groups = [_rows(r, "references") for r in references]
    d = distance_matrix(q, np.concatenate(groups), distance)  # (Q, sum R_k)
    bounds = np.cumsum([0] + [len(g) for g in groups])
    reduce = np.mean if rule == "mean" else np.min
    return np.stack([reduce(d[:, a:b], axis=1) for a, b in zip(bounds[:-1], bounds[1:], strict=True)], axis=1)

"""The R-reference protocol on hand-placed embeddings: reference choice, trials, calibration, metrics."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from siamese.errors import ConfigError, DataError
from siamese.evaluation import references as protocol
from siamese.evaluation.distances import choose_threshold, distance_report
from siamese.evaluation.fusion import fit_identity_svms, fused_distances
from siamese.evaluation.references import (
    calibratable_count,
    calibrate_references,
    choose_references,
    reference_metrics,
    reference_trials,
)


def _clusters(n_ids: int = 4, per_id: int = 6, seed: int = 0, spread: float = 0.6):
    """Identity k around (3k, 0) in 2-D with Gaussian noise; labels 'p0', 'p1', ..."""
    rng = np.random.default_rng(seed)
    centres = np.array([[3.0 * k, 0.0] for k in range(n_ids)])
    emb = np.concatenate([c + spread * rng.normal(size=(per_id, 2)) for c in centres])
    labels = np.repeat([f"p{k}" for k in range(n_ids)], per_id)
    return emb, labels


def test_choose_references_is_seeded_nested_and_skips_small_identities() -> None:
    labels = np.array(["a"] * 6 + ["b"] * 4 + ["c"] * 2)
    e3 = choose_references(labels, 3, seed=7)
    assert e3.identities == ("a", "b") and e3.skipped == ("c",)
    assert all(
        len(r) == 3 and set(labels[r]) == {name} for r, name in zip(e3.references, e3.identities, strict=True)
    )
    refs = set(np.concatenate(e3.references).tolist())
    # queries: every genuine image of an enrolled identity that is not a reference
    assert set(e3.queries.tolist()) == set(range(10)) - refs
    again = choose_references(labels, 3, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(again.references, e3.references, strict=True))
    e1 = choose_references(labels, 1, seed=7)
    assert e1.identities == ("a", "b", "c") and e1.skipped == ()
    for small, big in zip(e1.references[:2], e3.references, strict=True):
        assert set(small) <= set(big)  # nested: R = 1 is the first reference of R = 3
    other = choose_references(labels, 3, seed=8)
    assert any(not np.array_equal(x, y) for x, y in zip(other.references, e3.references, strict=True))
    # an identity's references do not depend on the other identities
    alone = choose_references(labels[:10], 3, seed=7)
    assert np.array_equal(alone.references[0], e3.references[0])
    with pytest.raises(ConfigError):
        choose_references(labels, 0)


def test_trials_match_a_naive_loop() -> None:
    emb, labels = _clusters()
    forged = np.array([[0.5, 0.5], [3.5, -0.5], [9.0, 9.0]])
    forged_of = np.array(["p0", "p1", "nobody"])  # the last imitates no enrolled identity: left out
    enrolment = choose_references(labels, 2, seed=0)
    for rule in ("mean", "min", "template", "adaptive", "svm"):
        trials = reference_trials(emb, labels, enrolment, rule, "euclidean", (forged, forged_of))
        refs = [emb[r] for r in enrolment.references]
        scorers = fit_identity_svms(refs) if rule == "svm" else [None] * len(refs)
        expected = {"genuine": [], "random": [], "skilled": []}
        for k, name in enumerate(enrolment.identities):
            for q in enrolment.queries:
                d = fused_distances(emb[q : q + 1], refs[k], rule, "euclidean", scorers[k])[0]
                expected["genuine" if labels[q] == name else "random"].append(d)
            for f, owner in zip(forged, forged_of, strict=True):
                if owner == name:
                    expected["skilled"].append(
                        fused_distances(f[None], refs[k], rule, "euclidean", scorers[k])[0]
                    )
        for kind, values in expected.items():
            got = np.sort(trials.distances[trials.kind == kind])
            assert got == pytest.approx(np.sort(values)), (rule, kind)
        assert np.array_equal(trials.is_same, trials.kind == "genuine")
        # 4 identities x 4 queries: 16 genuine, 16 x 3 random, 2 skilled
        assert [int((trials.kind == k).sum()) for k in ("genuine", "random", "skilled")] == [16, 48, 2]


def test_one_identity_left_is_an_error() -> None:
    labels = np.array(["a"] * 4 + ["b"] * 2)
    with pytest.raises(DataError, match="two such identities"):
        reference_trials(np.zeros((6, 2)), labels, choose_references(labels, 2), "mean")


def test_calibrated_threshold_is_choose_threshold_of_the_trials() -> None:
    emb, labels = _clusters(spread=1.2)
    out = calibrate_references(emb, labels, [1, 3], ["mean", "svm"], rule="eer", seed=2)
    assert set(out) == {"mean", "svm"} and set(out["mean"]) == {"1", "3"}
    for rule in ("mean", "svm"):
        for count in (1, 3):
            trials = reference_trials(emb, labels, choose_references(labels, count, 2), rule)
            err, thr = choose_threshold(trials.distances, trials.is_same, "eer")
            entry = out[rule][str(count)]
            assert entry["threshold"] == pytest.approx(thr) and entry["eer"] == pytest.approx(err)
            assert entry["n_genuine"] == int(trials.is_same.sum()) and entry["n_identities"] == 4
            assert set(entry["calibration"]) == {"coef", "intercept"}


def test_metrics_at_given_thresholds_equal_distance_report() -> None:
    emb, labels = _clusters(spread=1.0, seed=3)
    forged = emb[labels == "p0"][:2] + 0.3
    forged_of = np.array(["p0", "p0"])
    thresholds = {"mean": {"2": {"threshold": 1.5}}}
    report = reference_metrics(
        emb, labels, [2, 5], ["mean", "min"], seed=1, forgeries=(forged, forged_of), thresholds=thresholds
    )
    assert report["fusions"] == ["mean", "min"] and report["seed"] == 1
    part = report["counts"]["2"]
    trials = reference_trials(
        emb, labels, choose_references(labels, 2, 1), "mean", "euclidean", (forged, forged_of)
    )
    assert part["fusion"]["mean"]["threshold"] == 1.5
    for kind in ("random", "skilled"):
        keep = trials.is_same | (trials.kind == kind)
        expected = distance_report(trials.distances[keep], trials.is_same[keep], 1.5, protocol.REPORT_FARS)
        assert part["fusion"]["mean"][kind] == pytest.approx(expected)
    # no threshold for "min": reported without accuracy
    assert part["fusion"]["min"]["threshold"] is None and "accuracy" not in part["fusion"]["min"]["random"]
    # every identity has 6 images: R = 5 leaves one query each
    assert report["counts"]["5"]["n_queries"] == 4 and report["counts"]["5"]["skipped"] == 0
    assert sorted(part["references"]) == ["p0", "p1", "p2", "p3"]


def test_counts_that_leave_one_identity_are_reported_as_errors(caplog: pytest.LogCaptureFixture) -> None:
    emb, labels = _clusters(n_ids=3, per_id=4)
    labels = labels.copy()
    labels[:2] = "p9"  # p9 has 2 images, p0 2, p1 and p2 4: R = 4 leaves no identity
    with caplog.at_level("WARNING"):
        report = reference_metrics(emb, labels, [2, 4], ["mean"])
    assert report["counts"]["2"]["skipped"] == 2 and "fusion" in report["counts"]["2"]
    assert "2 of 4 identities" in caplog.text
    assert "error" in report["counts"]["4"] and "fusion" not in report["counts"]["4"]


def test_calibratable_count() -> None:
    assert calibratable_count(["a"] * 3 + ["b"] * 3) == 2
    assert calibratable_count(["a"] * 3) == 0
    assert calibratable_count(["a"] * 9 + ["b"] * 1) == 0


def test_doctests() -> None:
    result = doctest.testmod(protocol)
    assert result.attempted > 0 and result.failed == 0

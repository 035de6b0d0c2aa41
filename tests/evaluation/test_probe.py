"""The identity-stratified split and the logistic-regression probe against a direct sklearn fit."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from siamese.errors import DataError
from siamese.evaluation.probe import linear_probe_accuracy, stratified_split


def test_split_holds_out_the_fraction_of_each_identity_and_keeps_singletons_labelled():
    labels = np.array([0] * 10 + [1] * 4 + [2] * 2 + [3])
    train, test = stratified_split(labels, test_fraction=0.3, seed=5)
    assert np.intersect1d(train, test).size == 0 and sorted([*train, *test]) == list(range(len(labels)))
    counts = {c: int((labels[test] == c).sum()) for c in range(4)}
    assert counts == {0: 3, 1: 1, 2: 1, 3: 0}  # round(10*.3)=3, round(1.2)=1, 2 images -> 1, singleton -> 0
    again = stratified_split(labels, test_fraction=0.3, seed=5)
    assert np.array_equal(again[1], test)
    assert not np.array_equal(stratified_split(labels, 0.3, seed=6)[1], test)


def test_split_never_holds_out_every_image_of_an_identity():
    train, test = stratified_split([7, 7, 7], test_fraction=0.99)
    assert len(test) == 2 and len(train) == 1


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_split_refuses_a_fraction_outside_the_open_interval(fraction):
    with pytest.raises(DataError, match="test_fraction"):
        stratified_split([0, 0, 1, 1], fraction)


def test_split_refuses_identities_of_one_image():
    with pytest.raises(DataError, match="at least two images"):
        stratified_split([0, 1, 2])


def test_linear_probe_equals_a_direct_sklearn_fit():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 6))
    y = np.repeat(np.arange(5), 12)
    x = centres[y] + rng.normal(scale=1.2, size=(len(y), 6))  # overlapping classes: accuracy < 1
    train, test = stratified_split(y, 0.5, seed=1)
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(C=0.5, max_iter=1000).fit(scaler.transform(x[train]), y[train])
    expected = float(np.mean(clf.predict(scaler.transform(x[test])) == y[test]))
    got = linear_probe_accuracy(x[train], y[train], x[test], y[test], c=0.5)
    assert got == pytest.approx(expected) and 0.2 < got < 1.0


def test_linear_probe_needs_two_classes():
    with pytest.raises(DataError, match="two identities"):
        linear_probe_accuracy([[0.0], [1.0]], [3, 3], [[0.5]], [3])

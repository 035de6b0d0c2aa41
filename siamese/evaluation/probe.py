"""Representation probes on frozen embeddings: the identity-stratified split and the linear probe.

A probe asks how much identity information a (possibly self-supervised) encoder's embeddings hold,
without fine-tuning it: each identity's images are split into a labelled part (the k-NN memory, the
linear classifier's training set) and held-out queries, so every query's identity was seen.

>>> train, test = stratified_split([0, 0, 0, 0, 1, 1, 2], test_fraction=0.5, seed=0)
>>> sorted(train.tolist() + test.tolist()) == list(range(7)), len(test)
(True, 3)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from siamese.errors import DataError


def stratified_split(
    labels: npt.ArrayLike, test_fraction: float = 0.5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split image indices per identity into a labelled part and held-out queries.

    Each identity with n >= 2 images puts `round(n * test_fraction)` of them (at least 1, at most
    n - 1), chosen with `seed`, into the queries; an identity with one image is labelled only.

    Args:
        labels: `(N,)` identity of each image.
        test_fraction: share of each identity's images held out, in (0, 1).
        seed: seed of the choice.

    Returns:
        `(train, test)` sorted index arrays, disjoint, together covering every image.

    Raises:
        DataError: `test_fraction` outside (0, 1), or no identity has two images.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test: list[int] = []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        if len(idx) >= 2:
            test += idx[: min(max(round(len(idx) * test_fraction), 1), len(idx) - 1)].tolist()
    if not test:
        raise DataError("a probe needs an identity with at least two images; every identity has one")
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def linear_probe_accuracy(
    train_x: npt.ArrayLike,
    train_y: npt.ArrayLike,
    test_x: npt.ArrayLike,
    test_y: npt.ArrayLike,
    c: float = 1.0,
    max_iter: int = 1000,
) -> float:
    """Accuracy of a multinomial logistic regression trained on frozen features.

    The features are standardised with the training part's mean and scale (scikit-learn's
    `StandardScaler`), then `LogisticRegression(C=c)` (L-BFGS) is fitted on them.

    Args:
        train_x: `(N, D)` training features; train_y: `(N,)` their labels.
        test_x: `(M, D)` query features; test_y: `(M,)` their labels.
        c: inverse L2 regularisation strength.
        max_iter: L-BFGS iterations.

    Raises:
        DataError: fewer than two classes to train on.

    >>> linear_probe_accuracy([[0.0], [1.0], [10.0], [11.0]], [0, 0, 1, 1], [[0.5], [10.5]], [0, 1])
    1.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(train_y)
    if len(np.unique(y)) < 2:
        raise DataError("a linear probe needs at least two identities")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
    clf.fit(np.asarray(train_x, dtype=np.float64), y)
    predicted = clf.predict(np.asarray(test_x, dtype=np.float64))
    return float(np.mean(predicted == np.asarray(test_y)))

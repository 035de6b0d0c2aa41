"""Retrieval metrics (precision@1, R-precision, MAP@R) via pytorch-metric-learning's AccuracyCalculator."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from siamese.errors import ConfigError, DataError
from siamese.names import DISTANCES, check_choice

RETRIEVAL_METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")


def _check_k(k: int | str | None) -> None:
    if k is None or k == "max_bin_count":
        return
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer, 'max_bin_count' or None, got {k!r}")


def _prepare(embeddings: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 embeddings and (N,) int64 class indices, or raise `DataError`."""
    try:
        emb = np.asarray(embeddings, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise DataError(f"embeddings must be numbers: {err}") from None
    lab = np.asarray(labels)
    if emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] == 0:
        raise DataError(f"embeddings must be a non-empty (N, D) array, got shape {emb.shape}")
    if lab.ndim != 1 or len(lab) != len(emb):
        raise DataError(
            f"labels must be 1-D with one label per embedding ({len(emb)}), got shape {lab.shape}"
        )
    if not np.isfinite(emb).all():
        raise DataError("embeddings contain non-finite values (NaN or inf)")
    _, index, counts = np.unique(lab, return_inverse=True, return_counts=True)
    if counts.max() < 2:
        raise DataError("every label occurs once; retrieval metrics need a class with two or more embeddings")
    return emb, index.astype(np.int64)


def retrieval_metrics(
    embeddings: npt.ArrayLike,
    labels: npt.ArrayLike,
    k: int | str | None = None,
    distance: str = "euclidean",
    device: str = "cpu",
) -> dict[str, float]:
    """Leave-one-out retrieval: every embedding queries all the others.

    Uses pml's `AccuracyCalculator` with the queries as the reference set (`ref_includes_query`, so
    each query's own match is excluded) and a brute-force torch k-NN (`CustomKNN`), so faiss is not
    needed. Queries whose label occurs only once have nothing to retrieve and are left out (pml's rule).

    Args:
        embeddings: (N, D) embeddings.
        labels: (N,) class labels (any dtype).
        k: Neighbours retrieved per query: None = all others; "max_bin_count" = the largest class
            size minus one (enough for R-precision and MAP@R, and cheaper); an int smaller than that
            makes R-precision and MAP@R wrong (pml logs a warning).
        distance: "euclidean" or "cosine".
        device: Torch device for the k-NN.

    Returns:
        `precision_at_1`, `r_precision`, `mean_average_precision_at_r`.

    >>> emb = [[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [5.0, 5.2], [0.0, 0.3]]
    >>> retrieval_metrics(emb, ["a", "a", "b", "b", "b"])["precision_at_1"]
    0.8
    """
    import torch
    from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    check_choice(distance, DISTANCES, "distance")
    _check_k(k)
    emb, lab = _prepare(embeddings, labels)
    knn_distance = CosineSimilarity() if distance == "cosine" else LpDistance(normalize_embeddings=False)
    calculator = AccuracyCalculator(
        include=RETRIEVAL_METRICS, k=k, device=torch.device(device), knn_func=CustomKNN(knn_distance)
    )
    result = calculator.get_accuracy(torch.from_numpy(emb), torch.from_numpy(lab))
    return {name: float(result[name]) for name in RETRIEVAL_METRICS}

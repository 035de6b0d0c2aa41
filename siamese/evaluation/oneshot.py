"""N-way one-shot classification: each query takes the label of its nearest support embedding."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from siamese.errors import DataError
from siamese.names import DISTANCES, check_choice


def _as_embeddings(x: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    """Return `x` as a non-empty, finite (N, D) float64 array, or raise `DataError`."""
    try:
        emb = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{name} must be numbers: {err}") from None
    if emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] == 0:
        raise DataError(f"{name} must be a non-empty (N, D) array, got shape {emb.shape}")
    if not np.isfinite(emb).all():
        raise DataError(f"{name} contains non-finite values (NaN or inf)")
    return emb


def _check_labels(labels: npt.ArrayLike, n: int, name: str) -> np.ndarray:
    """Return `labels` as a 1-D array of length `n`, or raise `DataError`."""
    out = np.asarray(labels)
    if out.ndim != 1 or len(out) != n:
        raise DataError(f"{name} must be 1-D with one label per embedding ({n}), got shape {out.shape}")
    return out


def _unit_rows(x: npt.NDArray[np.float64], name: str) -> npt.NDArray[np.float64]:
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    if (norms == 0).any():
        raise DataError(f"{name} has an all-zero embedding; its cosine distance is undefined")
    return x / norms


def _distance_matrix(query: np.ndarray, support: np.ndarray, distance: str) -> npt.NDArray[np.float64]:
    """(Q, S) distances; euclidean is returned squared, which keeps the nearest neighbour unchanged."""
    if distance == "cosine":
        return 1.0 - _unit_rows(query, "query_emb") @ _unit_rows(support, "support_emb").T
    sq = (query**2).sum(1)[:, None] - 2.0 * query @ support.T + (support**2).sum(1)[None, :]
    return np.maximum(sq, 0.0)


def one_shot_predictions(
    support_emb: npt.ArrayLike,
    support_labels: npt.ArrayLike,
    query_emb: npt.ArrayLike,
    distance: str = "euclidean",
) -> np.ndarray:
    """Label of the nearest support embedding for every query (1-nearest-neighbour).

    In an N-way one-shot episode the support set holds one embedding per class; with several per
    class this is plain 1-NN. Ties go to the first support embedding.

    Args:
        support_emb: (S, D) support embeddings.
        support_labels: (S,) their labels (any dtype).
        query_emb: (Q, D) query embeddings.
        distance: "euclidean" or "cosine" (1 - cosine similarity).

    Returns:
        (Q,) predicted labels, with the dtype of `support_labels`.

    >>> one_shot_predictions([[0, 0], [10, 0]], ["a", "b"], [[1, 1], [9, -2]]).tolist()
    ['a', 'b']
    """
    check_choice(distance, DISTANCES, "distance")
    support = _as_embeddings(support_emb, "support_emb")  # (S, D)
    query = _as_embeddings(query_emb, "query_emb")  # (Q, D)
    labels = _check_labels(support_labels, len(support), "support_labels")
    if support.shape[1] != query.shape[1]:
        raise DataError(f"support_emb has dimension {support.shape[1]} but query_emb {query.shape[1]}")
    nearest = np.argmin(_distance_matrix(query, support, distance), axis=1)  # (Q,)
    return labels[nearest]


def n_way_one_shot_accuracy(
    support_emb: npt.ArrayLike,
    support_labels: npt.ArrayLike,
    query_emb: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    distance: str = "euclidean",
) -> float:
    """Fraction of queries whose nearest support embedding has the query's label.

    Args:
        support_emb: (S, D) support embeddings, typically one per class.
        support_labels: (S,) their labels.
        query_emb: (Q, D) query embeddings.
        query_labels: (Q,) true labels of the queries.
        distance: "euclidean" or "cosine".

    >>> support = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]
    >>> n_way_one_shot_accuracy(support, [0, 1, 2], [[0.9, 0.2], [0.1, 0.8]], [0, 2], distance="cosine")
    0.5
    """
    predictions = one_shot_predictions(support_emb, support_labels, query_emb, distance)
    truth = _check_labels(query_labels, len(predictions), "query_labels")
    return float(np.mean(predictions == truth))

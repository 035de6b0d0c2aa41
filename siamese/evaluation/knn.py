"""k-nearest-neighbour accuracy of embeddings, the standard check of a self-supervised representation.

Votes are weighted as in InstDisc (Wu et al. 2018): each of the k most cosine-similar memory items
votes for its class with weight `exp(similarity / temperature)`.

>>> memory = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]
>>> knn_accuracy(memory, [0, 0, 1], [[1.0, 0.05], [0.1, 1.0]], [0, 1], k=1)
1.0
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

KNN_K = 20
"""Default neighbours of the vote (InstDisc uses 200 on ImageNet; 20 suits small labelled sets)."""
KNN_TEMPERATURE = 0.07
"""Default vote temperature, as in InstDisc."""


def _unit(x: npt.ArrayLike) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def knn_predict(
    memory: npt.ArrayLike,
    memory_labels: npt.ArrayLike,
    queries: npt.ArrayLike,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
) -> np.ndarray:
    """Predicted class of each query: the class with the largest summed weight among its k neighbours.

    Args:
        memory: `(M, D)` embeddings with known labels.
        memory_labels: `(M,)` integer labels.
        queries: `(Q, D)` embeddings to classify.
        k: neighbours per query (capped at M).
        temperature: vote weight `exp(cos / temperature)`.

    Returns:
        `(Q,)` predicted labels.
    """
    if k < 1 or temperature <= 0:
        raise ValueError(f"need k >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    mem, qry = _unit(memory), _unit(queries)
    labels = np.asarray(memory_labels)
    classes, label_idx = np.unique(labels, return_inverse=True)
    k = min(k, len(mem))
    sim = qry @ mem.T  # (Q, M)
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]  # (Q, k)
    weights = np.exp(np.take_along_axis(sim, top, axis=1) / temperature)  # (Q, k)
    votes = np.zeros((len(qry), len(classes)))
    np.add.at(votes, (np.arange(len(qry))[:, None], label_idx[top]), weights)
    return classes[votes.argmax(axis=1)]


def knn_accuracy(
    memory: npt.ArrayLike,
    memory_labels: npt.ArrayLike,
    queries: npt.ArrayLike,
    query_labels: npt.ArrayLike,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
) -> float:
    """Share of queries whose weighted k-NN vote (see `knn_predict`) is their true class."""
    predicted = knn_predict(memory, memory_labels, queries, k, temperature)
    return float(np.mean(predicted == np.asarray(query_labels)))


def embedding_spread(embeddings: npt.ArrayLike) -> float:
    """Mean per-dimension standard deviation of L2-normalised embeddings, times sqrt(D).

    About 1 for embeddings spread over the sphere, 0 when they have collapsed to one point
    (lightly's `std_of_l2_normalized` times sqrt(D), so one threshold fits every size).

    >>> embedding_spread([[1.0, 0.0], [1.0, 0.0]])
    0.0
    """
    unit = _unit(embeddings)
    return float(unit.std(axis=0).mean() * np.sqrt(unit.shape[1]))

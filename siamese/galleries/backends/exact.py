"""Exact search in memory: one matrix product per batch of queries (NumPy/BLAS, no extra package)."""

from __future__ import annotations

from typing import Any

import numpy as np

from siamese.errors import DataError
from siamese.galleries.backends.base import SearchIndex, check_vectors, pad_results, unit_rows

# compact the matrix once this share of its rows has been removed (until then they are masked)
_COMPACT_AT = 0.25


def top_k(dist: np.ndarray, k: int) -> np.ndarray:
    """Column positions of the k smallest values of each row of `(Q, M)` distances, smallest first;
    ties go to the lower position (so results do not depend on how the partition fell)."""
    q, m = dist.shape
    k = min(k, m)
    if k == 0:
        return np.zeros((q, 0), np.int64)
    out = np.empty((q, k), np.int64)
    for row in range(q):
        d = dist[row]
        if k < m:
            kth = np.partition(d, k - 1)[k - 1]
            cand = np.flatnonzero(d <= kth)  # every tie of the k-th value, in position order
        else:
            cand = np.arange(m)
        order = np.argsort(d[cand], kind="stable")[:k]
        out[row] = cand[order]
    return out


class ExactIndex(SearchIndex):
    """Brute-force k-nearest search: exact, in memory, removal by masking (compacted lazily)."""

    name = "exact"
    exact = True

    def __init__(self, distance: str, dim: int, **options: Any) -> None:
        super().__init__(distance, dim)
        self._vectors = np.zeros((0, self.dim), np.float32)  # unit rows for cosine
        self._sq = np.zeros(0, np.float32)  # squared norms, for euclidean
        self._ids = np.zeros(0, np.int64)  # -1 marks a removed row
        self._live = 0

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = check_vectors(ids, vectors, self.dim)
        if self.distance == "cosine":
            vectors = unit_rows(vectors)
        self._vectors = np.concatenate([self._vectors, vectors])
        self._sq = np.concatenate([self._sq, (vectors.astype(np.float32) ** 2).sum(1)])
        self._ids = np.concatenate([self._ids, ids])
        self._live += len(ids)

    def remove(self, ids: np.ndarray) -> None:
        rows = np.flatnonzero(np.isin(self._ids, np.asarray(ids, dtype=np.int64)) & (self._ids >= 0))
        self._ids[rows] = -1
        self._live -= len(rows)
        if len(self._ids) and (len(self._ids) - self._live) > _COMPACT_AT * len(self._ids):
            keep = self._ids >= 0
            self._vectors, self._sq, self._ids = self._vectors[keep], self._sq[keep], self._ids[keep]

    def distances(self, queries: np.ndarray) -> np.ndarray:
        """`(Q, M)` distances to every row held (removed rows at inf), in row order."""
        q = np.asarray(queries, dtype=np.float32)
        q = q[None, :] if q.ndim == 1 else q
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise DataError(f"queries must be (Q, {self.dim}), got shape {np.shape(queries)}")
        if self.distance == "cosine":
            dist = 1.0 - unit_rows(q) @ self._vectors.T  # (Q, M)
        else:
            sq = (q**2).sum(1)[:, None] - 2.0 * (q @ self._vectors.T) + self._sq[None, :]
            dist = np.sqrt(np.maximum(sq, 0.0))
        if self._live < len(self._ids):
            dist[:, self._ids < 0] = np.inf
        return dist

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        dist = self.distances(queries)  # (Q, M)
        cols = top_k(dist, min(k, self._live))
        found = np.take_along_axis(dist, cols, 1), self._ids[cols]
        return pad_results(*found, k)

    def __len__(self) -> int:
        return self._live

"""The one small interface every search backend implements.

A `SearchIndex` holds `(M, D)` float32 vectors under stable int64 ids and answers k-nearest
queries in the gallery's distance ("cosine": `1 - cos`, "euclidean": the L2 norm of the
difference, never squared), so any backend's distances compare with `siamese.evaluation.fusion`'s.
Ids, not row positions, cross the interface: removing vectors never renumbers the others.

A backend that keeps state outside memory (a file, a database) persists it itself: `save` writes
into the gallery folder, `open` reopens it; `describe` is what the gallery records about it.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from siamese.errors import DataError
from siamese.names import DISTANCES, check_choice

_EPS = 1e-8  # the norm floor of siamese.evaluation.fusion, so cosine distances agree


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32), with fusion's norm floor."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)


def check_vectors(ids: np.ndarray, vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """`(ids (M,) int64, vectors (M, D) float32)`, or a `DataError` for mismatched or non-finite input."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape != (len(ids), dim):
        raise DataError(f"expected {len(ids)} vectors of {dim} dimensions, got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise DataError("vectors contain non-finite values (NaN or inf)")
    if len(np.unique(ids)) != len(ids):
        raise DataError("vector ids must be unique")
    return ids, vectors


class SearchIndex(ABC):
    """k-nearest search over vectors with stable int64 ids.

    Args:
        distance: "cosine" or "euclidean", the gallery's distance.
        dim: D, the vector size.
        **options: the backend's own options (e.g. faiss's `nlist`, `nprobe`).

    Attributes:
        name: the registry name.
        exact: True when `search` returns the exact nearest neighbours.
    """

    name: ClassVar[str]
    exact: ClassVar[bool]

    def __init__(self, distance: str, dim: int, **options: Any) -> None:
        self.distance = check_choice(distance, DISTANCES, "distance")
        self.dim = int(dim)

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add `(M, D)` vectors under the `(M,)` ids (ids not already present)."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> None:
        """Remove the vectors with these ids (unknown ids are ignored); they are never returned again."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest vectors of each `(Q, D)` query.

        Returns:
            `(distances (Q, k) float32, ids (Q, k) int64)`, nearest first; where fewer than k
            vectors exist, the row is padded with distance inf and id -1.
        """

    @abstractmethod
    def __len__(self) -> int:
        """The number of vectors held."""

    def describe(self) -> dict[str, Any]:
        """What a gallery records to reopen this index: its name and options."""
        return {"backend": self.name}

    def close(self) -> None:  # noqa: B027 - in-memory backends hold no connection
        """Release what the index holds open (a database client); nothing for in-memory backends."""

    def save(self, directory: str | os.PathLike) -> None:  # noqa: B027 - in-memory backends keep nothing
        """Persist the index into the gallery folder (nothing for in-memory backends)."""

    @classmethod
    def open(cls, folder: str | os.PathLike, distance: str, dim: int, **options: Any) -> SearchIndex | None:
        """Reopen an index persisted into `folder` (its `save` folder), or None when there is none to
        reopen (the caller rebuilds). Options may name the gallery folder as `directory`."""
        return None


def pad_results(dist: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad `(Q, k')` results to k columns with (inf, -1)."""
    q, have = dist.shape
    if have >= k:
        return dist[:, :k].astype(np.float32), ids[:, :k].astype(np.int64)
    out_d = np.full((q, k), np.inf, np.float32)
    out_i = np.full((q, k), -1, np.int64)
    out_d[:, :have], out_i[:, :have] = dist, ids
    return out_d, out_i

"""faiss search backends: "faiss-flat" (exact), "faiss-ivf" and "faiss-hnsw" (approximate).

Cosine galleries store unit rows under faiss's inner product and report `1 - ip`; euclidean ones
use faiss's L2, whose squared distances are turned into the plain norm. Each index persists as
one file, `gallery.faiss` in the gallery folder, written atomically (a temporary file, then a rename).

faiss runs its loops with OpenMP on as many threads as it likes; the `threads` option caps them
for this index's calls only (the process-wide setting is restored afterwards, so two indexes with
different caps must not search from two Python threads at once).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np

from siamese.errors import ConfigError, DataError
from siamese.galleries.backends.base import SearchIndex, check_vectors, pad_results, unit_rows
from siamese.names import option_names

logger = logging.getLogger(__name__)

INDEX_FILE = "gallery.faiss"

# faiss-hnsw rebuilds its graph once more than this share of the stored vectors are tombstones
_REBUILD_AT = 0.5


def _positive(value: Any, what: str) -> int:
    """`value` as an int >= 1, or a `ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def reject_unknown(index: SearchIndex, unknown: dict[str, Any]) -> None:
    """A `ConfigError` naming options the backend does not take (a typo must not pass silently)."""
    if unknown:
        known = ", ".join(option_names(type(index), skip=("distance", "dim")))
        raise ConfigError(
            f"the {index.name} backend has no option {', '.join(sorted(unknown))}; it takes {known}"
        )


@contextmanager
def omp_threads(threads: int | None) -> Iterator[None]:
    """Cap faiss's OpenMP threads inside the block (None: leave them as they are)."""
    if threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def write_index_atomic(index: Any, path: Path) -> None:
    """`faiss.write_index` to a temporary name beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        faiss.write_index(index, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_index(path: Path) -> Any:
    """The faiss index stored at `path` (as its own class, and owning its memory), or a `DataError`.

    Keep this object: `faiss.downcast_index` would give a proxy that dies with it.
    """
    try:
        return faiss.read_index(str(path))
    except RuntimeError:
        raise DataError(f"{path} is not a readable faiss index (delete it to rebuild)") from None


class FaissIndex(SearchIndex):
    """What the three faiss backends share: metric handling, the search wrapper, the file.

    Args:
        distance: "cosine" or "euclidean".
        dim: D, the vector size.
        threads: cap on faiss's OpenMP threads during `add` and `search` (None: faiss's default).
        directory: the gallery folder; unused (the index is saved where `save` is told).
    """

    exact: ClassVar[bool] = False

    def __init__(
        self,
        distance: str,
        dim: int,
        *,
        threads: int | None = None,
        directory: str | os.PathLike | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__(distance, dim)
        reject_unknown(self, unknown)
        self.threads = None if threads is None else _positive(threads, "threads")
        self.metric = faiss.METRIC_INNER_PRODUCT if self.distance == "cosine" else faiss.METRIC_L2
        self.index: Any = self._new_index()  # Any: faiss's own stubs lack most of what is used here

    # -- what each backend defines --------------------------------------------------------------
    def _new_index(self) -> Any:
        """A new, empty faiss index of this backend's kind."""
        raise NotImplementedError

    def _raw_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss's `(scores (Q, k), ids (Q, k))` for prepared queries; 1 <= k <= len(self)."""
        return self.index.search(queries, k)

    def _adopt(self, index: Any) -> bool:
        """Take over an index read from disk; False when it is not of this backend's kind."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        """Rows as faiss stores and searches them: unit length for cosine, contiguous float32."""
        if self.distance == "cosine":
            vectors = unit_rows(vectors)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise DataError(f"expected queries of {self.dim} dimensions, got shape {q.shape}")
        return self._prepare(q)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = self._queries(queries)  # (Q, D)
        have = min(int(k), len(self))
        if have <= 0:
            return pad_results(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64), k)
        with omp_threads(self.threads):
            scores, ids = self._raw_search(q, have)  # (Q, have) each
        if self.distance == "cosine":
            dist = 1.0 - scores
        else:
            dist = np.sqrt(np.maximum(scores, 0.0))  # faiss's L2 is squared
        dist = np.where(ids < 0, np.inf, dist).astype(np.float32)
        return pad_results(dist, ids.astype(np.int64), k)

    def save(self, directory: str | os.PathLike) -> None:
        """Write `gallery.faiss` into the gallery folder (atomically)."""
        write_index_atomic(self.index, Path(directory) / INDEX_FILE)

    @classmethod
    def open(cls, folder: str | os.PathLike, distance: str, dim: int, **options: Any) -> FaissIndex | None:
        """Reopen `gallery.faiss`: None when absent, or when it holds another kind, metric or size of
        index (logged; the caller rebuilds and the next `save` replaces it). Options that shape the
        index (nlist, m, ef_construction) come from the file; the others (nprobe, ef_search,
        threads) from `options`."""
        path = Path(folder) / INDEX_FILE
        if not path.is_file():
            return None
        stored = read_index(path)
        found = cls(distance, dim, **options)
        if stored.d != found.dim or stored.metric_type != found.metric or not found._adopt(stored):
            logger.info("%s is not a %s %s index of %d dimensions; rebuilding", path, cls.name, distance, dim)
            return None
        return found


class FaissFlatIndex(FaissIndex):
    """Exact search with faiss (`IndexFlatIP`/`IndexFlatL2` under an `IndexIDMap2`).

    The same answers as "exact" (ties aside), with faiss's SIMD/BLAS kernels and threads.
    """

    name = "faiss-flat"
    exact = True

    def _new_index(self) -> Any:
        return faiss.IndexIDMap2(faiss.IndexFlat(self.dim, self.metric))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = check_vectors(ids, vectors, self.dim)
        with omp_threads(self.threads):
            self.index.add_with_ids(self._prepare(vectors), ids)

    def remove(self, ids: np.ndarray) -> None:
        self.index.remove_ids(np.asarray(ids, dtype=np.int64).reshape(-1))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def _adopt(self, index: Any) -> bool:
        if not isinstance(index, faiss.IndexIDMap2):
            return False
        if not isinstance(faiss.downcast_index(index.index), faiss.IndexFlat):
            return False
        self.index = index
        return True


class FaissIVFIndex(FaissIndex):
    """Approximate search over an inverted file (`IndexIVFFlat`): each query scans the `nprobe`
    nearest of `nlist` k-means cells.

    The cells are learnt once, from the vectors of the first `add`, so build a gallery from one
    batch: a gallery that grows from a few vectors keeps the few cells it started with (still
    correct, but each query then scans most of it). `nlist` is clamped to the number of training
    vectors, so a gallery smaller than `nlist` works (as one exact scan when `nprobe >= nlist`).

    Args:
        nlist: number of cells; None picks `round(4 * sqrt(M))` for the M first vectors.
        nprobe: cells scanned per query (more: slower, closer to exact).
        threads, directory: as for `FaissIndex`.
    """

    name = "faiss-ivf"

    def __init__(
        self,
        distance: str,
        dim: int,
        *,
        nlist: int | None = None,
        nprobe: int = 64,
        threads: int | None = None,
        directory: str | os.PathLike | None = None,
        **unknown: Any,
    ) -> None:
        self.nlist = None if nlist is None else _positive(nlist, "nlist")
        self.nprobe = _positive(nprobe, "nprobe")
        super().__init__(distance, dim, threads=threads, directory=directory, **unknown)

    def _new_index(self) -> Any:
        return faiss.IndexFlat(self.dim, self.metric)  # a stand-in until the first add trains the cells

    @property
    def trained(self) -> bool:
        """True once the cells have been learnt (by the first `add`)."""
        return isinstance(self.index, faiss.IndexIVFFlat)

    def _train(self, vectors: np.ndarray) -> None:
        wanted = self.nlist or max(1, round(4 * math.sqrt(len(vectors))))
        nlist = min(wanted, len(vectors))
        if nlist < wanted:
            logger.info(
                "faiss-ivf: %d training vectors, so %d cells instead of %d", len(vectors), nlist, wanted
            )
        quantizer = faiss.IndexFlat(self.dim, self.metric)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, self.metric)
        ivf.cp.min_points_per_centroid = 1  # a small gallery is expected here: no warning on stderr
        ivf.train(vectors)
        self.index, self.nlist = ivf, nlist  # faiss's Python wrapper keeps the quantizer alive

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = check_vectors(ids, vectors, self.dim)
        if not len(ids):
            return
        vectors = self._prepare(vectors)
        with omp_threads(self.threads):
            if not self.trained:
                self._train(vectors)
            self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> None:
        if self.trained:
            self.index.remove_ids(np.asarray(ids, dtype=np.int64).reshape(-1))

    def __len__(self) -> int:
        return int(self.index.ntotal) if self.trained else 0

    def _raw_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.index.nprobe = min(self.nprobe, self.index.nlist)
        return self.index.search(queries, k)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "nlist": self.nlist, "nprobe": self.nprobe}

    def save(self, directory: str | os.PathLike) -> None:
        """Write `gallery.faiss` (nothing before the first `add`, when there are no cells yet)."""
        if self.trained:
            super().save(directory)

    def _adopt(self, index: Any) -> bool:
        if not isinstance(index, faiss.IndexIVFFlat):
            return False
        self.index, self.nlist = index, int(index.nlist)
        return True


class FaissHNSWIndex(FaissIndex):
    """Approximate search over an HNSW graph (`IndexHNSWFlat` under an `IndexIDMap`).

    faiss's HNSW cannot delete, so `remove` leaves tombstones: the vector stays in the graph, its
    id is dropped from every result, and each search asks the graph for `k + tombstones`
    neighbours so that k live ones remain. Once tombstones are more than half of the graph it is
    rebuilt from the live vectors. Re-adding a removed id inserts a new vector; the tombstone
    stays on the old one. A saved index records its tombstones as id -1 inside `gallery.faiss`.

    Args:
        m: graph degree (links per vector; more: better recall, more memory).
        ef_search: candidate list size while searching (more: slower, closer to exact).
        ef_construction: candidate list size while inserting (more: slower build, better graph).
        threads, directory: as for `FaissIndex`.
    """

    name = "faiss-hnsw"

    def __init__(
        self,
        distance: str,
        dim: int,
        *,
        m: int = 32,
        ef_search: int = 128,
        ef_construction: int = 200,
        threads: int | None = None,
        directory: str | os.PathLike | None = None,
        **unknown: Any,
    ) -> None:
        self.m = _positive(m, "m")
        self.ef_search = _positive(ef_search, "ef_search")
        self.ef_construction = _positive(ef_construction, "ef_construction")
        self._ids = np.zeros(
            0, np.int64
        )  # the id of each vector in the graph, in graph order; -1: a tombstone
        super().__init__(distance, dim, threads=threads, directory=directory, **unknown)

    def _new_index(self) -> Any:
        graph = faiss.IndexHNSWFlat(self.dim, self.m, self.metric)
        graph.hnsw.efConstruction = self.ef_construction
        return faiss.IndexIDMap(graph)

    @property
    def graph(self) -> Any:
        """The HNSW graph itself, whose labels are graph positions."""
        return faiss.downcast_index(self.index.index)

    @property
    def tombstones(self) -> int:
        """Removed vectors still in the graph."""
        return int((self._ids < 0).sum())

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = check_vectors(ids, vectors, self.dim)
        with omp_threads(self.threads):
            self.index.add_with_ids(self._prepare(vectors), ids)
        self._ids = np.concatenate([self._ids, ids])

    def remove(self, ids: np.ndarray) -> None:
        gone = np.isin(self._ids, np.asarray(ids, dtype=np.int64)) & (self._ids >= 0)
        self._ids[gone] = -1
        if self.tombstones > _REBUILD_AT * len(self._ids):
            self._rebuild()

    def _rebuild(self) -> None:
        """A new graph holding only the live vectors, in their order."""
        live = np.flatnonzero(self._ids >= 0)
        # np.asarray: faiss.contrib.torch_utils (imported by pytorch-metric-learning) makes it a tensor
        vectors = np.asarray(self.graph.reconstruct_n(0, len(self._ids)))[live]  # (M_live, D), prepared
        ids = self._ids[live]
        self.index, self._ids = self._new_index(), np.zeros(0, np.int64)
        if len(ids):
            with omp_threads(self.threads):
                self.index.add_with_ids(vectors, ids)
            self._ids = ids

    def __len__(self) -> int:
        return int((self._ids >= 0).sum())

    def _raw_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        wide = min(k + self.tombstones, len(self._ids))
        graph = self.graph
        graph.hnsw.efSearch = self.ef_search
        scores, pos = graph.search(queries, wide)  # (Q, wide) graph positions
        ids = np.where(pos >= 0, self._ids[np.maximum(pos, 0)], -1)
        keep = np.argsort(ids < 0, axis=1, kind="stable")[:, :k]  # live hits first, in their order
        return np.take_along_axis(scores, keep, 1), np.take_along_axis(ids, keep, 1)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "m": self.m,
            "ef_search": self.ef_search,
            "ef_construction": self.ef_construction,
        }

    def save(self, directory: str | os.PathLike) -> None:
        """Write `gallery.faiss`, its tombstones as id -1 (one file, so graph and ids stay in step)."""
        faiss.copy_array_to_vector(self._ids, self.index.id_map)
        super().save(directory)

    def _adopt(self, index: Any) -> bool:
        if not isinstance(index, faiss.IndexIDMap) or isinstance(index, faiss.IndexIDMap2):
            return False
        if not isinstance(faiss.downcast_index(index.index), faiss.IndexHNSWFlat):
            return False
        self.index, self._ids = index, faiss.vector_to_array(index.id_map).astype(np.int64)
        hnsw = self.graph.hnsw
        self.m, self.ef_construction = int(hnsw.nb_neighbors(1)), int(hnsw.efConstruction)
        return True

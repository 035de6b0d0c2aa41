"""The "milvus" search backend: a Milvus collection through pymilvus's `MilvusClient`.

By default the collection lives in a milvus-lite database, `milvus.db` inside the gallery folder
(milvus-lite 3 serves it from threads of this process, one server per file); give `uri` (and
`token`) to use a Milvus server instead. The collection persists itself: `open` reconnects to it.

Measured with pymilvus 3.0 / milvus-lite 3.2: metric "L2" returns squared distances (turned into
the plain norm here) and "IP" returns the inner product, so cosine galleries store unit rows under
"IP" and report `1 - ip`. Every call reads with consistency level "Strong", so a search sees the
inserts and deletes made just before it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from siamese.errors import ConfigError, DataError
from siamese.galleries.backends.base import SearchIndex, check_vectors, pad_results, unit_rows
from siamese.names import check_choice, option_names

LITE_FILE = "milvus.db"
INDEX_TYPES: tuple[str, ...] = ("FLAT", "IVF_FLAT", "HNSW")

_VECTOR = "vector"  # the collection's fields: "id" (int64 primary key) and this one
_MAX_TOPK = 16384  # Milvus's limit on k (and on queries per request)
_QUERY_BATCH = 1024  # queries per search request
_ROW_BATCH = 4096  # rows per insert or delete request (well under the 64 MiB gRPC message limit)


def _is_lite(uri: str) -> bool:
    """True for a milvus-lite file (pymilvus's rule: the URI ends in ".db")."""
    return uri.endswith(".db")


def release_lite(uri: str | os.PathLike) -> None:
    """Stop milvus-lite's in-process server for this file, and free the file for other processes.

    `MilvusIndex.close` leaves it running (other indexes in this process may share it; milvus-lite
    stops it at exit): call this once every index on the file is closed.
    """
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    release = getattr(server_manager_instance, "release_server", None)
    if release is not None:
        release(str(uri))


class MilvusIndex(SearchIndex):
    """k-nearest search in a Milvus collection (a milvus-lite file or a server).

    A new index creates its collection on the first `add`, and refuses one that already exists
    (reopen it with `open`, or `drop` it). Call `close` when done (a closed index reconnects on its
    next call); a milvus-lite file's server keeps running until the process exits or `release_lite`.

    `exact` is False because the index type is an option; with "FLAT" the results are exact.

    Args:
        distance: "cosine" or "euclidean".
        dim: D, the vector size.
        uri: a server address ("http://host:19530") or a milvus-lite file ("path/milvus.db");
            default: `milvus.db` in `directory`.
        directory: the gallery folder (where the default milvus-lite file goes).
        collection: the collection's name.
        index_type: "FLAT" (exact), "IVF_FLAT" or "HNSW".
        index_params: build parameters of the index type, e.g. `{"nlist": 128}` for IVF_FLAT or
            `{"M": 32, "efConstruction": 200}` for HNSW.
        search_params: search parameters, e.g. `{"nprobe": 16}` for IVF_FLAT or `{"ef": 128}` for HNSW.
        token: credentials for a server ("user:password" or an API key); never recorded.

    Raises:
        ConfigError: neither `uri` nor `directory` given, or an unknown index type.
    """

    name = "milvus"
    exact: ClassVar[bool] = False

    def __init__(
        self,
        distance: str,
        dim: int,
        *,
        uri: str | os.PathLike | None = None,
        directory: str | os.PathLike | None = None,
        collection: str = "siamese_gallery",
        index_type: str = "FLAT",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        token: str | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__(distance, dim)
        if unknown:
            known = ", ".join(option_names(type(self), skip=("distance", "dim")))
            raise ConfigError(
                f"the milvus backend has no option {', '.join(sorted(unknown))}; it takes {known}"
            )
        if uri is None and directory is None:
            raise ConfigError("the milvus backend needs a uri (a server or a .db file) or the gallery folder")
        self._uri_given = uri is not None
        self.uri = str(uri) if uri is not None else str(Path(directory or ".") / LITE_FILE)
        self.collection = str(collection)
        self.index_type = check_choice(str(index_type).upper(), INDEX_TYPES, "milvus index type")
        self.index_params = dict(index_params or {})
        self.search_params = dict(search_params or {})
        self._token = token
        self.metric = "IP" if self.distance == "cosine" else "L2"
        self._client: MilvusClient | None = None
        self._ready = False  # the collection exists and is this index's (created or reopened by it)

    @property
    def client(self) -> MilvusClient:
        """The client, connected on first use."""
        if self._client is None:
            if _is_lite(self.uri):
                Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                self._client = MilvusClient(uri=self.uri, token=self._token or "")
            except MilvusException as exc:
                raise ConfigError(f"cannot connect to milvus at {self.uri}: {exc.message}") from None
        return self._client

    def close(self) -> None:
        """Close the client (a milvus-lite file's server stays up for other indexes: `release_lite`)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def drop(self) -> None:
        """Delete the collection and everything in it."""
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)
        self._ready = False

    def _create(self) -> None:
        if self.client.has_collection(self.collection):
            raise ConfigError(
                f"milvus collection {self.collection!r} already exists at {self.uri}; "
                "reopen it, drop it or choose another collection name"
            )
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field(_VECTOR, DataType.FLOAT_VECTOR, dim=self.dim)
        self.client.create_collection(self.collection, schema=schema, consistency_level="Strong")
        index = self.client.prepare_index_params()
        # build parameters go as one "params" entry: both Milvus and milvus-lite read that form
        # (milvus-lite 3.2 ignores the flattened keys pymilvus 3 sends otherwise)
        params = {"params": self.index_params}
        index.add_index(_VECTOR, self.index_type, metric_type=self.metric, params=params)
        # sync=False: pymilvus would otherwise poll the (empty, instantly built) index every 0.5 s
        self.client.create_index(self.collection, index, sync=False)
        self.client.load_collection(self.collection)
        self._ready = True

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        return unit_rows(vectors) if self.distance == "cosine" else np.asarray(vectors, dtype=np.float32)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = check_vectors(ids, vectors, self.dim)
        if not self._ready:
            self._create()
        vectors = self._prepare(vectors)
        for start in range(0, len(ids), _ROW_BATCH):
            part = slice(start, start + _ROW_BATCH)
            rows = zip(ids[part].tolist(), vectors[part], strict=True)
            self.client.insert(self.collection, [{"id": i, _VECTOR: v} for i, v in rows])

    def remove(self, ids: np.ndarray) -> None:
        if not self._ready:
            return
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        for start in range(0, len(ids), _ROW_BATCH):
            self.client.delete(self.collection, ids=ids[start : start + _ROW_BATCH].tolist())

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(queries, dtype=np.float32)
        q = q[None, :] if q.ndim == 1 else q
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise DataError(f"expected queries of {self.dim} dimensions, got shape {q.shape}")
        if k > _MAX_TOPK:
            raise ConfigError(f"milvus returns at most {_MAX_TOPK} neighbours per query, not {k}")
        dist = np.full((len(q), max(k, 0)), np.inf, np.float32)  # (Q, k)
        ids = np.full((len(q), max(k, 0)), -1, np.int64)  # (Q, k)
        if k <= 0 or not self._ready:
            return dist, ids
        q = self._prepare(q)
        params = {"metric_type": self.metric, "params": self.search_params}
        for start in range(0, len(q), _QUERY_BATCH):
            found = self.client.search(
                self.collection,
                data=list(q[start : start + _QUERY_BATCH]),
                limit=k,
                search_params=params,
                output_fields=["id"],
            )
            for row, hits in enumerate(found, start):
                ids[row, : len(hits)] = [hit["id"] for hit in hits]
                dist[row, : len(hits)] = [hit["distance"] for hit in hits]
        if self.distance == "cosine":
            dist = 1.0 - dist
        else:
            dist = np.sqrt(np.maximum(dist, 0.0))  # Milvus's L2 is squared
        return pad_results(np.where(ids < 0, np.inf, dist), ids, k)

    def __len__(self) -> int:
        if not self._ready:
            return 0
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def describe(self) -> dict[str, Any]:
        """Name and options; the uri only when one was given (the default follows the folder)."""
        out: dict[str, Any] = {"backend": self.name, "collection": self.collection}
        out["index_type"] = self.index_type
        if self.index_params:
            out["index_params"] = self.index_params
        if self.search_params:
            out["search_params"] = self.search_params
        if self._uri_given:
            out["uri"] = self.uri
        return out

    def save(self, directory: str | os.PathLike) -> None:
        """Flush the collection (it is durable already; this seals it and builds its index)."""
        if self._ready:
            self.client.flush(self.collection)

    @classmethod
    def open(cls, folder: str | os.PathLike, distance: str, dim: int, **options: Any) -> MilvusIndex | None:
        """Reconnect to the collection, or None when it does not exist. The default milvus-lite
        file is in the gallery folder: the `directory` option when given, else `folder`.

        Raises:
            ConfigError: the collection holds vectors of another size or metric.
        """
        found = cls(distance, dim, **{"directory": folder, **options})
        if not found.client.has_collection(found.collection):
            found.close()
            return None
        try:
            found._check_collection()
        except ConfigError:
            found.close()
            raise
        found.client.load_collection(found.collection)
        found._ready = True
        return found

    def _check_collection(self) -> None:
        fields = self.client.describe_collection(self.collection)["fields"]
        dims = [f.get("params", {}).get("dim") for f in fields if f["name"] == _VECTOR]
        metric = self.client.describe_index(self.collection, _VECTOR).get("metric_type")
        if dims != [self.dim] or metric != self.metric:
            raise ConfigError(
                f"milvus collection {self.collection!r} at {self.uri} holds {dims} dimensions under "
                f"{metric}, not {self.dim} under {self.metric}; drop it or choose another collection name"
            )

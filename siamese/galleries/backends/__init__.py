"""Search backends behind one interface (`SearchIndex`), by name.

The default "exact" backend needs nothing beyond NumPy; the others import their package (faiss,
pymilvus) only when chosen, so a core install never needs them. A new backend is one module
and one line in `_BACKENDS`.
"""

from __future__ import annotations

import importlib
from typing import Any

from siamese.errors import ConfigError
from siamese.galleries.backends.base import SearchIndex, pad_results, unit_rows
from siamese.galleries.backends.exact import ExactIndex, top_k

# name -> (module, class); modules are imported on first use
_BACKENDS: dict[str, tuple[str, str]] = {
    "exact": ("siamese.galleries.backends.exact", "ExactIndex"),
    "faiss-flat": ("siamese.galleries.backends.faiss_index", "FaissFlatIndex"),
    "faiss-ivf": ("siamese.galleries.backends.faiss_index", "FaissIVFIndex"),
    "faiss-hnsw": ("siamese.galleries.backends.faiss_index", "FaissHNSWIndex"),
    "milvus": ("siamese.galleries.backends.milvus", "MilvusIndex"),
}
BACKENDS: tuple[str, ...] = tuple(_BACKENDS)


def backend_class(name: str) -> type[SearchIndex]:
    """The `SearchIndex` class registered under `name`.

    Raises:
        ConfigError: an unknown name, or the backend's package is not installed (naming the extra).
    """
    if name not in _BACKENDS:
        raise ConfigError(f"unknown search backend {name!r}; choose one of {', '.join(BACKENDS)}")
    module, attr = _BACKENDS[name]
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        extra = "milvus" if name == "milvus" else "index"
        raise ConfigError(f"the {name} backend needs {exc.name}: pip install 'siamese[{extra}]'") from None


def get_index(name: str | SearchIndex, distance: str, dim: int, **options: Any) -> SearchIndex:
    """A new, empty index of backend `name` (an instance is returned as is)."""
    if isinstance(name, SearchIndex):
        return name
    return backend_class(name)(distance, dim, **options)


__all__ = [
    "BACKENDS",
    "ExactIndex",
    "SearchIndex",
    "backend_class",
    "get_index",
    "pad_results",
    "top_k",
    "unit_rows",
]

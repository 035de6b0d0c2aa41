"""A gallery's search backend: choosing it, keeping it in step with the gallery, checking its recall.

The gallery records its backend in `gallery.json` under "index": the backend's name and options,
the folder of its files (`index-<token>/`, replaced like the arrays file, so a killed write never
pairs a new index with an old gallery), how many references it held, and its recall guard: the
share of held-out queries (the calibration identities' images, never enrolled) whose top-1
identity equals exact search's. An index that does not match its gallery when opened (a write
killed half-way, a database changed behind its back) is rebuilt from the gallery's references.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from siamese.galleries.backends import SearchIndex, backend_class, get_index
from siamese.galleries.gallery import Gallery
from siamese.galleries.identify import Identifier

logger = logging.getLogger(__name__)

GUARD_TARGET = 0.99
"""Top-1 identity agreement with exact search below which building an approximate index warns."""


def index_spec(gallery: Gallery) -> dict[str, Any]:
    """What the gallery records about its backend (`{"backend": "exact"}` when nothing)."""
    return dict(gallery.info.get("index") or {"backend": "exact"})


def build_index(gallery: Gallery, backend: str, options: dict[str, Any], root: Path) -> SearchIndex:
    """A new index of `backend` holding every reference of the gallery."""
    index = get_index(backend, gallery.distance, gallery.embedding_dim, **options, directory=str(root))
    index.add(np.concatenate(gallery.reference_ids), np.concatenate(gallery.references))
    return index


def open_index(gallery: Gallery, directory: str | os.PathLike) -> SearchIndex | None:
    """The gallery's search index, reopened (rebuilt if missing or out of step); None for exact search.

    Raises:
        ConfigError: the backend's package is not installed.
    """
    spec, root = index_spec(gallery), Path(directory)
    if spec["backend"] == "exact":
        return None
    cls = backend_class(spec["backend"])
    folder = root / str(spec.get("path", "")) if spec.get("path") else root
    options = {**spec.get("options", {}), "directory": str(root)}  # the gallery folder, for defaults
    index = cls.open(folder, gallery.distance, gallery.embedding_dim, **options)
    expected = sum(len(r) for r in gallery.references)
    if index is None or len(index) != expected:
        logger.warning("the %s index of %s is missing or out of step: rebuilding it", spec["backend"], root)
        index = build_index(gallery, spec["backend"], spec.get("options", {}), root)
    return index


def recall_guard(gallery: Gallery, index: SearchIndex, fusion: str | None = None) -> dict[str, Any]:
    """Top-1 identity agreement of `index` with exact search on the calibration identities' images
    (held-out queries: never enrolled, so like the strangers and new photos a search meets)."""
    if gallery.calibration is None:
        return {"agreement": None, "queries": 0}
    queries = gallery.calibration.embeddings
    exact = Identifier(gallery, fusion).rank(queries, 1)
    approx = Identifier(gallery, fusion, index).rank(queries, 1)
    same = [a[0].identity == b[0].identity for a, b in zip(exact, approx, strict=True) if a and b]
    agreement = float(np.mean(same)) if same else None
    if agreement is not None and agreement < GUARD_TARGET:
        logger.warning(
            "the %s index agrees with exact search on the top-1 identity of %.1f%% of %d held-out "
            "queries (below %.0f%%): search it with more probes or use the exact backend",
            index.name,
            100 * agreement,
            len(queries),
            100 * GUARD_TARGET,
        )
    return {"agreement": agreement, "queries": len(queries)}


def save_gallery(
    gallery: Gallery,
    directory: str | os.PathLike,
    previous: Gallery | None = None,
    backend: str | None = None,
    options: dict[str, Any] | None = None,
) -> Gallery:
    """Write the gallery and bring its search index in step.

    Args:
        gallery: the gallery to write.
        directory: its folder.
        previous: the gallery it replaces (its index is updated by the difference instead of rebuilt).
        backend: switch to this backend (rebuilt from scratch); default the gallery's own.
        options: the new backend's options.

    Returns:
        The gallery as written (its "index" record updated).
    """
    root = Path(directory)
    spec: dict[str, Any] = (
        index_spec(gallery) if backend is None else {"backend": backend, "options": dict(options or {})}
    )
    if spec["backend"] == "exact":
        written = replace(gallery, info={**gallery.info, "index": {"backend": "exact"}})
        written.save(root)
        _remove_stale(root, None)
        return written
    index = None if previous is None or backend is not None else open_index(previous, root)
    if index is None:
        index = build_index(gallery, spec["backend"], spec.get("options", {}), root)
    else:
        _apply_difference(index, previous, gallery)  # type: ignore[arg-type]
    folder = f"index-{secrets.token_hex(4)}"
    index.save(root / folder)
    described = {k: v for k, v in index.describe().items() if k != "directory"}
    spec = {
        "backend": described.pop("backend", spec["backend"]),
        "options": described,
        "path": folder,
        "references": len(index),
        **recall_guard(gallery, index),
    }
    written = replace(gallery, info={**gallery.info, "index": spec})
    written.save(root)  # the commit: gallery.json now names the new index folder
    _remove_stale(root, folder)
    index.close()
    return written


def erase_gallery(directory: str | os.PathLike) -> None:
    """Delete the gallery in `directory` and its index folders (a Milvus server's collection stays)."""
    Gallery.erase(directory)
    _remove_stale(Path(directory), None)


def _apply_difference(index: SearchIndex, before: Gallery, after: Gallery) -> None:
    old, new = np.concatenate(before.reference_ids), np.concatenate(after.reference_ids)
    gone = np.setdiff1d(old, new)
    if len(gone):
        index.remove(gone)
    added = ~np.isin(new, old)
    if added.any():
        index.add(new[added], np.concatenate(after.references)[added])


def _remove_stale(root: Path, keep: str | None) -> None:
    for stale in root.glob("index-*"):
        if stale.name != keep and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)

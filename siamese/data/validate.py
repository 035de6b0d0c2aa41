"""Finding unreadable images before training starts, instead of crashing mid-epoch."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PIL import Image

from siamese.data.folder import ImageIndex
from siamese.errors import DataError, ImageError

logger = logging.getLogger(__name__)

PREVIEW = 5


def _header_check(path: str, channels: int) -> None:
    """Cheap check for large datasets: the header parses and the file holds its declared data."""
    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad files
        raise ImageError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from None


def drop_unreadable(
    index: ImageIndex, load: Callable[[str, int], object] | None, channels: int, strict: bool = False
) -> ImageIndex:
    """Remove images that cannot be decoded, with one warning listing them.

    Args:
        index: the scanned dataset.
        load: decoder `(path, channels)`; an `ImageLoader`-backed one also fills its cache.
            None uses a cheap header check (for datasets too large to decode twice).
        channels: 1 or 3.
        strict: raise instead of skipping.

    Raises:
        DataError: `strict` and some images are unreadable, or no image is readable.
    """
    check = load or _header_check
    bad: list[str] = []
    bad_paths: set[str] = set()
    for record in index.records:
        try:
            check(record.path, channels)
        except ImageError as exc:
            bad.append(str(exc))
            bad_paths.add(record.path)
    if not bad:
        return index
    listing = "; ".join(bad[:PREVIEW]) + (f"; ... ({len(bad)} in total)" if len(bad) > PREVIEW else "")
    if strict:
        raise DataError(f"{len(bad)} unreadable images (--strict): {listing}")
    if len(bad) == len(index.records):
        raise DataError(f"none of the {len(bad)} images can be read: {listing}")
    logger.warning("skipping %d unreadable images: %s", len(bad), listing)
    records = tuple(r for r in index.records if r.path not in bad_paths)
    identities = tuple(sorted({r.identity for r in records if not r.forgery}))
    return ImageIndex(tuple(r for r in records if r.identity in set(identities)), identities)

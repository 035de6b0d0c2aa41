"""Decoding image files into 8-bit "L" or "RGB" Pillow images, with one clear error per bad file."""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from siamese.errors import ConfigError, ImageError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".pgm", ".bmp", ".tif", ".tiff"})

# Modes whose samples do not fit in 8 bits: rescaled by their value range before conversion.
_HIGH_DEPTH_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
# Modes with an alpha (or premultiplied alpha) band: composited on white.
_ALPHA_MODES = frozenset({"LA", "La", "RGBA", "RGBa", "PA"})


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether `path` has one of `IMAGE_EXTENSIONS` (case-insensitive); the content is not checked."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _check_channels(channels: int) -> int:
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    return channels


def _rescale_to_8bit(img: Image.Image) -> Image.Image:
    """Map a 16/32-bit or float image linearly from its [min, max] onto [0, 255] (no clipping).

    A constant image keeps its value, clipped to [0, 255].
    """
    arr = np.asarray(img, dtype=np.float64)  # (H, W)
    finite = np.isfinite(arr)
    if not finite.any():
        return Image.new("L", img.size, 0)
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    if hi > lo:
        out = (np.where(finite, arr, lo) - lo) * (255.0 / (hi - lo))
    else:
        out = np.full(arr.shape, min(max(lo, 0.0), 255.0))
    return Image.fromarray(np.rint(out).astype(np.uint8), mode="L")


def _composite_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert a decoded Pillow image of any mode to "L" (channels=1) or "RGB" (channels=3).

    16/32-bit integer and float images are rescaled by their value range, transparent images
    (alpha band or palette transparency) are composited on white, everything else uses Pillow's
    own conversion (CMYK, YCbCr, bilevel "1", palette...).
    """
    target = "L" if _check_channels(channels) == 1 else "RGB"
    if img.mode == target:
        return img
    if img.mode in _HIGH_DEPTH_MODES:
        img = _rescale_to_8bit(img)
    elif img.mode in _ALPHA_MODES or (img.mode == "P" and "transparency" in img.info):
        img = _composite_on_white(img)
    elif img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    return img.convert(target)


def open_image(path: str | os.PathLike, channels: int) -> Image.Image:
    """Decode an image file completely and return it as an 8-bit "L" or "RGB" image.

    EXIF orientation is applied. Pillow's decompression-bomb guard stays on: an oversized
    image raises `ImageError` like any other undecodable file.

    Args:
        path: image file.
        channels: 1 for grayscale "L", 3 for "RGB".

    Raises:
        ImageError: missing, empty, truncated, corrupt or non-image file (message names the path).
    """
    _check_channels(channels)
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    if not path.is_file():
        raise ImageError(f"cannot read image {path}: not a file")
    if size == 0:
        raise ImageError(f"cannot read image {path}: empty file (0 bytes)")
    return _decode(path, str(path), channels)


def decode_image(data: bytes, channels: int, name: str = "upload") -> Image.Image:
    """Decode an encoded image held in memory (an upload, a database blob) like `open_image`.

    Args:
        data: the encoded bytes (PNG, JPEG, ...).
        channels: 1 for grayscale "L", 3 for "RGB".
        name: what messages call the image.

    Raises:
        ImageError: empty, truncated, corrupt, oversized or non-image bytes (message names `name`).
    """
    _check_channels(channels)
    if not data:
        raise ImageError(f"cannot read image {name}: empty (0 bytes)")
    return _decode(io.BytesIO(data), name, channels)


def _decode(source: Path | io.BytesIO, name: str, channels: int) -> Image.Image:
    """Decode completely, apply the EXIF orientation and convert; every failure an `ImageError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                img.load()
                ImageOps.exif_transpose(img, in_place=True)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"cannot read image {name}: too large (decompression-bomb guard): {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"cannot read image {name}: not a recognised image format") from exc
    except MemoryError:
        raise
    except Exception as exc:  # Pillow's decoders raise many types (OSError, SyntaxError, struct.error...)
        reason = f"{type(exc).__name__}: {exc}"
        raise ImageError(f"cannot read image {name}: corrupt or truncated ({reason})") from exc
    try:
        return to_mode(img, channels)
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read image {name}: unsupported image mode {img.mode!r} ({exc})") from exc


class ImageLoader:
    """Callable that opens image files as "L"/"RGB", optionally caching decoded images in memory.

    With `cache=True` every path is decoded once and the image kept in this instance (each
    DataLoader worker holds its own copy). Cached images are shared: treat them as read-only
    (Pillow and torchvision transforms return new images, they never modify their input).

    Args:
        channels: 1 (grayscale) or 3 (RGB).
        cache: keep decoded images in memory.
    """

    def __init__(self, channels: int, cache: bool = False) -> None:
        self.channels = _check_channels(channels)
        self.cache = cache
        self._images: dict[str, Image.Image] = {}
        self._derived: dict[Hashable, Any] = {}

    def __call__(self, path: str | os.PathLike) -> Image.Image:
        if not self.cache:
            return open_image(path, self.channels)
        key = os.fspath(path)
        img = self._images.get(key)
        if img is None:
            img = open_image(key, self.channels)
            self._images[key] = img
        return img

    def remember(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """`make()`, computed once per `key` and kept when caching (an image derived from a cached
        one, e.g. preprocessed); shared like the decoded images, so read-only."""
        if not self.cache:
            return make()
        value = self._derived.get(key)
        if value is None:
            value = self._derived[key] = make()
        return value

    @property
    def cached_count(self) -> int:
        """Number of images currently held in memory."""
        return len(self._images)

    def __repr__(self) -> str:
        return f"ImageLoader(channels={self.channels}, cache={self.cache})"

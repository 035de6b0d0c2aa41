"""The embedded default dataset: scikit-learn's bundled 8x8 handwritten digits, written as PNG folders."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

NUM_DIGIT_IMAGES = 1797
_MARKER = ".complete"


def default_cache_dir() -> Path:
    """`$SIAMESE_CACHE`, else `$XDG_CACHE_HOME/siamese`, else `~/.cache/siamese`."""
    if os.environ.get("SIAMESE_CACHE"):
        return Path(os.environ["SIAMESE_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "siamese"
    return Path.home() / ".cache" / "siamese"


def _is_complete(directory: Path) -> bool:
    """Marker present and all 1797 PNGs in place (ten directory listings: cheap)."""
    marker = directory / _MARKER
    if not marker.is_file() or marker.read_text(encoding="utf-8").strip() != str(NUM_DIGIT_IMAGES):
        return False
    folders = [directory / str(d) for d in range(10)]
    if not all(f.is_dir() for f in folders):
        return False
    return sum(sum(name.endswith(".png") for name in os.listdir(f)) for f in folders) == NUM_DIGIT_IMAGES


def write_png(img: np.ndarray, path: Path) -> None:
    """Write atomically: a crash never leaves a truncated PNG at `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    Image.fromarray(img, mode="L").save(tmp, format="PNG")
    os.replace(tmp, path)


def materialize_digits(directory: str | os.PathLike | None = None) -> Path:
    """Write the 1797 scikit-learn digits as `directory/<digit>/<nnnn>.png` once and return `directory`.

    Pixel values 0-16 become 0-255 (`round(v * 255 / 16)`), 8x8 8-bit grayscale; `nnnn` is the
    sample's position in `sklearn.datasets.load_digits()`. A marker file written last makes later
    calls free; an interrupted run is simply redone (each PNG is written atomically), and
    concurrent calls write identical files. No download is involved.

    Args:
        directory: target folder; default `default_cache_dir() / "digits"`.
    """
    directory = Path(directory).expanduser() if directory is not None else default_cache_dir() / "digits"
    if _is_complete(directory):
        return directory
    (directory / _MARKER).unlink(missing_ok=True)
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.rint(data.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8)
    for d in range(10):
        (directory / str(d)).mkdir(parents=True, exist_ok=True)
    for i, (img, target) in enumerate(zip(images, data.target, strict=True)):
        write_png(img, directory / str(int(target)) / f"{i:04d}.png")
    (directory / _MARKER).write_text(f"{len(images)}\n", encoding="utf-8")
    logger.info("wrote %d digit images to %s", len(images), directory)
    return directory

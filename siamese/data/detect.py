"""Finding and cropping the largest face of a photo with OpenCV's Haar cascade (the `detect` extra),
so that photos which are not face crops can be embedded by a face model (`--detect`).

OpenCV is imported when a `FaceDetector` is made, never when this module is imported: commands that
do not detect faces do not pay for it. The cascade is the frontal-face one bundled with
`opencv-python-headless` 4.x; nothing is downloaded.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from siamese.data.images import to_mode
from siamese.errors import ConfigError, ImageError

logger = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
"""A rectangle `(x, y, w, h)` in pixels: left, top, width, height."""

CASCADE = "haarcascade_frontalface_default.xml"
"""The cascade file, in `cv2.data.haarcascades`."""

_MISSING = "face detection needs the detect extra: pip install 'siamese[detect]'"


def _import_cv2() -> Any:
    """OpenCV, or a `ConfigError` saying how to install it."""
    try:
        import cv2
    except ImportError:
        raise ConfigError(_MISSING) from None
    return cv2


def _load_cascade(cv2: Any) -> Any:
    """The bundled frontal-face cascade, or a `ConfigError` when this OpenCV has none."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder) / CASCADE if folder else None
    if not hasattr(cv2, "CascadeClassifier") or path is None or not path.is_file():
        raise ConfigError(
            f"OpenCV {getattr(cv2, '__version__', '?')} has no Haar face cascade (OpenCV 5 dropped them): "
            "pip install 'opencv-python-headless>=4.8,<5'"
        )
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise ConfigError(f"OpenCV cannot load its face cascade {path}")
    return cascade


def expand_box(box: Box, margin: float, size: tuple[int, int]) -> Box:
    """`box` grown by `margin` times its width (height) on the left and right (top and bottom),
    clipped to an image of `size` `(width, height)`.

    >>> expand_box((10, 20, 40, 40), 0.25, (100, 100))
    (0, 10, 60, 60)
    """
    x, y, w, h = box
    width, height = size
    left, top = max(0, round(x - margin * w)), max(0, round(y - margin * h))
    right, bottom = min(width, round(x + w + margin * w)), min(height, round(y + h + margin * h))
    return left, top, right - left, bottom - top


class FaceDetector:
    """The largest frontal face of an image, found by OpenCV's Haar cascade, and a crop around it.

    One detector can serve several threads: the cascade is built once and its detection runs under
    a lock (OpenCV does not promise that `detectMultiScale` is thread-safe).

    Args:
        margin: how much the crop adds around the face on each side, as a share of the face's
            width (left, right) and height (top, bottom); face models are trained on crops that show
            some hair and chin, wider than the cascade's box.
        min_size: the smallest face looked for, in pixels (width and height).

    Raises:
        ConfigError: OpenCV is not installed (the `detect` extra), has no face cascade, or bad options.
    """

    def __init__(self, margin: float = 0.25, min_size: int = 24) -> None:
        if not margin >= 0:
            raise ConfigError(f"the face margin must be >= 0, got {margin!r}")
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
            raise ConfigError(f"the smallest face must be an integer >= 1 pixels, got {min_size!r}")
        self.margin = float(margin)
        self.min_size = min_size
        self._cv2 = _import_cv2()
        self._cascade = _load_cascade(self._cv2)
        self._lock = threading.Lock()

    def find(self, image: Image.Image) -> Box | None:
        """The largest face as `(x, y, w, h)` in the image's pixels, or None when there is none.

        Args:
            image: an "L" or "RGB" image (other modes are converted like `to_mode` does).
        """
        gray = self._cv2.equalizeHist(np.asarray(to_mode(image, 1)))  # (H, W) uint8
        size = (self.min_size, self.min_size)
        with self._lock:
            faces = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=size)
        if len(faces) == 0:
            return None
        x, y, w, h = max((tuple(int(v) for v in face) for face in faces), key=lambda f: f[2] * f[3])
        logger.debug("%d faces; the largest at (%d, %d), %dx%d", len(faces), x, y, w, h)
        return x, y, w, h

    def crop(self, image: Image.Image, name: str = "image") -> tuple[Image.Image, Box]:
        """Crop the largest face, enlarged by `margin` on each side and clipped to the image.

        Args:
            image: an "L" or "RGB" image.
            name: what the error message calls the image (a path, "upload", ...).

        Returns:
            The crop, in the mode of `image`, and the box cropped, `(x, y, w, h)`.

        Raises:
            ImageError: no face found.
        """
        face = self.find(image)
        if face is None:
            raise ImageError(f"no face found in {name}")
        x, y, w, h = box = expand_box(face, self.margin, image.size)
        return image.crop((x, y, x + w, y + h)), box

    def __repr__(self) -> str:
        return f"FaceDetector(margin={self.margin}, min_size={self.min_size})"

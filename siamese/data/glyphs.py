"""The embedded default dataset of `siamese train`: characters rendered from installed fonts as identities.

Each identity is one character (Latin, digits, symbols, Greek, Cyrillic, Georgian; look-alikes such
as o/O/0, l/I/1 or c/C are left out). Its images are that character in different typefaces (DejaVu
Sans, Sans Mono and Serif, STIX and Computer Modern in their weights and slants, as matplotlib ships
them, and Pillow's own font), each under its own random distortion: rotation, shear, anisotropic
scale, stroke thickening and a smooth elastic warp. Like Omniglot's characters drawn by 20 people, a
model must learn what makes two drawings the same character, and verification is measured on
characters it never saw. Nothing is downloaded; the images depend only on the seed and the fonts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from siamese.data.digits import default_cache_dir, materialize_digits, write_png

logger = logging.getLogger(__name__)

CHARACTERS = (
    "abdefghijkmnpqrstuvwxyz"  # no l, o, c (l/I/1, o/O/0, c/C are look-alikes)
    "ABDEFGHLMNQRT"  # capitals whose shape differs from their small letter (not J, K, Y, ...)
    "2345789"  # no 0, 1 (O, l) nor 6 (b)
    "&@#%?$§¶€£¥æ"
    "αβδεζθλμξπσφψΓΔΛΞΣΩ"  # Greek unlike Latin
    "жюяшц"  # Cyrillic unlike Latin and Greek (italic и and д look like u and g)
    "აგდეთიკლმნოჟრსტუფქღყშჩცძწჭხჯჰ"  # Georgian (Mkhedruli) but for the 3-, 8- and δ-like ბ, ვ, ზ, პ
)
"""The identities, one character each."""

IMAGES_PER_CHARACTER = 20
SIZE = 32  # side of the stored images
_RENDER = 48  # font size of the rendering (on a canvas twice as wide)
_BOX = 26  # side of the box the ink is fitted into (MNIST fits 20 of 28)
_VERSION = "1"
_MARKER = ".complete"
_FONT_FILES = (
    "DejaVuSans",
    "DejaVuSans-Bold",
    "DejaVuSans-Oblique",
    "DejaVuSans-BoldOblique",
    "DejaVuSansMono",
    "DejaVuSansMono-Bold",
    "DejaVuSansMono-Oblique",
    "DejaVuSansMono-BoldOblique",
    "DejaVuSerif",
    "DejaVuSerif-Bold",
    "DejaVuSerif-Italic",
    "DejaVuSerif-BoldItalic",
    "STIXGeneral",
    "STIXGeneralBol",
    "STIXGeneralItalic",
    "STIXGeneralBolIta",
    "cmr10",
    "cmb10",
    "cmti10",
    "cmss10",
    "cmtt10",
)


def identity_name(char: str) -> str:
    """A folder name for a character, safe on case-insensitive file systems.

    >>> identity_name("a"), identity_name("A"), identity_name("ж")
    ('latin-small-letter-a', 'latin-capital-letter-a', 'cyrillic-small-letter-zhe')
    """
    return unicodedata.name(char).lower().replace(" ", "-")


@lru_cache(maxsize=1)
def _fonts() -> tuple[tuple[str, ImageFont.FreeTypeFont], ...]:
    """(name, font) of every available typeface: matplotlib's bundled fonts, then Pillow's own."""
    fonts: list[tuple[str, ImageFont.FreeTypeFont]] = []
    try:
        from matplotlib import get_data_path

        folder = Path(get_data_path()) / "fonts" / "ttf"
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        folder = None
    for name in _FONT_FILES:
        if folder is not None and (folder / f"{name}.ttf").is_file():
            fonts.append((name, ImageFont.truetype(str(folder / f"{name}.ttf"), _RENDER)))
    default = ImageFont.load_default(size=_RENDER)
    if isinstance(default, ImageFont.FreeTypeFont):
        fonts.append(("pillow-default", default))
    return tuple(fonts)


def _mask(font: ImageFont.FreeTypeFont, char: str) -> np.ndarray:
    canvas = Image.new("L", (2 * _RENDER, 2 * _RENDER), 0)
    ImageDraw.Draw(canvas).text((_RENDER // 2, _RENDER // 4), char, font=font, fill=255)
    return np.asarray(canvas)


def _has_glyph(font: ImageFont.FreeTypeFont, char: str) -> bool:
    """The font draws `char` as something other than its missing-glyph box."""
    drawn = _mask(font, char)
    return bool(drawn.any()) and not np.array_equal(drawn, _mask(font, "\uffff"))


def _covers(name: str, font: ImageFont.FreeTypeFont, char: str) -> bool:
    """The font draws `char`; Computer Modern (TeX's own encoding) only for ASCII letters and digits."""
    if name.startswith("cm") and not (char.isascii() and char.isalnum()):
        return False
    return _has_glyph(font, char)


def _elastic(img: np.ndarray, rng: np.random.Generator, alpha: float, grid: int = 4) -> np.ndarray:
    """An elastic distortion (after Simard et al. 2003): a smooth random displacement field, here
    uniform +/-`alpha` pixels on a `grid` x `grid` lattice interpolated bicubically (cheaper than
    smoothing per-pixel noise)."""
    from scipy.ndimage import map_coordinates

    h, w = img.shape

    def field() -> np.ndarray:
        coarse = Image.fromarray(rng.uniform(-alpha, alpha, (grid, grid)).astype(np.float32), mode="F")
        return np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64)

    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return map_coordinates(img, [yy + field(), xx + field()], order=1, mode="constant", cval=0.0)


def render_glyph(char: str, font: ImageFont.FreeTypeFont, rng: np.random.Generator) -> np.ndarray:
    """One distorted drawing of `char`: bright ink on black, `SIZE` x `SIZE` uint8.

    Rotation +/-12 deg, shear +/-0.25, anisotropic scale 0.8-1.2, strokes thickened by a pixel on
    each side (3 x 3 max filter) half of the time, an elastic warp (+/-4 px on a 4 x 4 lattice of the
    96 px canvas), then the ink's bounding box fitted into a `_BOX` square (aspect kept) at the centre.
    """
    canvas = Image.new("L", (2 * _RENDER, 2 * _RENDER), 0)
    ImageDraw.Draw(canvas).text((_RENDER, _RENDER), char, font=font, fill=255, anchor="mm")
    angle = np.deg2rad(rng.uniform(-12, 12))
    shear, sx, sy = rng.uniform(-0.25, 0.25), rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.2)
    # output -> input map around the centre: (rotation @ shear @ scale)^-1
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    forward = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([sx, sy])
    inv = np.linalg.inv(forward)
    c = float(_RENDER)
    offset = np.array([c, c]) - inv @ np.array([c, c])
    coeffs = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
    img = canvas.transform(canvas.size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    if rng.random() < 0.5:  # bolder (thinning would erase the thin typefaces' strokes)
        img = img.filter(ImageFilter.MaxFilter(3))
    warped = _elastic(np.asarray(img, dtype=np.float64), rng, alpha=4.0)
    return _fit(warped)


def _fit(ink: np.ndarray) -> np.ndarray:
    """The ink's bounding box resized into a `_BOX` square (aspect kept), centred on `SIZE` x `SIZE`."""
    ys, xs = np.nonzero(ink > 32)
    out = Image.new("L", (SIZE, SIZE), 0)
    if len(ys) == 0:  # thinned away: an empty image is still a valid (hard) sample
        return np.asarray(out)
    crop = Image.fromarray(np.clip(ink, 0, 255).astype(np.uint8)).crop(
        (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    )
    scale = _BOX / max(crop.size)
    w, h = max(1, round(crop.size[0] * scale)), max(1, round(crop.size[1] * scale))
    small = crop.resize((w, h), Image.Resampling.LANCZOS)
    out.paste(small, ((SIZE - w) // 2, (SIZE - h) // 2))
    return np.asarray(out)


def typefaces(char: str) -> list[str]:
    """Names of the available typefaces that draw `char` (see `_FONT_FILES`, "pillow-default")."""
    return [name for name, font in _fonts() if _covers(name, font, char)]


def glyph_images(index: int, seed: int = 0) -> list[np.ndarray]:
    """The `IMAGES_PER_CHARACTER` images of `CHARACTERS[index]`, each (SIZE, SIZE) uint8.

    Image k is drawn in the k-th typeface of a shuffle (seeded by `(seed, index)`) of the typefaces
    that have the character, cycling when there are fewer, with distortions from `(seed, index, k)`.
    """
    char = CHARACTERS[index]
    pool = [font for name, font in _fonts() if _covers(name, font, char)]
    order = np.random.default_rng([seed, index]).permutation(len(pool))
    return [
        render_glyph(char, pool[int(order[k % len(pool)])], np.random.default_rng([seed, index, k]))
        for k in range(IMAGES_PER_CHARACTER)
    ]


def _fingerprint(seed: int) -> str:
    names = ",".join(name for name, _ in _fonts())
    text = f"{_VERSION};{seed};{IMAGES_PER_CHARACTER};{CHARACTERS};{names}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _is_complete(directory: Path, fingerprint: str) -> bool:
    marker = directory / _MARKER
    if not marker.is_file() or marker.read_text(encoding="utf-8").strip() != fingerprint:
        return False
    folders = [directory / identity_name(c) for c in CHARACTERS]
    if not all(f.is_dir() for f in folders):
        return False
    count = sum(sum(name.endswith(".png") for name in os.listdir(f)) for f in folders)
    return count == len(CHARACTERS) * IMAGES_PER_CHARACTER


def materialize_glyphs(directory: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """Write the glyph identities as `directory/<character name>/<nn>.png` once and return `directory`.

    `len(CHARACTERS)` identities of `IMAGES_PER_CHARACTER` 32x32 grayscale images (`glyph_images`:
    as many typefaces per character as have it, distortions drawn from the seed).
    A marker file (a fingerprint of the version, seed and fonts) written last makes later calls
    free; an interrupted or outdated folder is redone (each PNG is written atomically).

    Args:
        directory: target folder; default `default_cache_dir() / "glyphs-<seed>"`.
        seed: the seed the images are drawn from.
    """
    if directory is None:
        directory = default_cache_dir() / f"glyphs-{seed}"
    directory = Path(directory).expanduser()
    fingerprint = _fingerprint(seed)
    if _is_complete(directory, fingerprint):
        return directory
    (directory / _MARKER).unlink(missing_ok=True)
    for i, char in enumerate(CHARACTERS):
        folder = directory / identity_name(char)
        folder.mkdir(parents=True, exist_ok=True)
        for k, img in enumerate(glyph_images(i, seed)):
            write_png(img, folder / f"{k:02d}.png")
    (directory / _MARKER).write_text(fingerprint + "\n", encoding="utf-8")
    logger.info("wrote %d glyph images to %s", len(CHARACTERS) * IMAGES_PER_CHARACTER, directory)
    return directory


def materialize_embedded(preset: str) -> Path:
    """The embedded data a run without DATA uses, written to the cache once: the scikit-learn digits
    (`materialize_digits`) for the digits preset, else the rendered characters (`materialize_glyphs`)."""
    return materialize_digits() if preset == "digits" else materialize_glyphs()

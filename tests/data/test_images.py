"""Tests for siamese/data/images.py: mode conversion, errors, decompression-bomb guard, caching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import siamese.data.images as images_module
from siamese.data import IMAGE_EXTENSIONS, ImageLoader, is_image_file, open_image
from siamese.errors import ConfigError, ImageError


def _save(img: Image.Image, path: Path) -> Path:
    img.save(path)
    return path


def test_extensions_case_insensitive():
    assert ".pgm" in IMAGE_EXTENSIONS and ".tiff" in IMAGE_EXTENSIONS
    assert is_image_file("a/B.PNG") and is_image_file("x.JpEg")
    assert not is_image_file("notes.txt") and not is_image_file("png")


def test_l_and_rgb(tmp_path):
    arr = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    path = _save(Image.fromarray(arr, mode="L"), tmp_path / "g.png")
    out = open_image(path, 1)
    assert out.mode == "L" and out.size == (10, 12)
    np.testing.assert_array_equal(np.asarray(out), arr)
    rgb = open_image(path, 3)
    assert rgb.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(rgb)[:, :, 1], arr)

    colour = np.zeros((4, 5, 3), dtype=np.uint8)
    colour[..., 0] = 200
    path = _save(Image.fromarray(colour, mode="RGB"), tmp_path / "c.png")
    np.testing.assert_array_equal(np.asarray(open_image(path, 3)), colour)
    expected = np.asarray(Image.fromarray(colour).convert("L"))
    np.testing.assert_array_equal(np.asarray(open_image(path, 1)), expected)


def test_rgba_composited_on_white(tmp_path):
    arr = np.zeros((2, 2, 4), dtype=np.uint8)
    arr[0, 0] = (255, 0, 0, 0)  # fully transparent red -> white
    arr[0, 1] = (0, 0, 255, 255)  # opaque blue stays blue
    arr[1, 0] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    arr[1, 1] = (0, 0, 0, 255)
    out = np.asarray(open_image(_save(Image.fromarray(arr, mode="RGBA"), tmp_path / "a.png"), 3))
    np.testing.assert_array_equal(out[0, 0], (255, 255, 255))
    np.testing.assert_array_equal(out[0, 1], (0, 0, 255))
    assert np.all(np.abs(out[1, 0].astype(int) - 127) <= 1)
    np.testing.assert_array_equal(out[1, 1], (0, 0, 0))
    gray = np.asarray(open_image(tmp_path / "a.png", 1))
    assert gray[0, 0] == 255 and gray[1, 1] == 0


def test_la_composited_on_white(tmp_path):
    img = Image.new("LA", (3, 1), (0, 0))  # black but transparent
    out = np.asarray(open_image(_save(img, tmp_path / "la.png"), 1))
    np.testing.assert_array_equal(out, [[255, 255, 255]])


def test_palette(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([10, 20, 30, 200, 100, 0] + [0] * (256 * 3 - 6))
    img.putdata([0, 1])
    out = np.asarray(open_image(_save(img, tmp_path / "p.png"), 3))
    np.testing.assert_array_equal(out, [[[10, 20, 30], [200, 100, 0]]])

    img.info["transparency"] = 1  # colour 1 transparent -> white
    img.save(tmp_path / "pt.png", transparency=1)
    out = np.asarray(open_image(tmp_path / "pt.png", 3))
    np.testing.assert_array_equal(out, [[[10, 20, 30], [255, 255, 255]]])


def test_16bit_rescaled_not_clipped(tmp_path):
    arr = np.linspace(0, 65535, 256).astype(np.uint16).reshape(16, 16)
    img = Image.fromarray(arr)
    assert img.mode == "I;16"
    path = _save(img, tmp_path / "deep.png")
    out = np.asarray(open_image(path, 1)).astype(int)
    expected = np.rint(arr / 65535 * 255)
    assert np.abs(out - expected).max() <= 1
    assert out.min() == 0 and out.max() == 255 and len(np.unique(out)) > 200  # clipping would give ~all 255

    # 12-bit data in a 16-bit container: stretched by its value range.
    arr12 = np.array([[100, 2100, 4100]], dtype=np.uint16)
    out12 = np.asarray(open_image(_save(Image.fromarray(arr12), tmp_path / "d12.png"), 1))
    np.testing.assert_array_equal(out12, [[0, 128, 255]])


def test_32bit_int_and_float(tmp_path):
    arr = np.array([[-5.0, 0.0, 5.0]], dtype=np.float32)
    out = np.asarray(open_image(_save(Image.fromarray(arr, mode="F"), tmp_path / "f.tif"), 1))
    np.testing.assert_array_equal(out, [[0, 128, 255]])
    arr32 = np.array([[0, 100000, 200000]], dtype=np.int32)
    out32 = np.asarray(open_image(_save(Image.fromarray(arr32, mode="I"), tmp_path / "i.tif"), 3))
    np.testing.assert_array_equal(out32[0, :, 0], [0, 128, 255])


def test_cmyk_and_bilevel(tmp_path):
    cmyk = Image.new("CMYK", (2, 2), (255, 0, 0, 0))  # pure cyan
    out = np.asarray(open_image(_save(cmyk, tmp_path / "c.tif"), 3))
    np.testing.assert_array_equal(out[0, 0], (0, 255, 255))

    bits = Image.new("1", (3, 1), 0)
    bits.putpixel((1, 0), 1)
    out = np.asarray(open_image(_save(bits, tmp_path / "b.png"), 1))
    np.testing.assert_array_equal(out, [[0, 255, 0]])


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (20, 10), (90, 90, 90))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert open_image(tmp_path / "rot.jpg", 1).size == (10, 20)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.png", b"", "empty"),
        ("text.png", b"this is not an image\n" * 20, "not a recognised image"),
        ("noise.jpg", bytes(range(256)) * 8, "not a recognised image"),
    ],
)
def test_bad_files_raise_image_error(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason) as info:
        open_image(path, 1)
    assert str(path) in str(info.value)


def test_truncated_and_corrupt(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png"):
        open_image(tmp_path / "cut.png", 1)
    corrupt = bytearray(data)
    corrupt[100:400] = bytes(300)  # zeroed compressed data
    (tmp_path / "bad.png").write_bytes(bytes(corrupt))
    with pytest.raises(ImageError, match="bad.png"):
        open_image(tmp_path / "bad.png", 1)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="nope.png"):
        open_image(tmp_path / "nope.png", 1)
    with pytest.raises(ImageError, match="not a file"):
        open_image(tmp_path, 1)


def test_decompression_bomb_guard_stays_on(tmp_path, monkeypatch):
    path = _save(Image.new("L", (40, 40)), tmp_path / "big.png")  # 1600 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # warning zone (1x-2x)
    with pytest.raises(ImageError, match="decompression-bomb"):
        open_image(path, 1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # error zone (> 2x)
    with pytest.raises(ImageError, match="decompression-bomb"):
        open_image(path, 1)


def test_bad_channels():
    with pytest.raises(ConfigError):
        ImageLoader(2)


def test_loader_cache(tmp_path, monkeypatch):
    path = _save(Image.new("L", (4, 4), 7), tmp_path / "x.png")
    calls = []
    real = images_module.open_image

    def counting(p, channels):
        calls.append(p)
        return real(p, channels)

    monkeypatch.setattr(images_module, "open_image", counting)
    cached = ImageLoader(1, cache=True)
    first, second = cached(path), cached(str(path))
    assert first is second and len(calls) == 1 and cached.cached_count == 1
    other = ImageLoader(1, cache=True)  # caches are per instance
    other(path)
    assert len(calls) == 2
    plain = ImageLoader(3, cache=False)
    a, b = plain(path), plain(path)
    assert a is not b and a.mode == "RGB" and len(calls) == 4 and plain.cached_count == 0

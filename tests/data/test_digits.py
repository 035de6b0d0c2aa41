"""Tests for siamese/data/digits.py: the bundled scikit-learn digits written as PNG folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from siamese.data import default_cache_dir, materialize_digits, scan_folder


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> Path:
    return materialize_digits(tmp_path_factory.mktemp("cache") / "digits")


def test_materialised_layout_and_pixels(digits_dir):
    files = sorted(digits_dir.glob("*/*.png"))
    assert len(files) == 1797
    assert sorted(p.name for p in digits_dir.iterdir() if p.is_dir()) == [str(d) for d in range(10)]
    data = load_digits()
    for i in (0, 1, 1796):
        path = digits_dir / str(data.target[i]) / f"{i:04d}.png"
        img = Image.open(path)
        assert img.mode == "L" and img.size == (8, 8)
        np.testing.assert_array_equal(np.asarray(img), np.rint(data.images[i] * 255 / 16).astype(np.uint8))
    index = scan_folder(digits_dir)
    assert index.identities == tuple(str(d) for d in range(10)) and len(index) == 1797
    assert np.array_equal(np.bincount(index.labels()), np.bincount(data.target))


def test_second_call_is_free(digits_dir, monkeypatch):
    def fail():
        raise AssertionError("must not reload the digits")

    monkeypatch.setattr("sklearn.datasets.load_digits", fail)
    before = (digits_dir / "0" / "0000.png").stat().st_mtime_ns
    assert materialize_digits(digits_dir) == digits_dir
    assert (digits_dir / "0" / "0000.png").stat().st_mtime_ns == before


def test_interrupted_run_is_redone(tmp_path):
    target = materialize_digits(tmp_path / "d")
    (target / "3" / "0003.png").unlink()  # incomplete although the marker is there
    (target / "5" / "0005.png").write_bytes(b"half")  # no marker either: redone in full
    (target / ".complete").unlink()
    materialize_digits(target)
    assert len(list(target.glob("*/*.png"))) == 1797
    assert Image.open(target / "5" / "0005.png").size == (8, 8)
    (target / "7" / "0007.png").unlink()
    materialize_digits(target)  # the marker alone is not trusted
    assert (target / "7" / "0007.png").is_file()


def test_default_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("SIAMESE_CACHE", str(tmp_path / "sc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "sc"
    monkeypatch.delenv("SIAMESE_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "siamese"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "siamese"
    monkeypatch.setenv("SIAMESE_CACHE", str(tmp_path / "sc"))
    assert materialize_digits() == tmp_path / "sc" / "digits"
    assert len(list((tmp_path / "sc" / "digits").glob("*/*.png"))) == 1797

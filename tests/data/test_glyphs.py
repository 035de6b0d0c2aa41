"""Tests for siamese/data/glyphs.py: the embedded characters of `siamese train`, rendered from fonts."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siamese.data import glyphs, materialize_embedded, materialize_glyphs, scan_folder, split_identities
from siamese.data.glyphs import CHARACTERS, IMAGES_PER_CHARACTER, glyph_images, identity_name, typefaces


@pytest.fixture
def glyphs_dir(glyphs_cache) -> Path:
    return glyphs_cache / "glyphs-0"


def _stored(directory: Path, index: int) -> list[np.ndarray]:
    folder = directory / identity_name(CHARACTERS[index])
    return [np.asarray(Image.open(folder / f"{k:02d}.png")) for k in range(IMAGES_PER_CHARACTER)]


def test_doctests():
    assert doctest.testmod(glyphs).failed == 0


def test_layout_one_folder_per_character(glyphs_dir):
    index = scan_folder(glyphs_dir)
    assert len(index.identities) == len(CHARACTERS) >= 100
    assert sorted(index.identities) == sorted(identity_name(c) for c in CHARACTERS)
    assert np.array_equal(np.bincount(index.labels()), np.full(len(CHARACTERS), IMAGES_PER_CHARACTER))
    # folder names differ also on case-insensitive file systems
    assert len({name.lower() for name in index.identities}) == len(CHARACTERS)
    img = Image.open(index.records[0].path)
    assert img.mode == "L" and img.size == (32, 32)
    # the default split leaves dozens of identities for training and 20+ unseen ones for testing
    split = split_identities(index.identities, 0.2, 0.2)
    assert len(split.train) >= 60 and len(split.val) >= 20 and len(split.test) >= 20


def test_every_image_holds_a_centred_character(glyphs_dir):
    for i in range(len(CHARACTERS)):
        for img in _stored(glyphs_dir, i):
            ink = img > 64
            assert 10 <= ink.sum() <= 0.8 * img.size, CHARACTERS[i]
            ys, xs = np.nonzero(ink)
            assert max(ys.max() - ys.min(), xs.max() - xs.min()) >= 18, CHARACTERS[i]  # fitted to the box
            assert not img[0].any() and not img[-1].any() and not img[:, 0].any() and not img[:, -1].any()


def test_characters_come_in_many_typefaces():
    counts = {c: len(typefaces(c)) for c in CHARACTERS}
    assert min(counts.values()) >= 12, {c: n for c, n in counts.items() if n < 12}
    assert counts["a"] >= 20 and "pillow-default" in typefaces("a")
    assert not any(name.startswith("cm") for name in typefaces("α"))  # TeX encoding: ASCII only
    assert "pillow-default" not in typefaces("ж")  # its missing-glyph box is not a drawing


def test_images_are_what_the_seed_draws(glyphs_dir):
    for i in (0, 57, len(CHARACTERS) - 1):
        stored, drawn = _stored(glyphs_dir, i), glyph_images(i, seed=0)
        assert all(np.array_equal(a, b) for a, b in zip(stored, drawn, strict=True))
        other = glyph_images(i, seed=1)
        assert not any(np.array_equal(a, b) for a, b in zip(stored, other, strict=True))
    images = _stored(glyphs_dir, 0)
    assert len({img.tobytes() for img in images}) == IMAGES_PER_CHARACTER  # no two drawings alike


def test_second_call_is_free(glyphs_dir, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("must not render again")

    monkeypatch.setattr(glyphs, "render_glyph", fail)
    assert materialize_glyphs(glyphs_dir) == glyphs_dir


def test_incomplete_or_outdated_folder_is_redone(glyphs_dir, tmp_path, monkeypatch):
    target = tmp_path / "g"
    first = identity_name(CHARACTERS[0])
    (target / first).mkdir(parents=True)
    (target / first / "00.png").write_bytes(b"half")  # an interrupted run: no marker
    (target / ".complete").write_text("another version\n")  # or an outdated one
    calls = []
    real = glyphs.glyph_images

    def counted(index: int, seed: int = 0) -> list[np.ndarray]:
        calls.append(index)
        return real(index, seed) if index == 0 else [np.zeros((32, 32), np.uint8)] * IMAGES_PER_CHARACTER

    monkeypatch.setattr(glyphs, "glyph_images", counted)
    materialize_glyphs(target)
    assert calls == list(range(len(CHARACTERS)))
    assert np.array_equal(np.asarray(Image.open(target / first / "00.png")), _stored(glyphs_dir, 0)[0])
    (target / first / "03.png").unlink()  # the marker alone is not trusted
    calls.clear()
    materialize_glyphs(target)
    assert calls == list(range(len(CHARACTERS)))


def test_embedded_data_follows_the_preset(tmp_path, monkeypatch, glyphs_dir):
    monkeypatch.setenv("SIAMESE_CACHE", str(tmp_path))
    monkeypatch.setattr(glyphs, "materialize_digits", lambda: tmp_path / "digits")
    assert materialize_embedded("digits") == tmp_path / "digits"
    monkeypatch.setattr(glyphs, "glyph_images", lambda i, seed=0: _stored(glyphs_dir, i))
    assert materialize_embedded("glyphs") == tmp_path / "glyphs-0"
    assert materialize_embedded("face") == tmp_path / "glyphs-0"
    assert len(list((tmp_path / "glyphs-0").glob("*/*.png"))) == len(CHARACTERS) * IMAGES_PER_CHARACTER

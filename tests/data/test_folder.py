"""Tests for siamese/data/folder.py: scanning identity folders, forgeries, labels, subsets, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siamese.data import (
    ImageDataset,
    ImageIndex,
    ImageLoader,
    ImageRecord,
    list_images,
    rotated_classes,
    scan_folder,
)
from siamese.errors import DataError
from tests.conftest import write_identity_folder


def _png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (3, 3), value).save(path)
    return path


def test_flat_layout(image_folder):
    index = scan_folder(image_folder)
    assert index.identities == ("id00", "id01", "id02", "id03")
    assert len(index) == 20 and index.genuine() == list(range(20)) and index.forgeries() == []
    groups = index.by_identity()
    assert list(groups) == list(index.identities)
    for name, positions in groups.items():
        assert [Path(index.records[p].path).parent.name for p in positions] == [name] * 5
        assert [Path(index.records[p].path).name for p in positions] == [f"img_{k}.png" for k in range(5)]
    assert all(Path(r.path).is_absolute() and Path(r.path).is_file() for r in index.records)
    labels = index.labels()
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, np.repeat(np.arange(4), 5))


def test_nested_identities_named_by_relative_path(tmp_path):
    root = tmp_path / "omni"
    for alphabet, chars in (("Greek", ("alpha", "beta")), ("Latin", ("a",))):
        for char in chars:
            for k in range(2):
                _png(root / alphabet / char / f"{k}.png")
    _png(root / "Latin" / "loose.png")  # a folder holding images AND sub-folders is an identity too
    index = scan_folder(root)
    assert index.identities == ("Greek/alpha", "Greek/beta", "Latin", "Latin/a")
    assert {r.identity for r in index.records} == set(index.identities)
    assert len(index.by_identity()["Latin"]) == 1


def test_non_image_and_hidden_files_ignored_and_natural_order(tmp_path):
    root = tmp_path / "root"
    for name in ("10.png", "2.png", "1.png"):
        _png(root / "a" / name)
    _png(root / "b" / "x.JPG".lower())
    (root / "a" / "notes.txt").write_text("hello")
    (root / "a" / ".DS_Store").write_bytes(b"\0\0")
    (root / "a" / "._1.png").write_bytes(b"AppleDouble junk")  # hidden: never decoded
    _png(root / ".cache" / "z.png")  # hidden folder is not an identity
    _png(root / "__MACOSX" / "a" / "1.png")
    index = scan_folder(root)
    assert index.identities == ("a", "b")
    assert [Path(index.records[p].path).name for p in index.by_identity()["a"]] == [
        "1.png",
        "2.png",
        "10.png",
    ]
    assert list_images(root / "a") == ["1.png", "2.png", "10.png"]


def test_forgeries_matched_by_name_and_labels_unique(forgery_folders, caplog):
    genuine, forged = forgery_folders
    _png(forged / "stranger" / "f.png")  # no genuine identity of that name
    with caplog.at_level(logging.WARNING, logger="siamese.data.folder"):
        index = scan_folder(genuine, forgeries=forged)
    assert any("stranger" in rec.getMessage() for rec in caplog.records)
    assert index.identities == ("id00", "id01", "id02", "id03")
    assert len(index) == 16 + 12
    forged_groups = index.forgeries_by_identity()
    assert {k: len(v) for k, v in forged_groups.items()} == {f"id0{i}": 3 for i in range(4)}
    for name, positions in forged_groups.items():
        for p in positions:
            record = index.records[p]
            assert record.forgery and record.identity == name
            assert Path(record.path).parent == forged / name
    # Naive label check: identity position for genuine, unique labels >= K for forgeries.
    labels = index.labels()
    k = len(index.identities)
    forgery_labels = []
    for record, label in zip(index.records, labels, strict=True):
        if record.forgery:
            forgery_labels.append(label)
        else:
            assert label == index.identities.index(record.identity)
    assert sorted(forgery_labels) == list(range(k, k + 12))
    assert index.genuine() == list(range(16)) and index.forgeries() == list(range(16, 28))
    assert all(not index.records[p].forgery for g in index.by_identity().values() for p in g)


def test_forgeries_none_matching(forgery_folders, tmp_path):
    genuine, _ = forgery_folders
    other = write_identity_folder(tmp_path / "other", n_identities=2, n_images=1, prefix="zz")
    with pytest.raises(DataError, match="none of the 2 forgery folders"):
        scan_folder(genuine, forgeries=other)
    with pytest.raises(DataError, match="forgeries folder not found"):
        scan_folder(genuine, forgeries=tmp_path / "missing")


def test_subset_keeps_forgeries(forgery_folders):
    index = scan_folder(*forgery_folders)
    sub = index.subset(["id03", "id01"])
    assert sub.identities == ("id01", "id03")
    assert {r.identity for r in sub.records} == {"id01", "id03"}
    assert len(sub) == 2 * 4 + 2 * 3
    assert sum(r.forgery for r in sub.records) == 6
    labels = sub.labels()
    assert set(labels[[i for i, r in enumerate(sub.records) if not r.forgery]]) == {0, 1}
    assert sorted(labels[sub.forgeries()]) == [2, 3, 4, 5, 6, 7]
    with pytest.raises(DataError, match="unknown identities: nobody"):
        index.subset(["id01", "nobody"])


def test_single_image_identity_kept_with_warning(tmp_path, caplog):
    root = write_identity_folder(tmp_path / "root", n_identities=3, n_images=3)
    for k in range(7):
        _png(root / f"solo{k}" / "only.png")
    with caplog.at_level(logging.WARNING, logger="siamese.data.folder"):
        index = scan_folder(root)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "7 identities have a single image" in warnings[0] and "solo0" in warnings[0]
    assert "(7 in total)" in warnings[0]
    assert len(index.identities) == 10
    assert index.by_identity()["solo3"] and len(index.by_identity()["solo3"]) == 1
    assert "7 with a single image" in index.summary()


def test_summary(forgery_folders):
    text = scan_folder(*forgery_folders).summary()
    assert "4 identities" in text and "16 genuine images" in text and "12 forgeries of 4 identities" in text


def test_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        scan_folder(tmp_path / "missing")
    file = _png(tmp_path / "file.png")
    with pytest.raises(DataError, match="got a file"):
        scan_folder(file)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no sub-folders containing images"):
        scan_folder(tmp_path / "empty")
    flat = tmp_path / "flat"
    for k in range(3):
        _png(flat / f"{k}.png")
    with pytest.raises(DataError, match="directly but no identity sub-folders"):
        scan_folder(flat)
    one = tmp_path / "one"
    _png(one / "a" / "1.png")
    _png(one / "a" / "2.png")
    with pytest.raises(DataError, match="only 1 identity"):
        scan_folder(one)


def test_index_validation():
    with pytest.raises(DataError, match="sorted"):
        ImageIndex(records=(), identities=("b", "a"))
    with pytest.raises(DataError, match="missing from the index"):
        ImageIndex(records=(ImageRecord("/x.png", "c"),), identities=("a", "b"))


@pytest.mark.parametrize(
    "rotations, suffixes", [(2, ["", "@rot180"]), (4, ["", "@rot90", "@rot180", "@rot270"])]
)
def test_rotated_classes_are_new_identities(forgery_folders, rotations, suffixes):
    genuine, forged = forgery_folders
    index = scan_folder(genuine, forged)
    rotated = rotated_classes(index, rotations)
    assert rotated.identities == tuple(sorted(n + s for n in index.identities for s in suffixes))
    assert len(rotated) == rotations * len(index)
    # genuine records first, then forgeries; every copy keeps its file and forgery flag
    flags = [r.forgery for r in rotated.records]
    assert flags == sorted(flags)
    for r in rotated.records:
        name, _, degrees = r.identity.partition("@rot")
        assert r.turns == (int(degrees) // 90 if degrees else 0)
        assert Path(r.path).parent.name == name
    labels = rotated.labels()
    by_id = rotated.by_identity()
    assert all(len(v) == 4 for v in by_id.values())
    assert len({int(labels[v[0]]) for v in by_id.values()}) == len(rotated.identities)
    forged_of = rotated.forgeries_by_identity()
    assert sorted(forged_of) == list(rotated.identities) and all(len(v) == 3 for v in forged_of.values())


def test_rotated_classes_off_and_errors(image_folder):
    index = scan_folder(image_folder)
    assert rotated_classes(index, 1) is index
    with pytest.raises(DataError, match="rotations must be one of"):
        rotated_classes(index, 3)


def test_loaded_rotated_image_is_turned(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20  # (H, W), not symmetric
    for who in ("a", "b"):
        (tmp_path / who).mkdir()
        Image.fromarray(pixels, mode="L").save(tmp_path / who / "x.png")
    rotated = rotated_classes(scan_folder(tmp_path), 4)
    dataset = ImageDataset(rotated, ImageLoader(1), transform=None)
    for i, record in enumerate(rotated.records):
        image, label = dataset[i]
        assert label == rotated.identities.index(record.identity)
        np.testing.assert_array_equal(np.asarray(image), np.rot90(pixels, record.turns))  # counter-clockwise


def test_forgery_classes_label_each_identity_s_forgeries_as_one_class(forgery_folders):
    index = scan_folder(*forgery_folders)
    k = len(index.identities)
    labels = index.labels(forgery_classes=True)
    for record, label in zip(index.records, labels, strict=True):
        position = index.identities.index(record.identity)
        assert label == (k + position if record.forgery else position)
    # genuine labels are the same either way; the forged ones collapse to K classes
    genuine = np.array([not r.forgery for r in index.records])
    assert labels[genuine].tolist() == index.labels()[genuine].tolist()
    assert sorted(set(labels[~genuine].tolist())) == list(range(k, 2 * k))

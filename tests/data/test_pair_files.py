"""Tests for siamese/data/pair_files.py: LFW-style and CSV pair lists, line-numbered errors."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from PIL import Image

from siamese.data import (
    ImageLoader,
    PairDataset,
    generate_pairs,
    read_pair_list,
    read_pairs,
    scan_folder,
    write_pairs_csv,
)
from siamese.errors import DataError


@pytest.fixture
def root(tmp_path) -> Path:
    """Alice (1, 2, 10 .png), Bob (Bob_0001..3.jpg) and nested Greek/alpha (a.png, b.png)."""
    root = tmp_path / "imgs"
    layout = {"Alice": ["10.png", "1.png", "2.png"], "Bob": [f"Bob_{k:04d}.jpg" for k in (1, 2, 3)]}
    layout["Greek/alpha"] = ["a.png", "b.png"]
    for name, files in layout.items():
        (root / name).mkdir(parents=True)
        for f in files:
            Image.new("L", (4, 4), 9).save(root / name / f)
    (root / "Alice" / "readme.txt").write_text("not an image")
    return root


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_lfw_both_line_kinds(tmp_path, root):
    text = "1\t2\nAlice\t1\t3\nBob 2 3\nAlice\t3\tBob\t1\n# comment\n\nGreek/alpha 2 Alice 2\n"
    pairs = read_pairs(write(tmp_path, "pairs.txt", text), root)
    expected = [
        (root / "Alice" / "1.png", root / "Alice" / "10.png", True),  # natural order: 1, 2, 10
        (root / "Bob" / "Bob_0002.jpg", root / "Bob" / "Bob_0003.jpg", True),
        (root / "Alice" / "10.png", root / "Bob" / "Bob_0001.jpg", False),
        (root / "Greek/alpha" / "b.png", root / "Alice" / "2.png", False),
    ]
    assert pairs == [(str(a), str(b), s) for a, b, s in expected]
    assert all(os.path.isabs(a) and os.path.isfile(b) for a, b, _ in pairs)


def test_lfw_header_optional_and_count_mismatch_warned(tmp_path, root, caplog):
    no_header = read_pairs(write(tmp_path, "a.txt", "Alice 1 2\n"), root)
    single = read_pairs(write(tmp_path, "b.txt", "1\nAlice 1 2\nAlice 1 Bob 1\n"), root)
    assert no_header == single[:1] and len(single) == 2
    with caplog.at_level(logging.WARNING, logger="siamese.data.pair_files"):
        read_pairs(write(tmp_path, "c.txt", "300\nAlice 1 2\n"), root)
    assert "600" in caplog.text
    # a fold header must be exact: the folds are cut by position
    with pytest.raises(DataError, match="10 folds, 6000 pairs in all, but the file holds 1"):
        read_pairs(write(tmp_path, "d.txt", "10\t300\nAlice 1 2\n"), root)


def test_lfw_fold_header_gives_the_folds(tmp_path, root):
    """View 2's layout, by hand: `2<TAB>1` = 2 folds, each 1 genuine then 1 impostor pair."""
    text = "2\t1\nAlice 1 2\nAlice 1 Bob 1\nBob 1 2\nBob 3 Greek/alpha 1\n"
    listed = read_pair_list(write(tmp_path, "pairs.txt", text), root)
    assert listed.folds == 2 and [s for _, _, s in listed.pairs] == [True, False, True, False]
    assert listed.pairs[3] == (str(root / "Bob" / "Bob_0003.jpg"), str(root / "Greek/alpha" / "a.png"), False)
    assert read_pair_list(write(tmp_path, "dev.txt", "1\nAlice 1 2\nAlice 1 Bob 1\n"), root).folds is None
    assert read_pair_list(write(tmp_path, "none.txt", "Alice 1 2\n"), root).folds is None


def test_csv(tmp_path, root):
    absolute = root / "Bob" / "Bob_0001.jpg"
    text = (
        "path1,path2,is_same\n"
        "Alice/1.png,Alice/2.png,1\n"
        f"Alice/1.png,{absolute},different\n"
        "Greek/alpha/a.png,Greek/alpha/b.png,TRUE\n"
        "Bob/Bob_0002.jpg,Alice/2.png,0\n"
        '"Bob/Bob_0003.jpg","Bob/Bob_0001.jpg",same\n'
    )
    pairs = read_pairs(write(tmp_path, "pairs.csv", text), root)
    assert [s for _, _, s in pairs] == [True, False, True, False, True]
    assert pairs[1] == (str(root / "Alice" / "1.png"), str(absolute), False)
    # Detected from content as well, without a header.
    pairs_txt = read_pairs(write(tmp_path, "pairs.txt", "Alice/1.png,Alice/2.png,false\n"), root)
    assert pairs_txt == [(str(root / "Alice/1.png"), str(root / "Alice/2.png"), False)]


LFW_ERRORS = [
    ("2\nAlice 1 2\nAlice 1\n", 3, "expected 'name i j' or 'name1 i name2 j', got 2 fields"),
    ("Alice 1 2\n\n# note\nCarol 1 2\n", 4, "unknown identity 'Carol'"),
    ("Alice 1 4\n", 1, "image number 4 out of range for 'Alice' \\(3 images"),
    ("Alice 0 1\n", 1, "image number 0 out of range"),
    ("Alice 1 2\nAlice 1 Bob x\n", 2, "must be an integer, got 'x'"),
    ("Alice 1 2 Bob 1\n", 1, "got 5 fields"),
]
CSV_ERRORS = [
    ("path1,path2,is_same\nAlice/1.png,Alice/2.png\n", 2, "expected 'path1,path2,is_same', got 2 fields"),
    ("Alice/1.png,Alice/2.png,1\nAlice/1.png,Alice/2.png,maybe\n", 2, "is_same must be"),
    ("Alice/1.png,Alice/2.png,1\n\nAlice/1.png,Alice/9.png,1\n", 3, "image file not found"),
]


@pytest.mark.parametrize(
    ("name", "text", "line", "reason"),
    [("bad.txt", *case) for case in LFW_ERRORS] + [("bad.csv", *case) for case in CSV_ERRORS],
)
def test_errors_name_file_and_line(tmp_path, root, name, text, line, reason):
    path = write(tmp_path, name, text)
    with pytest.raises(DataError, match=reason) as info:
        read_pairs(path, root)
    assert f"{path}, line {line}:" in str(info.value)


def test_missing_inputs(tmp_path, root):
    with pytest.raises(DataError, match="pairs file not found"):
        read_pairs(tmp_path / "none.txt", root)
    path = write(tmp_path, "p.txt", "Alice 1 2\n")
    with pytest.raises(DataError, match="image root folder not found"):
        read_pairs(path, tmp_path / "nowhere")
    with pytest.raises(DataError, match="holds no pairs"):
        read_pairs(write(tmp_path, "empty.txt", "# nothing\n\n"), root)


def test_write_read_round_trip(tmp_path, root):
    outside = tmp_path / "elsewhere.png"
    Image.new("L", (2, 2)).save(outside)
    pairs = [
        (str(root / "Alice" / "1.png"), str(root / "Greek" / "alpha" / "a.png"), False),
        (str(root / "Bob" / "Bob_0001.jpg"), str(root / "Bob" / "Bob_0002.jpg"), True),
        (str(root / "Bob" / "Bob_0001.jpg"), str(outside), False),
    ]
    path = tmp_path / "out" / "pairs.csv"
    write_pairs_csv(pairs, path, root)
    lines = path.read_text().splitlines()
    assert lines[0] == "path1,path2,is_same" and lines[1] == "Alice/1.png,Greek/alpha/a.png,0"
    assert lines[3].endswith(f"{outside},0")
    assert read_pairs(path, root) == pairs


def test_generate_pairs(forgery_folders):
    index = scan_folder(*forgery_folders)
    pairs = generate_pairs(index, 40, seed=3, forgery_fraction=0.5)
    assert pairs == generate_pairs(index, 40, seed=3, forgery_fraction=0.5)
    assert [s for _, _, s in pairs] == [i % 2 == 0 for i in range(40)]
    ds = PairDataset(index, ImageLoader(1), None, 40, forgery_fraction=0.5, seed=3)
    assert pairs == [(index.records[a].path, index.records[b].path, s) for a, b, s in ds.pairs()]
    assert generate_pairs(index, 40, seed=4) != pairs

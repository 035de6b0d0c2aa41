"""Tests for siamese/data/inputs.py: listing the images of a folder or of a text file."""

import pytest

from siamese.data import EmbeddingInput, list_inputs, scan_folder
from siamese.errors import DataError
from tests.conftest import write_identity_folder


def test_list_inputs_identities_match_scan_folder(tmp_path):
    root = write_identity_folder(tmp_path / "ids", n_identities=3, n_images=2)
    (root / "id01" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "a.png").write_bytes((root / "id00" / "img_0.png").read_bytes())
    items = list_inputs(root)
    expected = [(r.path, r.identity) for r in scan_folder(root).records]
    assert [(i.path, i.identity) for i in items] == expected
    assert len(items) == 6


def test_list_inputs_flat_and_nested_folders(tmp_path):
    write_identity_folder(tmp_path / "alphabet" / "greek", n_identities=2, n_images=1)
    src = tmp_path / "alphabet" / "greek" / "id00" / "img_0.png"
    (tmp_path / "alphabet" / "loose.png").write_bytes(src.read_bytes())
    got = {(i.path.split("/")[-1], i.identity) for i in list_inputs(tmp_path / "alphabet")}
    assert got == {("loose.png", ""), ("img_0.png", "greek/id00"), ("img_0.png", "greek/id01")}


def test_list_inputs_from_text_file(tmp_path):
    write_identity_folder(tmp_path / "d", n_identities=2, n_images=2)
    absolute = tmp_path / "d" / "id01" / "img_1.png"
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my pairs\nd/id00/img_0.png\n\n  d/id00/img_1.png  \n{absolute}\n")
    items = list_inputs(listing)
    assert items == [
        EmbeddingInput(str(tmp_path / "d" / "id00" / "img_0.png"), "d/id00"),
        EmbeddingInput(str(tmp_path / "d" / "id00" / "img_1.png"), "d/id00"),
        EmbeddingInput(str(absolute), "id01"),
    ]


def test_list_inputs_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        list_inputs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        list_inputs(tmp_path / "empty")
    (tmp_path / "blank.txt").write_text("# nothing\n")
    with pytest.raises(DataError, match="names no image paths"):
        list_inputs(tmp_path / "blank.txt")
    (tmp_path / "one.png").write_bytes(b"x")
    with pytest.raises(DataError, match="single image"):
        list_inputs(tmp_path / "one.png")

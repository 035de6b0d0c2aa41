import logging

import pytest

from siamese.data import ImageLoader, drop_unreadable, scan_folder
from siamese.errors import DataError
from tests.conftest import write_identity_folder


@pytest.fixture
def messy(tmp_path):
    root = write_identity_folder(tmp_path / "ids", n_identities=3, n_images=3)
    (root / "id00" / "zero.png").write_bytes(b"")
    (root / "id01" / "text.png").write_text("not an image")
    good = (root / "id02" / "img_0.png").read_bytes()
    (root / "id02" / "trunc.png").write_bytes(good[: len(good) // 2])
    return root


@pytest.mark.parametrize("decode", [True, False])
def test_unreadable_images_are_dropped_with_one_warning(messy, caplog, decode):
    index = scan_folder(messy)
    loader = ImageLoader(1, cache=True)
    with caplog.at_level(logging.WARNING, logger="siamese"):
        kept = drop_unreadable(index, (lambda p, c: loader(p)) if decode else None, 1)
    warnings = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "skipping 3 unreadable images" in warnings[0].getMessage()
    assert len(kept) == len(index) - 3 and kept.identities == index.identities
    assert not {r.path.rsplit("/", 1)[1] for r in kept.records} & {"zero.png", "text.png", "trunc.png"}
    if decode:
        assert loader.cached_count == len(kept)


def test_strict_raises_listing_the_files(messy):
    with pytest.raises(DataError, match=r"3 unreadable images \(--strict\): .*zero.png"):
        drop_unreadable(scan_folder(messy), None, 1, strict=True)


def test_clean_index_is_returned_unchanged(tmp_path):
    index = scan_folder(write_identity_folder(tmp_path / "ok", n_identities=2, n_images=2))
    assert drop_unreadable(index, None, 1) is index

"""Tests for siamese/inference/embedding.py: batched embedding of files, prefetching, unreadable files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from siamese.data import get_transform, scan_folder
from siamese.data.images import open_image
from siamese.errors import ConfigError, ImageError
from siamese.inference.embedding import embed_all, embed_files, embed_images
from tests.conftest import write_identity_folder


@pytest.fixture
def paths_with_a_bad_file(tmp_path) -> list[str]:
    root = write_identity_folder(tmp_path / "data", n_identities=3, n_images=5, size=(16, 12))
    paths = [r.path for r in scan_folder(root).records]  # 15 files
    bad = tmp_path / "data" / "id01" / "bad.png"
    bad.write_text("not an image")
    return paths[:7] + [str(bad)] + paths[7:]


def _encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 12, 5)).eval()


def test_embed_all_matches_one_image_at_a_time(paths_with_a_bad_file):
    paths, encoder = paths_with_a_bad_file, _encoder()
    transform = get_transform("face", False, (16, 12), 1)
    emb, failed = embed_all(encoder, paths, transform, channels=1, batch_size=4)  # 4 batches, last 4
    assert emb.shape == (16, 5)
    assert [i for i, _ in failed] == [7] and "not a recognised image format" in failed[0][1]
    assert np.isnan(emb[7]).all()
    with torch.no_grad():
        for i, path in enumerate(paths):
            if i != 7:
                expected = encoder(transform(open_image(path, 1))[None])[0].numpy()
                np.testing.assert_allclose(emb[i], expected, rtol=1e-5, atol=1e-6)


def test_thread_prefetch_and_worker_processes_agree(paths_with_a_bad_file):
    paths, encoder = paths_with_a_bad_file, _encoder()
    transform = get_transform("face", False, (16, 12), 1)
    threaded = list(embed_images(encoder, paths, transform, 1, batch_size=5, workers=0))
    processes = list(embed_images(encoder, paths, transform, 1, batch_size=5, workers=1))
    assert (
        [b.positions for b in threaded]
        == [b.positions for b in processes]
        == [
            [0, 1, 2, 3, 4],
            [5, 6, 8, 9],
            [10, 11, 12, 13, 14],
            [15],
        ]
    )
    for a, b in zip(threaded, processes, strict=True):
        np.testing.assert_array_equal(a.embeddings, b.embeddings)
        assert a.failed == b.failed


def test_empty_input_and_stopping_early(paths_with_a_bad_file):
    encoder, transform = _encoder(), get_transform("face", False, (16, 12), 1)
    emb, failed = embed_all(encoder, [], transform, channels=1)
    assert emb.shape == (0, 0) and failed == []
    batches = embed_images(encoder, paths_with_a_bad_file, transform, 1, batch_size=3)
    first = next(batches)
    batches.close()  # a consumer that stops early leaves no thread behind
    assert first.positions == [0, 1, 2]


def test_embed_files_equals_embed_all_and_reports_progress(paths_with_a_bad_file):
    paths = [p for p in paths_with_a_bad_file if not p.endswith("bad.png")]  # 15 readable files
    encoder, transform = _encoder(), get_transform("face", False, (16, 12), 1)
    progress: list[tuple[int, int]] = []
    emb = embed_files(encoder, paths, transform, 1, lambda *done: progress.append(done), batch_size=4)
    expected, failed = embed_all(encoder, paths, transform, 1, batch_size=4)
    assert failed == [] and emb.shape == (15, 5)
    np.testing.assert_array_equal(emb, expected)
    assert progress == [(4, 15), (8, 15), (12, 15), (15, 15)]


def test_embed_files_refuses_unreadable_files_counting_them(paths_with_a_bad_file, tmp_path):
    other = tmp_path / "empty.png"
    other.write_bytes(b"")
    paths = [*paths_with_a_bad_file, str(other)]  # bad.png at position 7, empty.png last
    encoder, transform = _encoder(), get_transform("face", False, (16, 12), 1)
    with pytest.raises(ImageError, match=r"^2 of 17 images could not be read; first: .*bad\.png"):
        embed_files(encoder, paths, transform, 1, batch_size=5, workers=1)


def test_flip_tta_embeds_each_image_and_its_mirror(paths_with_a_bad_file):
    paths, encoder = paths_with_a_bad_file, _encoder()  # no `normalize`: the plain mean
    transform = get_transform("face", False, (16, 12), 1)
    emb = embed_files(encoder, paths[:5], transform, channels=1, batch_size=2, tta="flip")  # (5, 5)
    with torch.no_grad():
        for i, path in enumerate(paths[:5]):
            x = transform(open_image(path, 1))[None]
            expected = ((encoder(x) + encoder(x.flip(-1))) / 2)[0].numpy()
            np.testing.assert_allclose(emb[i], expected, rtol=1e-5, atol=1e-6)
    plain = embed_files(encoder, paths[:5], transform, channels=1)
    assert not np.allclose(emb, plain, atol=1e-4)
    with pytest.raises(ConfigError, match="test-time augmentation"):
        next(embed_images(encoder, paths, transform, 1, tta="mirror"))

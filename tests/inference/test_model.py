"""EmbeddingModel: the one loaded-model object; images arrive as files, bytes or Pillow images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siamese.data import get_transform, open_image
from siamese.errors import ImageError
from siamese.inference import EmbeddingModel, Verifier
from siamese.models.checkpoint import CheckpointMetadata, read_metadata, resolve_checkpoint
from siamese.runs import RunDir
from tests.conftest import face_on_canvas, lfw_photo


@pytest.fixture(scope="module")
def model(tiny_run):
    return EmbeddingModel.from_checkpoint(tiny_run[0])


@pytest.fixture(scope="module")
def images(tiny_run):
    return sorted(str(p) for p in tiny_run[1].glob("*/*.png"))


def test_files_bytes_and_pillow_images_embed_alike(model, images):
    paths = images[:4]
    as_bytes = [Path(p).read_bytes() for p in paths]
    as_pillow = [Image.open(io.BytesIO(b)) for b in as_bytes]
    from_files = model.embed(paths, batch_size=4)
    np.testing.assert_allclose(model.embed(as_bytes, batch_size=4), from_files, atol=1e-6)
    np.testing.assert_allclose(model.embed(as_pillow, batch_size=4), from_files, atol=1e-6)
    mixed = [paths[0], as_bytes[1], as_pillow[2], paths[3]]
    np.testing.assert_allclose(model.embed(mixed, batch_size=4), from_files, atol=1e-6)


def test_an_embedding_is_the_encoder_on_the_recorded_preprocessing(model, images):
    meta = model.metadata
    tf = get_transform(meta["preset"], False, tuple(meta["image_size"]), meta["channels"])
    x = tf(open_image(images[0], meta["channels"]))[None]  # (1, C, H, W)
    expected = model.model.embed(x).detach().numpy()
    np.testing.assert_allclose(model.embed(images[:1]), expected, atol=1e-5)


def test_undecodable_bytes_name_their_position(model, images):
    with pytest.raises(ImageError, match=r"#2 \(in memory\)"):
        model.embed([images[0], b"not an image"])
    emb, failed = model.embed_all([b"", images[0]])
    assert [i for i, _ in failed] == [0] and np.isnan(emb[0]).all() and np.isfinite(emb[1]).all()


def test_embedder_reports_one_growing_total(model, images):
    seen: list[tuple[int, int]] = []
    embed = model.embedder(batch_size=2, on_progress=lambda done, total: seen.append((done, total)))
    embed(images[:3])
    embed(images[3:5])
    assert seen[-1] == (5, 5) and seen[1] == (3, 3)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_the_model_knows_its_run_and_typed_metadata(model, tiny_run):
    assert model.run == RunDir(tiny_run[0])
    info = model.info
    assert info == CheckpointMetadata.from_dict(read_metadata(resolve_checkpoint(tiny_run[0])))
    assert info.threshold == model.metadata["threshold"] and info.tta == "none" == model.tta
    assert info.distance == model.distance and info.embedding_dim == model.embedding_dim
    assert isinstance(Verifier.from_checkpoint(tiny_run[0]), EmbeddingModel)


def test_metadata_defaults_live_in_one_place():
    info = CheckpointMetadata.from_dict({"distance": "cosine", "encoder": {"name": "smallcnn"}, "tta": None})
    defaults = (info.tta, info.threshold_rule, info.target_far, info.method)
    assert defaults == ("none", "eer", 1e-3, "supervised")
    assert info.threshold is None and info.calibration is None
    broken = CheckpointMetadata.from_dict({"distance": "cosine", "calibration": {"coef": 1.0}})
    assert broken.calibration is None  # an incomplete calibration is no calibration


def test_detect_embeds_each_face_crop_and_names_images_without_one(model, tiny_run, lfw, tmp_path):
    pytest.importorskip("cv2")
    from siamese.data import FaceDetector

    detecting = EmbeddingModel.from_checkpoint(tiny_run[0], detect=True)
    assert detecting.detect and not model.detect and isinstance(detecting.detector, FaceDetector)
    canvas = face_on_canvas(lfw_photo(lfw, "Aaron_Eckhart"), (300, 150))
    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 240), (255, 255, 255)).save(blank)
    crop, _ = FaceDetector().crop(canvas)
    expected = model.embed([crop])  # (1, D): the whole-image model on the crop
    for workers in (0, 1):
        emb, failed = detecting.embed_all([canvas, str(blank), Image.open(blank)], workers=workers)
        assert failed == [(1, f"no face found in {blank}"), (2, "no face found in image #3 (in memory)")]
        np.testing.assert_allclose(emb[:1], expected, atol=1e-5)
    assert not np.allclose(model.embed([canvas]), expected, atol=1e-3)  # without detect: the whole canvas
    with pytest.raises(ImageError, match=r"1 of 2 images could not be read; first: no face found in .*blank"):
        detecting.embed([canvas, str(blank)])
    verifier = Verifier.from_checkpoint(tiny_run[0], detect=True)
    assert (
        verifier.verify(canvas, crop, threshold=1.0).distance
        < model.pair_distance(model.embed([canvas]), expected)[0]
    )

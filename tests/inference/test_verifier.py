import json
import math
import os
import shutil

import numpy as np
import pytest
import torch

from siamese.data import get_transform, open_image
from siamese.errors import CheckpointError, ImageError
from siamese.inference import VerificationResult, Verifier, latest_run


@pytest.fixture(scope="module")
def verifier(tiny_run):
    return Verifier.from_checkpoint(tiny_run[0])


@pytest.fixture(scope="module")
def images(tiny_run):
    data = tiny_run[1]
    return sorted(str(p) for p in data.glob("*/*.png"))


def _manual_embeddings(verifier, paths):
    """Preprocess and embed image by image, without the batched embedding path."""
    meta = verifier.metadata
    tf = get_transform(meta["preset"], False, tuple(meta["image_size"]), meta["channels"])
    with torch.no_grad():
        return np.stack(
            [verifier.model.encoder(tf(open_image(p, meta["channels"]))[None])[0].numpy() for p in paths]
        )


def test_embed_matches_one_image_at_a_time(verifier, images):
    emb = verifier.embed(images[:7], batch_size=3)
    assert emb.shape == (7, verifier.embedding_dim) == (7, 8)
    np.testing.assert_allclose(emb, _manual_embeddings(verifier, images[:7]), atol=1e-5)


def test_verify_distance_decision_and_confidence_by_hand(verifier, images):
    a, b = images[0], images[-1]
    res = verifier.verify(a, b)
    ea, eb = _manual_embeddings(verifier, [a, b])
    assert verifier.distance == "euclidean"
    assert res.distance == pytest.approx(float(np.linalg.norm(ea - eb)), abs=1e-5)
    assert res.threshold == verifier.metadata["threshold"]
    assert res.same == (res.distance <= res.threshold)
    cal = verifier.metadata["calibration"]
    assert res.confidence == pytest.approx(
        1 / (1 + math.exp(-(cal["coef"] * res.distance + cal["intercept"])))
    )
    assert res.model == str(verifier.source) and res.model.endswith("best") and res.seconds > 0


def test_identical_images_are_same_and_threshold_override_flips(verifier, images):
    assert verifier.verify(images[0], images[0]).distance == pytest.approx(0.0, abs=1e-6)
    assert verifier.verify(images[0], images[0]).same
    d = verifier.verify(images[0], images[-1]).distance
    assert d > 0
    assert verifier.verify(images[0], images[-1], threshold=d * 1.01).same
    assert not verifier.verify(images[0], images[-1], threshold=d * 0.99).same


def test_result_to_dict_keys():
    res = VerificationResult(True, 0.1, 0.2, None, "m", 0.01)
    assert res.to_dict() == {
        "same": True,
        "distance": 0.1,
        "threshold": 0.2,
        "confidence": None,
        "model": "m",
        "seconds": 0.01,
    }


def test_corrupt_image_raises_naming_the_file(verifier, images, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ImageError, match="broken.png"):
        verifier.verify(images[0], bad)
    with pytest.raises(ImageError, match="missing.png"):
        verifier.verify(tmp_path / "missing.png", images[0])


def _copy_run(run, dest, **meta_changes):
    shutil.copytree(run, dest)
    path = dest / "checkpoints" / "best.json"
    meta = json.loads(path.read_text())
    for key, value in meta_changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    path.write_text(json.dumps(meta))
    return dest


def test_without_calibration_confidence_is_none(tiny_run, images, tmp_path):
    run = _copy_run(tiny_run[0], tmp_path / "run", calibration=None)
    assert Verifier.from_checkpoint(run).verify(images[0], images[1]).confidence is None


def test_without_threshold_needs_one(tiny_run, images, tmp_path):
    run = _copy_run(tiny_run[0], tmp_path / "run", threshold=None)
    v = Verifier.from_checkpoint(run)
    with pytest.raises(CheckpointError, match="no decision threshold"):
        v.verify(images[0], images[1])
    assert v.verify(images[0], images[1], threshold=10.0).same


def test_last_checkpoint_and_file_paths(tiny_run):
    run = tiny_run[0]
    assert Verifier.from_checkpoint(run, which="last").source.endswith("last")
    assert Verifier.from_checkpoint(run / "checkpoints" / "best.safetensors").source.endswith("best")


def test_latest_run_picks_newest_best_json(tmp_path):
    for name, mtime in (("b-old", 1000), ("a-new", 3000), ("c-mid", 2000)):
        meta = tmp_path / name / "checkpoints" / "best.json"
        meta.parent.mkdir(parents=True)
        meta.write_text("{}")
        os.utime(meta, (mtime, mtime))
    (tmp_path / "z-untrained" / "checkpoints").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("x")
    assert latest_run(tmp_path) == tmp_path / "a-new"


def test_latest_run_without_runs_is_clear(tmp_path):
    with pytest.raises(CheckpointError, match="no trained model found"):
        latest_run(tmp_path / "runs")
    (tmp_path / "runs" / "empty").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="siamese train"):
        latest_run(tmp_path / "runs")


def test_checkpoint_without_preprocessing_block_uses_top_level_fields(tiny_run, images, tmp_path, verifier):
    run = _copy_run(tiny_run[0], tmp_path / "run", preprocessing=None)  # as older checkpoints were
    legacy = Verifier.from_checkpoint(run)
    assert legacy.preprocessing == verifier.preprocessing
    np.testing.assert_allclose(legacy.embed(images[:3]), verifier.embed(images[:3]), atol=1e-6)


def test_checkpoint_without_preprocessing_is_a_checkpoint_error(tiny_run, tmp_path):
    run = _copy_run(tiny_run[0], tmp_path / "run", preprocessing=None, preset=None)
    with pytest.raises(CheckpointError, match="does not record its preprocessing"):
        Verifier.from_checkpoint(run)


def test_several_unreadable_images_are_counted(verifier, images, tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ImageError, match=r"2 of 3 images could not be read; first: .*a\.png"):
        verifier.embed([tmp_path / "a.png", images[0], tmp_path / "b.png"])

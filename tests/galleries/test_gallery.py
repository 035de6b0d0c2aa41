"""Gallery files (round trip, validation, model fingerprint) and verifying claims against them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from siamese.errors import CheckpointError, ConfigError, DataError
from siamese.evaluation.fusion import LinearScorer, fused_distances
from siamese.galleries import Gallery, verify_against_references, verify_claim
from siamese.galleries.enroll import enroll
from siamese.galleries.gallery import GALLERY_FILE
from siamese.inference.verifier import Verifier
from siamese.models.checkpoint import load_checkpoint, model_fingerprint, read_metadata, save_checkpoint
from tests.inference.test_evaluate import naive_embed


def _toy_gallery() -> Gallery:
    rng = np.random.default_rng(0)
    refs = (rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(3, 3)).astype(np.float32))
    scorers = (LinearScorer(np.array([1.0, 0.0, -1.0]), 0.25), LinearScorer(np.array([0.5, 2.0, 0.0]), -1.0))
    return Gallery(
        model="/models/run/checkpoints/best",
        fingerprint="sha256:" + "0" * 64,
        distance="cosine",
        identities=("alice", "bob"),
        files=(("a1.png", "a2.png"), ("b1.png", "b2.png", "b3.png")),
        references=refs,
        fusions=("mean", "svm"),
        thresholds={
            "mean": {"2": {"threshold": 0.4, "eer": 0.1}, "3": {"threshold": 0.35, "eer": 0.05}},
            "svm": {"2": {"threshold": -0.2, "eer": 0.1, "calibration": {"coef": -3.0, "intercept": 0.5}}},
        },
        scorers=scorers,
        info={"seed": 3, "max_references": None},
    )


def _arrays_file(root: Path) -> Path:
    return root / json.loads((root / GALLERY_FILE).read_text())["arrays"]


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    g = _toy_gallery()
    g.save(tmp_path / "g")
    arrays = _arrays_file(tmp_path / "g")
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == sorted([GALLERY_FILE, arrays.name])
    assert arrays.name.startswith("gallery-") and arrays.suffix == ".safetensors"
    back = Gallery.load(tmp_path / "g")
    for name in ("model", "fingerprint", "distance", "identities", "files", "fusions", "thresholds", "info"):
        assert getattr(back, name) == getattr(g, name), name
    for a, b in zip(back.references, g.references, strict=True):
        assert a.dtype == np.float32 and np.array_equal(a, b)
    assert back.scorers is not None
    for a, b in zip(back.scorers, g.scorers or (), strict=True):
        assert np.array_equal(a.weights, b.weights) and a.bias == b.bias
    q = np.ones((1, 3))
    assert back.distances(q, "bob", "svm") == pytest.approx([-(0.5 + 2.0 - 1.0)])
    assert back.distances(q, "alice", "mean") == pytest.approx(
        fused_distances(q, g.references[0], "mean", "cosine")
    )


def test_threshold_of_the_nearest_calibrated_count() -> None:
    g = _toy_gallery()
    assert g.calibrated("mean", 3) == (3, {"threshold": 0.35, "eer": 0.05})
    assert g.calibrated("mean", 10)[0] == 3  # the largest calibrated count below
    assert g.calibrated("mean", 1)[0] == 2  # none below: the smallest one
    with pytest.raises(ConfigError, match="built for mean, svm fusion, not min"):
        g.check_fusion("min")
    with pytest.raises(DataError, match="'carol' is not enrolled"):
        g.position("carol")


def test_default_fusion_is_the_lowest_calibration_eer_at_that_count() -> None:
    g = _toy_gallery()  # R=2: mean 0.10 = svm 0.10 (tie: the first built); R=3: mean 0.05, svm (R=2) 0.10
    assert g.default_fusion(2) == "mean" and g.default_fusion(3) == "mean"
    g.thresholds["svm"]["3"] = {"threshold": -0.1, "eer": 0.01}
    assert g.default_fusion(3) == "svm" and g.default_fusion(2) == "mean"
    g.thresholds["svm"]["2"]["eer"] = float("nan")  # an undefined EER never wins
    g.thresholds["mean"]["2"]["eer"] = 0.3
    assert g.default_fusion(2) == "mean"
    for per in g.thresholds.values():  # galleries that stored no EER: mean, as before
        for entry in per.values():
            entry.pop("eer")
    assert g.default_fusion(3) == "mean"


def test_damaged_galleries_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="siamese enroll"):
        Gallery.load(tmp_path / "missing")
    g = _toy_gallery()
    g.save(tmp_path / "g")
    meta = json.loads((tmp_path / "g" / GALLERY_FILE).read_text())
    meta["identities"][0]["references"].append("a3.png")  # 6 listed, 5 stored
    (tmp_path / "g" / GALLERY_FILE).write_text(json.dumps(meta))
    with pytest.raises(DataError, match="lists 6 references"):
        Gallery.load(tmp_path / "g")
    (tmp_path / "g" / GALLERY_FILE).write_text('{"format": "something else"}')
    with pytest.raises(DataError, match="not a siamese gallery"):
        Gallery.load(tmp_path / "g")
    g.save(tmp_path / "g")
    _arrays_file(tmp_path / "g").write_bytes(b"not safetensors")
    with pytest.raises(DataError, match="unreadable gallery arrays"):
        Gallery.load(tmp_path / "g")


def test_fingerprint_tells_models_apart(tiny_run, tmp_path: Path) -> None:
    run, _ = tiny_run
    stem = run / "checkpoints" / "best"
    meta = read_metadata(stem)
    assert model_fingerprint(stem, meta) == model_fingerprint(stem, {**meta, "threshold": 123.0})
    assert model_fingerprint(stem, meta) != model_fingerprint(stem, {**meta, "distance": "cosine"})
    model, meta = load_checkpoint(run)
    with torch.no_grad():
        next(iter(model.encoder.parameters())).add_(0.01)
    other = save_checkpoint(
        tmp_path / "other", model, {k: v for k, v in meta.items() if k not in ("format", "version")}
    )
    assert model_fingerprint(other, meta) != model_fingerprint(stem, meta)


@pytest.fixture(scope="module")
def gallery(tiny_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Gallery, Path]:
    run, data = tiny_run
    out = tmp_path_factory.mktemp("gallery") / "g"
    return enroll(run, data, out, references=3), out


def test_verify_claim_against_a_computation_by_hand(tiny_run, gallery) -> None:
    run, data = tiny_run
    g, out = gallery
    verifier = Verifier.from_checkpoint(run)
    k = 3
    name = g.identities[k]
    query = next(str(p) for p in sorted((data / name).glob("*.png")) if str(p) not in g.files[k])
    refs = naive_embed(run, list(g.files[k]))
    q = naive_embed(run, [query])
    for fusion in ("mean", "min", "template", "adaptive", "svm"):
        result = verify_claim(verifier, Gallery.load(out), query, name, fusion, source=out)
        expected = fused_distances(q, refs, fusion, "euclidean", g.scorers[k] if fusion == "svm" else None)[0]
        assert result.distance == pytest.approx(expected, abs=1e-4)
        assert result.threshold == g.thresholds[fusion]["3"]["threshold"]
        assert result.same == (result.distance <= result.threshold)
        assert (result.references, result.calibrated_references, result.gallery) == (3, 3, str(out))
        assert 0.0 <= result.confidence <= 1.0
    default = verify_claim(verifier, g, query, name)
    best = min(g.fusions, key=lambda f: g.thresholds[f]["3"]["eer"])
    assert default.fusion == best == g.default_fusion(3)
    impostor = verify_claim(verifier, g, query, g.identities[0], "mean", threshold=-1.0)
    assert impostor.same is False and impostor.threshold == -1.0
    assert set(impostor.to_dict()) == {
        "same", "distance", "threshold", "confidence", "model", "seconds",
        "claim", "fusion", "references", "calibrated_references", "gallery",
    }  # fmt: skip


def test_another_model_is_refused(tiny_run, gallery, tmp_path: Path) -> None:
    run, data = tiny_run
    g, _ = gallery
    model, meta = load_checkpoint(run)
    with torch.no_grad():
        next(iter(model.encoder.parameters())).mul_(1.5)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    save_checkpoint(
        copy / "checkpoints" / "best",
        model,
        {k: v for k, v in meta.items() if k not in ("format", "version")},
    )
    query = str(next((data / g.identities[0]).glob("*.png")))
    with pytest.raises(CheckpointError, match="enrol again"):
        verify_claim(Verifier.from_checkpoint(copy), g, query, g.identities[0])


def test_ad_hoc_references_use_the_model_threshold(tiny_run) -> None:
    run, data = tiny_run
    verifier = Verifier.from_checkpoint(run)
    files = [str(p) for p in sorted((data / "id01").glob("*.png"))]
    result = verify_against_references(verifier, files[0], files[1:], "min", claim="id01")
    refs, q = naive_embed(run, files[1:]), naive_embed(run, files[:1])
    assert result.distance == pytest.approx(np.linalg.norm(refs - q, axis=1).min(), abs=1e-4)
    assert result.threshold == verifier.threshold and result.calibrated_references == 1
    assert result.confidence is None and result.references == 4 and result.gallery is None
    single = verify_against_references(verifier, files[0], files[1:2])
    assert single.confidence == pytest.approx(verifier.verify(files[0], files[1]).confidence)
    with pytest.raises(ConfigError, match="gallery"):
        verify_against_references(verifier, files[0], files[1:], "svm")


def test_an_unreachable_threshold_round_trips(tmp_path: Path) -> None:
    g = _toy_gallery()
    g.thresholds["mean"]["2"]["threshold"] = float("-inf")  # a "far" target the calibration could not meet
    g.save(tmp_path / "g")
    back = Gallery.load(tmp_path / "g")
    assert back.calibrated("mean", 2)[1]["threshold"] == float("-inf")

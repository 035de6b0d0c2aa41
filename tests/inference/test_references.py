"""Enrolment and `evaluate --references` pipelines on the session's tiny run: thresholds come from the
calibration identities only, never from the enrolled or evaluated ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.svm import SVC

from siamese.data import Split
from siamese.errors import ConfigError, DataError
from siamese.evaluation.references import calibrate_references
from siamese.galleries import Gallery
from siamese.galleries.enroll import enroll
from siamese.inference.evaluate import evaluate
from siamese.inference.references import calibration_index
from tests.conftest import write_identity_folder
from tests.inference.test_evaluate import naive_embed, write_noise_folder


def _split(run: Path) -> Split:
    return Split.from_json(run / "split.json")


def _copy_identities(data: Path, names: tuple[str, ...], out: Path) -> Path:
    for name in names:
        shutil.copytree(data / name, out / name)
    return out


def _thresholds(gallery: Gallery) -> dict:
    return {f: {c: e["threshold"] for c, e in per.items()} for f, per in gallery.thresholds.items()}


def test_enrolled_identities_never_move_the_thresholds(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    split = _split(run)
    enrolled = _copy_identities(data, split.test, tmp_path / "a")
    g1 = enroll(run, enrolled, tmp_path / "g1", references=2)
    # the same identity names with entirely different images (and more identities)
    other = write_identity_folder(tmp_path / "b", n_identities=5, n_images=4, seed=99)
    g2 = enroll(run, other, tmp_path / "g2", references=2)
    assert g1.identities != g2.identities
    assert _thresholds(g1) == _thresholds(g2)
    assert set(g1.info["calibration"]["identities"]) == set(split.val)
    assert not set(g1.info["calibration"]["identities"]) & set(g1.identities)
    # the control: other calibration identities do move them
    g3 = enroll(
        run, enrolled, tmp_path / "g3", references=2, calibration=write_noise_folder(tmp_path / "cal")
    )
    assert _thresholds(g3) != _thresholds(g1)


def test_thresholds_equal_a_calibration_computed_by_hand(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    split = _split(run)
    gallery = enroll(run, _copy_identities(data, split.test, tmp_path / "d"), tmp_path / "g", references=3)
    paths = [str(p) for name in split.val for p in sorted((data / name).glob("*.png"))]
    labels = [Path(p).parent.name for p in paths]
    expected = calibrate_references(naive_embed(run, paths), labels, [3], seed=0)
    for fusion in ("mean", "min", "template", "adaptive", "svm"):
        assert gallery.thresholds[fusion]["3"]["threshold"] == pytest.approx(
            expected[fusion]["3"]["threshold"], abs=1e-5
        )


def test_gallery_svm_is_a_direct_scikit_learn_fit(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    gallery = enroll(run, data, tmp_path / "g", references=3, fusions=["svm", "mean"], seed=5)
    assert gallery.fusions == ("mean", "svm")
    refs = [naive_embed(run, list(files)) for files in gallery.files]
    for k, own in enumerate(refs):
        neg = np.vstack([r for j, r in enumerate(refs) if j != k])
        svm = SVC(kernel="linear", C=1.0, class_weight="balanced")
        svm.fit(np.vstack([own, neg]), np.r_[np.ones(len(own)), np.zeros(len(neg))])
        assert gallery.scorers is not None
        assert gallery.scorers[k].weights == pytest.approx(svm.coef_[0], abs=1e-3)
        assert gallery.scorers[k].bias == pytest.approx(svm.intercept_[0], abs=1e-3)
    # references: 3 per identity, each the identity's own image, recorded by file
    assert all(
        len(f) == 3 and {Path(p).parent.name for p in f} == {n}
        for f, n in zip(gallery.files, gallery.identities, strict=True)
    )
    again = enroll(run, data, tmp_path / "g2", references=3, fusions=["mean"], seed=5)
    assert again.files == gallery.files
    assert enroll(run, data, tmp_path / "g3", references=3, fusions=["mean"], seed=6).files != gallery.files


def test_evaluated_identities_never_move_the_thresholds(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    first = evaluate(run, data, references=[1, 2], fusions=["mean", "svm"], seed=3)
    # the test identities' images replaced by others: the calibration (the run's own validation
    # identities, read from its config.json data root) is untouched
    changed = tmp_path / "data"
    shutil.copytree(data, changed)
    for name in _split(run).test:
        shutil.rmtree(changed / name)
    write_identity_folder(tmp_path / "new", n_identities=8, n_images=5, seed=42)
    for name in _split(run).test:
        shutil.copytree(tmp_path / "new" / name, changed / name)
    second = evaluate(run, changed, references=[1, 2], fusions=["mean", "svm"], seed=3)
    for count in ("1", "2"):
        for fusion in ("mean", "svm"):
            a, b = (r["references"]["counts"][count]["fusion"][fusion] for r in (first, second))
            assert a["threshold"] == b["threshold"] is not None
    part = first["references"]["counts"]["2"]
    assert part["n_identities"] == 2 and part["n_queries"] == 6  # 2 test identities x (5 - 2)
    assert sorted(part["references"]) == sorted(_split(run).test)
    assert all(len(files) == 2 for files in part["references"].values())
    cal = first["references"]["calibration"]
    assert set(cal["identities"]) == set(_split(run).val) and cal["rule"] == "eer"
    mean = part["fusion"]["mean"]["random"]
    assert mean["n_genuine"] == 6 and mean["n_impostor"] == 6 and "accuracy" in mean


def test_evaluate_references_with_forgeries_and_json_report(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    forged = write_identity_folder(tmp_path / "forged", n_identities=8, n_images=2, seed=7)
    report = evaluate(run, data, references=[2], forgeries=forged, out_dir=tmp_path / "out", fusions=["min"])
    part = report["references"]["counts"]["2"]["fusion"]["min"]
    assert part["skilled"]["n_impostor"] == 4 and part["random"]["n_impostor"] == 6  # 2 ids x 2 forgeries
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json"]


def test_calibration_on_the_evaluated_identities_is_refused(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    report = evaluate(run, data, split="val", references=[1], fusions=["mean"])
    assert "shares images" in report["references"]["calibration"]["error"]
    assert report["references"]["counts"]["1"]["fusion"]["mean"]["threshold"] is None


def test_a_run_without_a_split_needs_a_calibration_folder(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    bare = tmp_path / "run"
    shutil.copytree(run, bare)
    (bare / "split.json").unlink()
    with pytest.raises(ConfigError, match="--calibration DIR"):
        enroll(bare, data, tmp_path / "g")
    index, info = calibration_index(bare, write_noise_folder(tmp_path / "cal"))
    assert info["source"] == "folder" and len(index.identities) == 6
    config = json.loads((bare / "config.json").read_text())
    config["data"]["root"] = str(tmp_path / "gone")
    (bare / "config.json").write_text(json.dumps(config))
    shutil.copy(run / "split.json", bare / "split.json")
    with pytest.raises(ConfigError, match="not available"):
        calibration_index(bare)


def test_a_calibration_set_of_single_images_is_an_error(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    singles = write_identity_folder(tmp_path / "cal", n_identities=3, n_images=1)
    with pytest.raises(DataError, match="two or more images"):
        enroll(run, data, tmp_path / "g", calibration=singles)


def test_bad_options(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    with pytest.raises(ConfigError, match="unknown fusion"):
        enroll(run, data, tmp_path / "g", fusions=["median"])
    with pytest.raises(ConfigError, match="references"):
        enroll(run, data, tmp_path / "g", references=0)
    with pytest.raises(ConfigError, match="no kfold"):
        evaluate(run, data, references=[1], protocol="kfold")
    with pytest.raises(ConfigError, match="integers >= 1"):
        evaluate(run, data, references=[0])

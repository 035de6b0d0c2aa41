"""`siamese enroll`, `siamese verify --gallery/--claim-references` and `siamese evaluate --references`
through Typer's CliRunner on the session's tiny trained run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from siamese.cli.app import app
from siamese.data import Split
from siamese.galleries import Gallery, verify_claim
from siamese.inference import Verifier
from tests.conftest import face_on_canvas, lfw_photo

runner = CliRunner(env={"COLUMNS": "250"})


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def enrolled(tiny_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, str]:
    """(run, data of the run's test identities, gallery, enrol's output): every image a reference."""
    run, data = tiny_run
    base = tmp_path_factory.mktemp("enrol")
    for name in Split.from_json(run / "split.json").test:
        shutil.copytree(data / name, base / "data" / name)
    out = base / "gallery"
    result = _ok(runner.invoke(app, ["enroll", str(base / "data"), "--model", str(run), "--out", str(out)]))
    return run, base / "data", out, result.stdout


def test_enroll_table_and_files(enrolled) -> None:
    run, data, out, stdout = enrolled
    names = sorted(p.name for p in out.iterdir())
    assert (
        len(names) == 2
        and names[1] == "gallery.json"
        and re.fullmatch(r"gallery-[0-9a-f]{8}\.safetensors", names[0])
    )
    assert "identification" in stdout and "FPIR 0.01" in stdout and "exact" in stdout
    assert "2 (5-5 references each)" in stdout and "run validation identities" in stdout
    for fusion in ("mean", "min", "template", "adaptive", "svm"):
        assert f"{fusion}, R=4" in stdout  # 5 references; the 5-image validation identities calibrate 4
    g = Gallery.load(out)
    assert g.model == str((run / "checkpoints" / "best").absolute())
    assert all(len(f) == 5 for f in g.files) and set(g.thresholds["svm"]) == {"4"}


def test_enroll_json_caps_references_and_fusions(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    args = ["enroll", str(data), "--model", str(run), "--out", str(tmp_path / "g"), "--max-references", "2"]
    result = _ok(
        runner.invoke(app, [*args, "--fusion", "min", "--fusion", "template", "--json", "--seed", "1"])
    )
    summary = json.loads(result.stdout)
    assert summary["identities"] == 8 and summary["references"] == {"min": 2, "max": 2, "total": 16}
    assert summary["fusions"] == ["min", "template"] and set(summary["thresholds"]["min"]) == {"2"}
    assert json.loads((tmp_path / "g" / "gallery.json").read_text())["seed"] == 1


def test_verify_claim_json_and_human(enrolled) -> None:
    _, data, out, _ = enrolled
    g = Gallery.load(out)
    query = str(sorted((data / g.identities[0]).glob("*.png"))[0])
    args = ["verify", query, "--gallery", str(out), "--claim", g.identities[0]]
    doc = json.loads(_ok(runner.invoke(app, [*args, "--json"])).stdout)
    assert doc["claim"] == g.identities[0] and doc["fusion"] == "mean" and doc["references"] == 5
    assert doc["calibrated_references"] == 4 and doc["gallery"] == str(out)
    assert doc["same"] == (doc["distance"] <= doc["threshold"]) and doc["same"] is True
    assert doc["threshold"] == g.thresholds["mean"]["4"]["threshold"]
    text = _ok(runner.invoke(app, [*args, "--fusion", "svm"])).stdout
    assert text.startswith("same  distance -") and "claim" in text and "svm of 5 references" in text
    assert "(threshold calibrated for 4)" in text
    other = json.loads(_ok(runner.invoke(app, [*args[:-1], g.identities[1], "--json"])).stdout)
    assert other["same"] is False and other["distance"] > doc["distance"]


def test_verify_claim_references_folder(enrolled) -> None:
    run, data, _, _ = enrolled
    name = sorted(p.name for p in data.iterdir())[0]
    query = str(sorted((data / name).glob("*.png"))[0])
    args = ["verify", query, "--claim-references", str(data / name), "--model", str(run)]
    doc = json.loads(_ok(runner.invoke(app, [*args, "--fusion", "min", "--json"])).stdout)
    assert doc["references"] == 5 and doc["calibrated_references"] == 1 and doc["claim"] == name
    assert doc["distance"] == pytest.approx(0.0, abs=1e-6)  # the query is one of the references
    text = _ok(runner.invoke(app, args)).stdout
    assert f"claim {name}: mean of 5 references (threshold calibrated for 1)" in text


def test_verify_claim_errors_are_one_line(enrolled) -> None:
    run, data, out, _ = enrolled
    query = str(next(data.glob("*/*.png")))
    base = ["verify", query, "--gallery", str(out)]
    assert "not enrolled" in _one_line_error(runner.invoke(app, [*base, "--claim", "nobody"]))
    assert "--claim ID" in _one_line_error(runner.invoke(app, base))
    assert "drop the second" in _one_line_error(
        runner.invoke(app, [*base[:2], query, *base[2:], "--claim", "x"])
    )
    assert "second image" in _one_line_error(runner.invoke(app, ["verify", query, "--model", str(run)]))
    assert "siamese enroll" in _one_line_error(
        runner.invoke(app, [*base[:2], "--gallery", str(data), "--claim", "x"])
    )
    bad = runner.invoke(app, [*base, "--claim", "x", "--fusion", "median"])
    assert bad.exit_code == 2 and "median" in bad.output


def test_verify_claim_refuses_another_model(enrolled, tmp_path: Path) -> None:
    run, data, out, _ = enrolled
    from siamese.galleries.gallery import GALLERY_FILE

    meta = json.loads((out / GALLERY_FILE).read_text())
    meta["model"]["fingerprint"] = "sha256:" + "1" * 64
    shutil.copytree(out, tmp_path / "g")
    (tmp_path / "g" / GALLERY_FILE).write_text(json.dumps(meta))
    query = str(next(data.glob("*/*.png")))
    args = ["verify", query, "--gallery", str(tmp_path / "g"), "--claim", meta["identities"][0]["name"]]
    assert "enrol again" in _one_line_error(runner.invoke(app, [*args, "--model", str(run)]))


def test_enroll_without_a_recorded_split_asks_for_calibration(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    shutil.copytree(run, tmp_path / "run")
    (tmp_path / "run" / "split.json").unlink()
    args = ["enroll", str(data), "--model", str(tmp_path / "run"), "--out", str(tmp_path / "g")]
    assert "--calibration DIR" in _one_line_error(runner.invoke(app, args))
    _ok(runner.invoke(app, [*args, "--calibration", str(data), "--fusion", "mean"]))


def test_evaluate_references_table_and_json(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    args = ["evaluate", str(data), "--model", str(run), "--references", "1,2", "--references", "3"]
    text = _ok(
        runner.invoke(app, [*args, "--fusion", "mean", "--fusion", "svm", "--out", str(tmp_path / "e")])
    ).stdout
    assert "verification with R references per identity" in text and "thresholds calibrated on" in text
    assert "R=3" in text and "2 identities, 4 query images" in text
    rows = [line for line in text.splitlines() if " random " in line]
    assert len(rows) == 6  # 3 counts x 2 fusion rules
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert set(report["references"]["counts"]) == {"1", "2", "3"} and report["references"]["fusions"] == [
        "mean",
        "svm",
    ]
    doc = json.loads(
        _ok(runner.invoke(app, [*args, "--json", "--seed", "2", "--out", str(tmp_path / "j")])).stdout
    )
    assert doc["references"]["seed"] == 2 and doc["references"]["fusions"] == [
        "mean",
        "min",
        "template",
        "adaptive",
        "svm",
    ]
    shutil.copytree(run, tmp_path / "run")
    _ok(runner.invoke(app, ["evaluate", str(data), "--model", str(tmp_path / "run"), "--references", "1"]))
    assert (tmp_path / "run" / "eval-test-references" / "report.json").is_file()


def test_evaluate_references_flag_errors(tiny_run) -> None:
    run, data = tiny_run
    base = ["evaluate", str(data), "--model", str(run)]
    assert "only apply with --references" in _one_line_error(runner.invoke(app, [*base, "--fusion", "mean"]))
    line = _one_line_error(runner.invoke(app, [*base, "--references", "2", "--num-pairs", "10"]))
    assert "--references" in line
    assert "integers" in _one_line_error(runner.invoke(app, [*base, "--references", "1,x"]))
    assert ">= 1" in _one_line_error(runner.invoke(app, [*base, "--references", "0"]))
    assert "unknown fusion" in _one_line_error(
        runner.invoke(app, [*base, "--references", "1", "--fusion", "max"])
    )


def test_verify_claim_does_not_import_heavy_libraries(enrolled) -> None:
    _, data, out, _ = enrolled
    name = sorted(p.name for p in data.iterdir())[0]
    query = str(next((data / name).glob("*.png")))
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom siamese.cli.app import app\n"
        f"args = ['verify', {query!r}, '--gallery', {str(out)!r}, '--claim', {name!r}, '--fusion', 'svm']\n"
        "r = CliRunner().invoke(app, args)\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = ('torchvision', 'pytorch_metric_learning', 'sklearn', 'matplotlib')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, f'verify imported {heavy}'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_enroll_help_does_not_import_torch() -> None:
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom siamese.cli.app import app\n"
        "r = CliRunner().invoke(app, ['enroll', '--help'])\n"
        "assert r.exit_code == 0 and '--calibration' in r.output, r.output\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def lfw_people(lfw: Path, base: Path) -> tuple[Path, Path]:
    """(enrolment folder: 2 LFW people x 3 photos, calibration folder: 4 other people x 4 photos)."""
    for folder, people, count in (
        ("enrol", ("Colin_Powell", "Tony_Blair"), 3),
        ("calibration", ("George_W_Bush", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon"), 4),
    ):
        for person in people:
            (base / folder / person).mkdir(parents=True)
            for k in range(1, count + 1):
                shutil.copy(lfw_photo(lfw, person, k), base / folder / person)
    return base / "enrol", base / "calibration"


def test_enroll_detect_is_recorded_and_claims_are_verified_on_faces(tiny_run, lfw, tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    enrol, calibration = lfw_people(lfw, tmp_path)
    args = ["enroll", str(enrol), "--model", str(tiny_run[0]), "--calibration", str(calibration)]
    _ok(runner.invoke(app, [*args, "--out", str(tmp_path / "faces"), "--detect"]))
    _ok(runner.invoke(app, [*args, "--out", str(tmp_path / "whole")]))
    faces, whole = Gallery.load(tmp_path / "faces"), Gallery.load(tmp_path / "whole")
    assert faces.info["detect"] is True and whole.info["detect"] is False
    assert not np.allclose(faces.references[0], whole.references[0], atol=1e-4)  # crops, not photos
    query = face_on_canvas(lfw_photo(lfw, "Colin_Powell", 4), (200, 100))
    query.save(tmp_path / "query.png")
    claim = ["verify", str(tmp_path / "query.png"), "--claim", "Colin_Powell", "--json"]
    doc = json.loads(
        _ok(runner.invoke(app, [*claim, "--gallery", str(tmp_path / "faces"), "--detect"])).stdout
    )
    verifier = Verifier.from_checkpoint(tiny_run[0], detect=True)
    want = verify_claim(verifier, faces, tmp_path / "query.png", "Colin_Powell")
    assert doc["distance"] == pytest.approx(want.distance, abs=1e-6)
    Image.new("RGB", (320, 240), (255, 255, 255)).save(tmp_path / "blank.png")
    blank = [
        "verify",
        str(tmp_path / "blank.png"),
        "--gallery",
        str(tmp_path / "faces"),
        "--claim",
        "Tony_Blair",
    ]
    assert "no face found in" in _one_line_error(runner.invoke(app, [*blank, "--detect"]))

import json
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from siamese.cli.app import app
from siamese.inference import Verifier
from tests.conftest import face_on_canvas, lfw_photo

runner = CliRunner(env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def images(tiny_run):
    return sorted(str(p) for p in tiny_run[1].glob("*/*.png"))


def _json(result):
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_verify_json_keys_types_and_values(tiny_run, images):
    run = tiny_run[0]
    out = _json(runner.invoke(app, ["verify", images[0], images[-1], "--model", str(run), "--json"]))
    assert set(out) == {"same", "distance", "threshold", "confidence", "model", "seconds"}
    assert isinstance(out["same"], bool) and isinstance(out["model"], str)
    assert all(isinstance(out[k], float) for k in ("distance", "threshold", "confidence", "seconds"))
    expected = Verifier.from_checkpoint(run).verify(images[0], images[-1])
    assert out["distance"] == pytest.approx(expected.distance, abs=1e-6)
    assert out["threshold"] == expected.threshold and out["same"] == (out["distance"] <= out["threshold"])
    assert out["confidence"] == pytest.approx(expected.confidence, abs=1e-6)
    assert out["model"] == str(run / "checkpoints" / "best")


def test_threshold_override_changes_the_decision(tiny_run, images):
    args = ["verify", images[0], images[-1], "--model", str(tiny_run[0]), "--json"]
    distance = _json(runner.invoke(app, args))["distance"]
    above = _json(runner.invoke(app, [*args, "--threshold", str(distance * 1.01)]))
    below = _json(runner.invoke(app, [*args, "--threshold", str(distance * 0.99)]))
    assert above["same"] is True and below["same"] is False
    assert below["threshold"] == pytest.approx(distance * 0.99)


def test_human_output_same_image(tiny_run, images):
    result = runner.invoke(app, ["verify", images[0], images[0], "--model", str(tiny_run[0])])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("same  distance 0.0000 <= threshold") and "confidence" in result.stdout
    result = runner.invoke(
        app, ["verify", images[0], images[-1], "--model", str(tiny_run[0]), "--threshold", "0"]
    )
    assert result.stdout.startswith("different  distance") and "> threshold 0.0000" in result.stdout


def test_latest_run_is_used_and_named(tiny_run, images, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_run[0], tmp_path / "runs" / "old")
    shutil.copytree(tiny_run[0], tmp_path / "runs" / "new")
    os.utime(tmp_path / "runs" / "old" / "checkpoints" / "best.json", (1000, 1000))
    result = runner.invoke(app, ["verify", images[0], images[1]])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"using the most recent run: {os.path.join('runs', 'new')}"
    out = _json(runner.invoke(app, ["verify", images[0], images[1], "--json"]))
    assert out["model"] == os.path.join("runs", "new", "checkpoints", "best")


def _one_line_error(result):
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


def test_no_runs_is_one_line_error(images, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _one_line_error(runner.invoke(app, ["verify", images[0], images[1], "--json"]))
    assert "no trained model found under runs/" in line


def test_missing_model_is_one_line_error(images, tmp_path):
    line = _one_line_error(
        runner.invoke(app, ["verify", images[0], images[1], "--model", str(tmp_path / "nope")])
    )
    assert "model not found" in line


def test_corrupt_image_is_one_line_error(tiny_run, images, tmp_path):
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    line = _one_line_error(runner.invoke(app, ["verify", images[0], str(bad), "--model", str(tiny_run[0])]))
    assert str(bad) in line


def test_verify_does_not_import_heavy_libraries(tiny_run, images):
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom siamese.cli.app import app\n"
        f"args = ['verify', {images[0]!r}, {images[1]!r}, '--model', {str(tiny_run[0])!r}]\n"
        "r = CliRunner().invoke(app, args)\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = ('torchvision', 'pytorch_metric_learning', 'sklearn', 'matplotlib', 'cv2')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, f'verify imported {heavy}'\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_of_inference_commands_does_not_import_torch():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom siamese.cli.app import app\n"
        "for cmd in ('verify', 'embed', 'export'):\n"
        "    r = CliRunner().invoke(app, [cmd, '--help'])\n"
        "    assert r.exit_code == 0, r.output\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_detect_verifies_the_faces_and_refuses_a_photo_without_one(tiny_run, lfw, tmp_path):
    pytest.importorskip("cv2")
    run = str(tiny_run[0])
    near = tmp_path / "near.png"
    far = tmp_path / "far.png"
    blank = tmp_path / "blank.png"
    face_on_canvas(lfw_photo(lfw, "Aaron_Eckhart"), (300, 150)).save(near)
    face_on_canvas(lfw_photo(lfw, "Abba_Eban"), (20, 210), size=(500, 500)).save(far)
    Image.new("RGB", (320, 240), (255, 255, 255)).save(blank)
    args = ["verify", str(near), str(far), "--model", run, "--json"]
    out = _json(runner.invoke(app, [*args, "--detect"]))
    expected = Verifier.from_checkpoint(run, detect=True).verify(near, far)
    assert out["distance"] == pytest.approx(expected.distance, abs=1e-6)
    whole = _json(runner.invoke(app, args))
    assert whole["distance"] != pytest.approx(out["distance"], abs=1e-4)  # --detect changes what is compared
    _json(runner.invoke(app, ["verify", str(near), str(blank), "--model", run, "--json"]))  # fine without
    line = _one_line_error(runner.invoke(app, ["verify", str(near), str(blank), "--model", run, "--detect"]))
    assert line.endswith(f"no face found in {blank}")

"""Every command meets bad input with one line on stderr, exit code 1 and no traceback."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from siamese.cli.app import app
from tests.conftest import write_identity_folder

runner = CliRunner(env={"COLUMNS": "300"})


def _one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """A zoo of bad inputs."""
    root = tmp_path_factory.mktemp("bad")
    (root / "empty").mkdir()
    (root / "flat").mkdir()
    Image.new("L", (8, 8)).save(root / "flat" / "a.png")
    write_identity_folder(root / "one", n_identities=1, n_images=3)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 30), dtype=np.uint8)).save(root / "good.png")
    (root / "zero.png").write_bytes(b"")
    (root / "text.png").write_text("not an image")
    data = (root / "good.png").read_bytes()
    (root / "trunc.png").write_bytes(data[: len(data) // 2])
    write_identity_folder(root / "forged", n_identities=2, n_images=2, prefix="nobody")
    return root


@pytest.fixture
def run(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run[0], run_dir)
    return run_dir


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "{bad}/missing"], "not found"),
        (["train", "{bad}/good.png"], "got a file"),
        (["train", "{bad}/empty"], "no sub-folders containing images"),
        (["train", "{bad}/flat"], "holds 1 images directly but no identity sub-folders"),
        (["train", "{bad}/one"], "need at least 2"),
        (["embed", "{bad}/empty", "--model", "{run}", "--out", "{tmp}/e.npy"], "no images found"),
        (["embed", "{bad}/missing", "--model", "{run}", "--out", "{tmp}/e.npy"], "missing"),
        (["evaluate", "{bad}/missing", "--model", "{run}"], "missing"),
        (["evaluate", "{bad}/empty", "--model", "{run}"], "no sub-folders containing images"),
        (["verify", "{bad}/missing.png", "{bad}/good.png", "--model", "{run}"], "missing.png"),
    ],
)
def test_bad_paths(bad, run, tmp_path, argv, fragment):
    argv = [a.format(bad=bad, run=run, tmp=tmp_path) for a in argv]
    _one_line_error(runner.invoke(app, argv), fragment)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("zero.png", "empty file"),
        ("text.png", "not a recognised image"),
        ("trunc.png", "corrupt or truncated"),
    ],
)
def test_verify_unreadable_image(bad, run, name, reason):
    _one_line_error(
        runner.invoke(app, ["verify", str(bad / "good.png"), str(bad / name), "--model", str(run)]),
        name,
        reason,
    )


@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16", "CMYK", "1"])
def test_verify_accepts_unusual_modes_and_tiny_images(bad, run, tmp_path, mode):
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 20), dtype=np.uint8))
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    (img.convert("I").convert(mode) if mode == "I;16" else img.convert(mode)).save(path)
    Image.new("L", (1, 1)).save(tmp_path / "tiny.png")
    result = runner.invoke(
        app, ["verify", str(path), str(tmp_path / "tiny.png"), "--model", str(run), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) >= {"same", "distance", "threshold", "confidence"}


def test_train_skips_unreadable_images_with_one_warning_and_strict_fails(tmp_path, bad):
    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    shutil.copy(bad / "zero.png", data / "id00" / "zero.png")
    shutil.copy(bad / "text.png", data / "id01" / "text.png")
    common = [
        "train",
        str(data),
        "--preset",
        "digits",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--samples-per-epoch",
        "16",
        "--eval-pairs",
        "8",
        "--val-fraction",
        "0.25",
        "--test-fraction",
        "0.25",
        "--embedding-dim",
        "8",
    ]
    result = runner.invoke(app, [*common, "--out", str(tmp_path / "ok")])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("skipping 2 unreadable images") == 1 and "zero.png" in result.stderr
    line = _one_line_error(runner.invoke(app, [*common, "--out", str(tmp_path / "strict"), "--strict"]))
    assert "2 unreadable images (--strict)" in line


def test_unmatched_forgery_folders(tmp_path, bad):
    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    _one_line_error(runner.invoke(app, ["train", str(data), "--forgeries", str(bad / "forged")]), "forger")


@pytest.mark.parametrize("command", ["verify", "embed", "evaluate", "export"])
@pytest.mark.parametrize("damage", ["missing", "truncated", "wrong-channels", "garbage-json"])
def test_damaged_model_directory(bad, run, tmp_path, command, damage):
    ckpt = run / "checkpoints"
    if damage == "missing":
        shutil.rmtree(ckpt)
    elif damage == "truncated":
        data = (ckpt / "best.safetensors").read_bytes()
        (ckpt / "best.safetensors").write_bytes(data[: len(data) // 3])
    elif damage == "wrong-channels":
        meta = json.loads((ckpt / "best.json").read_text())
        meta["encoder"]["in_channels"] = 3
        (ckpt / "best.json").write_text(json.dumps(meta))
    else:
        (ckpt / "best.json").write_text("{{{")
    argv = {
        "verify": ["verify", str(bad / "good.png"), str(bad / "good.png")],
        "embed": ["embed", str(run.parent), "--out", str(tmp_path / "e.npy")],
        "evaluate": ["evaluate", str(bad / "one")],
        "export": ["export", "--format", "torchscript", "--out", str(tmp_path / "m.pt")],
    }[command]
    _one_line_error(runner.invoke(app, [*argv, "--model", str(run)]))


def test_debug_flag_shows_the_traceback(bad):
    result = runner.invoke(app, ["--debug", "train", str(bad / "empty")])
    assert result.exit_code != 0 and result.exception is not None
    assert type(result.exception).__name__ == "DataError"

"""`--tta` of `siamese train`, `embed`, `verify` and `evaluate` on tiny generated faces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from siamese.cli.app import app
from siamese.data.images import open_image
from siamese.models.checkpoint import Preprocessing, load_checkpoint, resolve_checkpoint
from tests.conftest import write_identity_folder

runner = CliRunner(env={"COLUMNS": "250"})
TINY = ["--epochs", "1", "--batch-size", "8", "--m-per-class", "2", "--samples-per-epoch", "16"]
TINY += ["--eval-pairs", "8", "--val-fraction", "0.25", "--test-fraction", "0.25", "--embedding-dim", "8"]


@pytest.fixture(scope="module")
def face_run(tmp_path_factory):
    """A `face`-preset run trained with `--tta flip` (16x12 inputs) and its data folder."""
    base = tmp_path_factory.mktemp("tta")
    data = write_identity_folder(base / "ids", n_identities=8, n_images=4)
    args = ["train", str(data), "--preset", "face", "--loss", "arcface", "--tta", "flip", *TINY]
    args += ["--image-size", "16x12", "--encoder-arg", "grid=1", "--out", str(base / "run")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return base / "run", data


def _by_hand(run, paths, flip: bool) -> np.ndarray:
    """Embeddings computed here: the encoder on each image and, for flip, on its mirror too."""
    model, meta = load_checkpoint(run)
    pre = Preprocessing.from_metadata(meta, resolve_checkpoint(run))
    x = torch.stack([pre.transform()(open_image(p, pre.channels)) for p in paths])  # (N, C, H, W)
    with torch.no_grad():
        emb = model.encoder(x)
        if flip:
            emb = F.normalize((emb + model.encoder(x.flip(-1))) / 2, dim=1)
    return emb.numpy()


def _images(data):
    return sorted(str(p) for p in data.glob("*/*.png"))


def test_train_stores_tta_in_the_checkpoint(face_run):
    meta = json.loads((face_run[0] / "checkpoints" / "best.json").read_text())
    assert meta["tta"] == "flip" and meta["distance"] == "cosine"
    assert json.loads((face_run[0] / "config.json").read_text())["tta"] == "flip"


@pytest.mark.parametrize(
    ("extra", "flip"), [([], True), (["--tta", "none"], False), (["--tta", "flip"], True)]
)
def test_embed_uses_the_models_tta_unless_told(face_run, tmp_path, extra, flip):
    run, data = face_run
    out = tmp_path / "emb.npy"
    result = runner.invoke(app, ["embed", str(data), "--model", str(run), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    paths = [row.split(",")[0] for row in (tmp_path / "emb.npy.csv").read_text().splitlines()[1:]]
    np.testing.assert_allclose(np.load(out), _by_hand(run, paths, flip), atol=1e-5)


def test_verify_distance_with_and_without_tta(face_run):
    run, data = face_run
    a, b = _images(data)[0], _images(data)[-1]
    distances = {}
    for tta in ("flip", "none"):
        result = runner.invoke(app, ["verify", a, b, "--model", str(run), "--json", "--tta", tta])
        assert result.exit_code == 0, result.output
        distances[tta] = json.loads(result.stdout)["distance"]
        e = _by_hand(run, [a, b], flip=tta == "flip")
        assert distances[tta] == pytest.approx(
            1 - float(e[0] @ e[1]) / np.linalg.norm(e[0]) / np.linalg.norm(e[1]), abs=1e-5
        )
    default = runner.invoke(app, ["verify", a, b, "--model", str(run), "--json"])
    assert json.loads(default.stdout)["distance"] == pytest.approx(distances["flip"])
    assert distances["flip"] != pytest.approx(distances["none"], abs=1e-6)


def test_evaluate_reports_the_tta_it_used(face_run, tmp_path):
    run, data = face_run
    for extra, expected in (([], "flip"), (["--tta", "none"], "none")):
        args = ["evaluate", str(data), "--model", str(run), "--split", "all", "--num-pairs", "20", "--json"]
        result = runner.invoke(app, [*args, "--out", str(tmp_path / expected), *extra])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["tta"] == expected


def test_tta_flip_for_a_preset_without_flips_is_a_one_line_error(tiny_run, tmp_path):
    run, data = tiny_run  # the digits preset: no flips
    image = _images(data)[0]
    commands = [
        ["embed", str(data), "--model", str(run), "--out", str(tmp_path / "e.npy"), "--tta", "flip"],
        ["verify", image, image, "--model", str(run), "--tta", "flip"],
        ["evaluate", str(data), "--model", str(run), "--split", "all", "--tta", "flip"],
        ["train", str(data), "--preset", "digits", "--tta", "flip", *TINY, "--out", str(tmp_path / "r")],
    ]
    for args in commands:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "--tta flip needs a preset that trains with horizontal flips" in lines[0]
    assert not (tmp_path / "e.npy").exists() and not (tmp_path / "r").exists()

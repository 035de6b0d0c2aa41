import json
import logging

import numpy as np
import pytest
import torch

from siamese import names
from siamese.data import get_transform, preprocessing_spec
from siamese.errors import CheckpointError
from siamese.models import TwinNetwork, get_encoder
from siamese.models.checkpoint import Preprocessing, load_checkpoint, save_checkpoint


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TwinNetwork(get_encoder("smallcnn", in_channels=1, embedding_dim=16), distance="cosine")


def test_round_trip_preserves_outputs_and_metadata(tmp_path, model):
    save_checkpoint(tmp_path / "checkpoints" / "best", model, {"threshold": 0.4, "preset": "digits"})
    loaded, meta = load_checkpoint(tmp_path)
    x = torch.randn(3, 1, 32, 32)
    model.eval()
    assert torch.allclose(loaded.embed(x), model.embed(x), atol=1e-6)
    assert meta["threshold"] == 0.4 and meta["distance"] == "cosine" and loaded.distance == "cosine"
    assert not list(tmp_path.glob("checkpoints/*.tmp"))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="model not found"):
        load_checkpoint(tmp_path / "nothing")


def test_truncated_weights(tmp_path, model):
    stem = save_checkpoint(tmp_path / "best", model, {})
    data = stem.with_suffix(".safetensors").read_bytes()
    stem.with_suffix(".safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable or unsafe weights"):
        load_checkpoint(stem)


def test_corrupt_metadata(tmp_path, model):
    stem = save_checkpoint(tmp_path / "best", model, {})
    stem.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt checkpoint metadata"):
        load_checkpoint(stem)


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"encoder": {"name": "os.system", "in_channels": 1}}, "unknown encoder"),
        ({"distance": "manhattan"}, "unknown distance"),
        ({"threshold": "rm -rf"}, "non-numeric threshold"),
        ({"tta": "rotate"}, "unknown test-time augmentation 'rotate'"),
        ({"format": "pickle"}, "not a siamese checkpoint"),
    ],
)
def test_metadata_is_validated(tmp_path, model, patch, message):
    stem = save_checkpoint(tmp_path / "best", model, {})
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta.update(patch)
    stem.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(stem)


def test_weights_for_another_channel_count(tmp_path, model):
    stem = save_checkpoint(tmp_path / "best", model, {})
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta["encoder"]["in_channels"] = 3
    stem.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"smallcnn, 3 input channels\): size mismatch"):
        load_checkpoint(stem)


class _Evil:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_malicious_pickle_never_runs(tmp_path, model, suffix):
    import pickle

    stem = save_checkpoint(tmp_path / "best", model, {})
    stem.with_suffix(".safetensors").unlink()
    marker = tmp_path / "pwned"
    stem.with_suffix(suffix).write_bytes(pickle.dumps({"w": _Evil(str(marker))}))
    with pytest.raises(CheckpointError, match="unsafe|unreadable|corrupt"):
        load_checkpoint(stem)
    assert not marker.exists()


def test_pt_state_dict_loads_with_weights_only(tmp_path, model):
    stem = save_checkpoint(tmp_path / "best", model, {})
    torch.save(model.encoder.state_dict(), stem.with_suffix(".pt"))
    stem.with_suffix(".safetensors").unlink()
    loaded, _ = load_checkpoint(stem.with_suffix(".pt"))
    x = torch.randn(2, 1, 16, 16)
    model.eval()
    assert torch.allclose(loaded.embed(x), model.embed(x), atol=1e-6)


def test_existing_folder_without_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path)


# --- Preprocessing: the one reader of the recorded preprocessing ---------------------------------


@pytest.mark.parametrize("preset", names.PRESETS)
def test_preprocessing_reads_what_training_records(preset):
    spec = preprocessing_spec(preset, (20, 16), 3)
    pre = Preprocessing.from_metadata({"preprocessing": spec}, "run/best")
    assert pre.to_dict() == spec and json.loads(json.dumps(pre.to_dict())) == spec
    assert (pre.preset, pre.size, pre.channels) == (preset, (20, 16), 3)
    assert pre.remove_background == ("otsu" if preset == "signature" else None)


def test_preprocessing_of_older_checkpoints_falls_back_to_top_level_and_encoder():
    legacy = {"preset": "signature", "image_size": [30, 40], "channels": 1}
    assert Preprocessing.from_metadata(legacy, "best").to_dict() == {
        **preprocessing_spec("signature", (30, 40), 1),
        "trim": False,  # signature models before `trim` saw whole pages
    }
    no_channels = {
        "preset": "face",
        "image_size": [30, 40],
        "encoder": {"name": "smallcnn", "in_channels": 3},
    }
    assert Preprocessing.from_metadata(no_channels, "best").channels == 3
    partial = {"preprocessing": {"preset": "signature", "size": [30, 40], "channels": 1}}  # no newer fields
    assert Preprocessing.from_metadata(partial, "best").remove_background == "otsu"


@pytest.mark.parametrize(
    "meta, message",
    [
        ({"encoder": {"name": "smallcnn", "in_channels": 1}}, "does not record its preprocessing"),
        ({"preprocessing": {"preset": "face"}}, "does not record its preprocessing"),
        ({"preprocessing": {"preset": "portrait", "size": [8, 8]}}, "unusable preprocessing.*portrait"),
        (
            {"preprocessing": {"preset": "face", "size": [8, 8], "channels": 2}},
            "unusable preprocessing.*channels",
        ),
        ({"preprocessing": {"preset": "face", "size": "big"}}, "unusable preprocessing"),
        ({"preprocessing": {"preset": "face", "size": [8.5, 8]}}, "unusable preprocessing"),
        ({"preprocessing": ["face"]}, "unusable preprocessing"),
    ],
)
def test_preprocessing_errors_name_the_checkpoint(meta, message):
    with pytest.raises(CheckpointError, match=rf"runs/x/best\.json .*{message}"):
        Preprocessing.from_metadata(meta, "runs/x/best")


def test_preprocessing_that_disagrees_with_the_preset_is_a_warning(caplog):
    recorded = {**preprocessing_spec("signature"), "remove_background": None}  # as before Otsu existed
    with caplog.at_level(logging.WARNING, logger="siamese.models.checkpoint"):
        pre = Preprocessing.from_metadata({"preprocessing": recorded}, "best")
    assert pre.remove_background == "otsu"  # what `transform` applies, so what the metadata reports
    assert "remove_background=None" in caplog.text and "'otsu'" in caplog.text


def test_preprocessing_transform_is_the_presets_eval_transform():
    from PIL import Image

    pre = Preprocessing.from_metadata({"preprocessing": preprocessing_spec("signature", (24, 32))}, "best")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70), dtype=np.uint8))
    x = pre.transform()(img)
    assert x.shape == (1, 24, 32)
    assert torch.equal(x, get_transform("signature", False, (24, 32), 1)(img))


def test_preprocessing_honours_the_recorded_trim():
    from dataclasses import replace

    from PIL import Image

    from siamese.data import PRESETS

    spec = preprocessing_spec("signature", (24, 32))
    for trim in (True, False):
        pre = Preprocessing.from_metadata({"preprocessing": {**spec, "trim": trim}}, "best")
        assert pre.trim is trim
        arr = np.full((50, 70), 255, np.uint8)
        arr[10:20, 5:40] = 0
        img = Image.fromarray(arr)
        expected = get_transform(replace(PRESETS["signature"], trim=trim), False, (24, 32), 1)(img)
        assert torch.equal(pre.transform()(img), expected)
    older = {k: v for k, v in spec.items() if k != "trim"}
    assert Preprocessing.from_metadata({"preprocessing": older}, "best").trim is False

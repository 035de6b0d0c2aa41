import json

import pytest
import torch

from siamese.errors import CheckpointError
from siamese.models import TwinNetwork, get_encoder
from siamese.models.checkpoint import load_checkpoint, save_checkpoint


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

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from siamese import names
from siamese.data import preprocessing_spec
from siamese.errors import ConfigError, SiameseError
from siamese.inference import Verifier, export_metadata, export_model, metadata_path
from siamese.inference import export as export_module


@pytest.fixture(scope="module")
def verifier(tiny_run):
    return Verifier.from_checkpoint(tiny_run[0])


def _batch(verifier, n, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, verifier.channels, *verifier.metadata["image_size"], generator=gen)  # (n, C, H, W)


def _check_metadata(path, verifier, fmt):
    meta = json.loads(path.read_text())
    ckpt = verifier.metadata
    assert meta["model_format"] == fmt and meta["encoder"] == ckpt["encoder"]
    assert meta["distance"] == ckpt["distance"] and meta["threshold"] == ckpt["threshold"]
    assert meta["calibration"] == ckpt["calibration"] and meta["tta"] == ckpt["tta"] == "none"
    pre = meta["preprocessing"]
    assert pre["size"] == ckpt["image_size"] == [32, 32] and pre["channels"] == 1
    assert (pre["invert"], pre["fit"], pre["mean"], pre["std"]) == (False, "pad", [0.5], [0.5])
    assert meta["input"]["shape"] == ["batch", 1, 32, 32] and meta["output"]["shape"] == ["batch", 8]
    assert 0 <= meta["parity"]["max_abs_diff"] <= 1e-4


def test_onnx_export_parity_any_batch_and_metadata(verifier, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "enc.onnx"
    info = export_model(verifier.source, "onnx", out)
    assert info["model"] == out and info["metadata"] == metadata_path(out) == tmp_path / "enc.onnx.json"
    assert 0 <= info["max_abs_diff"] <= 1e-4
    _check_metadata(info["metadata"], verifier, "onnx")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        x = _batch(verifier, n)
        with torch.no_grad():
            expected = verifier.encoder(x).numpy()
        got = session.run(None, {"images": x.numpy()})[0]
        assert got.shape == (n, 8)
        np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_torchscript_export_parity_any_batch_and_metadata(verifier, tmp_path):
    out = tmp_path / "enc.pt"
    info = export_model(verifier.source, "torchscript", out, batch_size=3)
    assert 0 <= info["max_abs_diff"] <= 1e-4 and info["batch_size"] == 3
    _check_metadata(tmp_path / "enc.pt.json", verifier, "torchscript")
    loaded = torch.jit.load(str(out))
    x = _batch(verifier, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), verifier.encoder(x), atol=1e-4, rtol=0)


def test_parity_failure_raises_and_removes_the_file(verifier, tmp_path, monkeypatch):
    real = export_module._export_torchscript

    def drifting(encoder, example, out):
        run = real(encoder, example, out)
        return lambda x: run(x) + 1e-3

    monkeypatch.setattr(export_module, "_export_torchscript", drifting)
    with pytest.raises(SiameseError, match="differs from PyTorch"):
        export_model(verifier.source, "torchscript", tmp_path / "enc.pt")
    assert list(tmp_path.iterdir()) == []


def test_missing_onnx_extra_is_clear(verifier, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(SiameseError, match=r"pip install 'siamese\[onnx\]'"):
        export_model(verifier.source, "onnx", tmp_path / "enc.onnx")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(verifier, tmp_path):
    with pytest.raises(ConfigError, match="onnx, torchscript"):
        export_model(verifier.source, "tflite", tmp_path / "x")
    with pytest.raises(ConfigError, match="batch_size"):
        export_model(verifier.source, "torchscript", tmp_path / "x", batch_size=1)


def test_onnx_export_of_grid_pooled_smallcnn_on_odd_sizes(tiny_run, tmp_path):
    """The face preset's grid pooling on a 56x46 input leaves a 4x3 map: not a multiple of 3."""
    pytest.importorskip("onnxruntime")
    from siamese.models import TwinNetwork, get_encoder
    from siamese.models.checkpoint import read_metadata, resolve_checkpoint, save_checkpoint

    meta = read_metadata(resolve_checkpoint(tiny_run[0]))
    meta.update(image_size=[56, 46], preset="face")
    meta["preprocessing"] = {**meta["preprocessing"], "size": [56, 46]}
    model = TwinNetwork(get_encoder("smallcnn", in_channels=1, embedding_dim=8, grid=3))
    keep = {k: v for k, v in meta.items() if k not in ("format", "version", "encoder", "embedding_dim")}
    stem = save_checkpoint(tmp_path / "best", model, keep)
    report = export_model(stem, "onnx", tmp_path / "grid.onnx")
    assert report["max_abs_diff"] <= 1e-4


@pytest.mark.parametrize("preset", names.PRESETS)
@pytest.mark.parametrize("geometry", [{}, {"image_size": (40, 30), "channels": 3}])
def test_export_metadata_round_trips_every_preprocessing_field(preset, geometry):
    """Everything training records about the preprocessing reaches the exported model's user."""
    spec = preprocessing_spec(preset, **geometry)
    meta = {
        "encoder": {"name": "smallcnn", "in_channels": spec["channels"]},
        "embedding_dim": 8,
        "distance": "euclidean",
        "threshold": 0.5,
        "calibration": None,
        "preset": preset,
        "image_size": spec["size"],
        "channels": spec["channels"],
        "preprocessing": spec,
    }
    exported = json.loads(json.dumps(export_metadata(meta, "onnx", Path("run/checkpoints/best"))))
    assert {key: exported["preprocessing"].get(key, "missing") for key in spec} == spec
    assert exported["input"]["shape"] == ["batch", spec["channels"], *spec["size"]]
    assert "order" in exported["preprocessing"]


def test_exported_signature_model_says_to_remove_the_background():
    meta = {
        "encoder": {"name": "smallcnn", "in_channels": 1},
        "embedding_dim": 8,
        "distance": "euclidean",
        "preprocessing": preprocessing_spec("signature"),
    }
    pre = export_metadata(meta, "torchscript", Path("best"))["preprocessing"]
    assert pre["remove_background"] == "otsu" and pre["invert"] is True
    assert "Otsu" in pre["order"] and pre["order"].index("background") < pre["order"].index("invert")

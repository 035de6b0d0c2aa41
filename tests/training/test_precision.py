"""Training precision (bfloat16 autocast of the backbones) and the channels-last layout of `place_method`."""

import json
import logging

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from siamese import devices
from siamese.cli.app import app
from siamese.errors import ConfigError
from siamese.models import Encoder, get_encoder
from siamese.training import build_method, build_train_config, builders
from siamese.training.builders import place_method
from tests.conftest import write_identity_folder

CPU = torch.device("cpu")


def test_fp32_and_bf16_are_what_they_say():
    assert devices.resolve_precision("fp32", CPU) is None
    assert devices.resolve_precision("bf16", CPU) is torch.bfloat16


@pytest.mark.parametrize("native", [True, False])
def test_auto_takes_bf16_only_where_it_is_native(monkeypatch, native):
    monkeypatch.setattr(devices, "native_bf16", lambda device: native)
    assert devices.resolve_precision("auto", CPU) is (torch.bfloat16 if native else None)


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown precision 'fp16'"):
        devices.resolve_precision("fp16", CPU)
    with pytest.raises(ConfigError, match="precision"):
        build_train_config("digits", precision="fp16")


def _backbone_dtypes(encoder: Encoder, x: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(dtype of the backbone's output, dtype of the encoder's output) on `x`."""
    seen = []
    hook = encoder.backbone.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    out = encoder(x)
    hook.remove()
    return seen[0], out.dtype


def test_bf16_autocast_runs_the_backbone_in_training_only_and_returns_float32():
    torch.manual_seed(0)
    encoder = get_encoder("smallcnn", in_channels=1, embedding_dim=8)
    x = torch.rand(6, 1, 28, 28)
    encoder.train()
    reference = encoder(x)
    encoder.autocast_dtype = torch.bfloat16
    assert _backbone_dtypes(encoder, x) == (torch.bfloat16, torch.float32)
    close = encoder(x)
    assert not torch.equal(close, reference)  # it did compute in bfloat16 ...
    torch.testing.assert_close(close, reference, atol=0.05, rtol=0.05)  # ... to bfloat16's precision
    encoder.eval()
    assert _backbone_dtypes(encoder, x) == (torch.float32, torch.float32)


def test_place_method_sets_every_encoder_and_the_channels_last_layout():
    config = build_train_config("digits", method="moco", precision="bf16", embedding_dim=8)
    method = place_method(build_method(config, channels=1), config, CPU)
    encoders = [m for m in method.modules() if isinstance(m, Encoder)]
    assert len(encoders) == 2  # the online encoder and the momentum target's copy
    assert all(e.autocast_dtype is torch.bfloat16 for e in encoders)
    convs = [p for p in method.parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    fp32 = build_train_config("digits", precision="fp32", embedding_dim=8)
    plain = place_method(build_method(fp32, channels=1), fp32, CPU)
    assert plain.encoder.autocast_dtype is None


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_precision_flag_is_saved_and_its_channels_last_weights_reload(tmp_path, precision):
    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    out = tmp_path / "run"
    args = ["train", str(data), "--preset", "digits", "--loss", "margin", "--precision", precision]
    tiny = ["--epochs", "1", "--batch-size", "8", "--samples-per-epoch", "16", "--eval-pairs", "8"]
    result = CliRunner().invoke(app, [*args, *tiny, "--embedding-dim", "8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["precision"] == precision
    embed = ["embed", str(data), "--model", str(out), "--out", str(tmp_path / "e.npy")]
    embedded = CliRunner().invoke(app, embed)
    assert embedded.exit_code == 0, embedded.output
    assert np.load(tmp_path / "e.npy").shape == (32, 8)


def test_bf16_where_it_is_not_native_is_warned(monkeypatch, caplog):
    monkeypatch.setattr(builders, "native_bf16", lambda device: False)
    config = build_train_config("digits", precision="bf16", embedding_dim=8)
    with caplog.at_level(logging.WARNING, logger="siamese"):
        method = place_method(build_method(config, channels=1), config, CPU)
    assert "no native bfloat16" in caplog.text and method.encoder.autocast_dtype is torch.bfloat16

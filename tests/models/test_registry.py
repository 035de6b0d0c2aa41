"""Tests for siamese/models/registry.py, encoder.py, small_cnn.py and torchvision_backbones.py."""

from __future__ import annotations

import json
import subprocess
import sys
from urllib.error import URLError

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from siamese import names
from siamese.errors import CheckpointError, ConfigError
from siamese.models import ENCODERS, Encoder, SmallCNN, adapt_first_conv, get_encoder

SIDE = {"signet": 72}  # the smallest input it takes is 67 px a side (SigNet: 155x220)
"""Test image side per encoder (32 px unless listed)."""


def test_registry_keys_are_the_names():
    assert tuple(ENCODERS) == names.ENCODERS


@pytest.mark.parametrize("name", names.ENCODERS)
@pytest.mark.parametrize(("in_channels", "embedding_dim"), [(1, 16), (3, None)])
def test_forward_backward(name, in_channels, embedding_dim):
    torch.manual_seed(0)
    enc = get_encoder(name, in_channels=in_channels, embedding_dim=embedding_dim)
    x = torch.randn(2, in_channels, SIDE.get(name, 32), SIDE.get(name, 32))
    out = enc(x)  # (B, D)
    expected_dim = embedding_dim if embedding_dim else enc.feature_dim
    assert out.shape == (2, expected_dim)
    assert enc.embedding_dim == expected_dim
    assert enc.in_channels == in_channels
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    assert isinstance(enc.head, nn.Identity) == (embedding_dim is None)

    (out * torch.randn_like(out)).sum().backward()
    for pname, param in enc.named_parameters():
        assert param.grad is not None, pname
        assert torch.isfinite(param.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in enc.backbone.parameters())


@pytest.mark.parametrize("name", names.ENCODERS)
def test_spec_round_trip_rebuilds_same_architecture(name):
    extra = {
        "smallcnn": {"width": 8, "stem_stride": 2, "grid": 2, "dropout": 0.0},
        "signet": {"stem_stride": 3, "fc": 32},
    }.get(name, {})
    enc = get_encoder(name, in_channels=2, embedding_dim=8, normalize=False, **extra).eval()
    spec = json.loads(json.dumps(enc.spec))
    assert spec == {"name": name, "in_channels": 2, "embedding_dim": 8, "normalize": False, **extra}
    assert "pretrained" not in spec

    torch.manual_seed(123)  # different init from `enc`
    rebuilt = get_encoder(**spec).eval()
    rebuilt.load_state_dict(enc.state_dict(), strict=True)
    x = torch.randn(2, 2, SIDE.get(name, 32), SIDE.get(name, 32))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), enc(x))
    assert rebuilt.normalize is False


def test_smallcnn_spec_records_non_default_width():
    enc = get_encoder("smallcnn", width=8, stem_stride=2)
    default = get_encoder("smallcnn")
    with pytest.raises(RuntimeError):
        default.load_state_dict(enc.state_dict(), strict=True)
    get_encoder(**enc.spec).load_state_dict(enc.state_dict(), strict=True)


@pytest.mark.parametrize("embedding_dim", [None, 0])
def test_no_head_is_identity_and_embeds_features(embedding_dim):
    enc = get_encoder("smallcnn", embedding_dim=embedding_dim, width=4).eval()
    assert isinstance(enc.head, nn.Identity)
    assert enc.embedding_dim == enc.feature_dim == 32
    assert enc.spec["embedding_dim"] is None
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), F.normalize(enc.backbone(x), dim=1))


def test_normalize_flag_only_changes_scale():
    raw = get_encoder("smallcnn", width=4, embedding_dim=6, normalize=False).eval()
    unit = get_encoder("smallcnn", width=4, embedding_dim=6, normalize=True).eval()
    unit.load_state_dict(raw.state_dict())
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        r, u = raw(x), unit(x)
    torch.testing.assert_close(r, raw.head(raw.forward_features(x)))
    assert not torch.allclose(r.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(u, r / r.norm(dim=1, keepdim=True))


def test_encoder_pools_feature_maps():
    backbone = nn.Conv2d(1, 5, 3, padding=1)
    enc = Encoder(backbone, 5, 4, False, {"name": "custom", "in_channels": 1})
    x = torch.randn(2, 1, 6, 7)
    torch.testing.assert_close(enc.forward_features(x), backbone(x).mean(dim=(2, 3)))
    assert enc(x).shape == (2, 4)


def test_instance_passthrough():
    enc = get_encoder("smallcnn", width=4)
    assert get_encoder(enc) is enc


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        get_encoder("vgg16")
    for valid in names.ENCODERS:
        assert valid in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_channels": 0},
        {"in_channels": -3},
        {"in_channels": 1.5},
        {"embedding_dim": -1},
        {"width": 0},
        {"stem_stride": 0},
        {"pretrained": True},  # smallcnn has no weights
        {"depth": 3},  # unknown option
    ],
)
def test_smallcnn_config_errors(kwargs):
    with pytest.raises(ConfigError):
        get_encoder("smallcnn", **kwargs)


def test_torchvision_config_errors():
    with pytest.raises(ConfigError, match="width"):
        get_encoder("resnet18", width=8)
    with pytest.raises(ConfigError):
        get_encoder("resnet18", in_channels=0)
    with pytest.raises(ConfigError):
        get_encoder("mobilenet_v3_small", embedding_dim=-5)


def test_bare_module_is_rejected():
    with pytest.raises(ConfigError, match="Encoder"):
        get_encoder(nn.Conv2d(1, 4, 3))


def test_encoder_spec_needs_name_and_channels():
    with pytest.raises(ConfigError):
        Encoder(nn.Flatten(), 4, 2, True, {"name": "x"})


def test_import_does_not_import_torchvision():
    code = "import sys, siamese.models; assert 'torchvision' not in sys.modules, 'torchvision imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_smallcnn_feature_dim_follows_width():
    net = SmallCNN(in_channels=1, width=6)
    assert net.feature_dim == 48
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 48)


# --- first-conv adaptation -------------------------------------------------------------------------


def _rgb_conv(bias: bool = False) -> nn.Conv2d:
    torch.manual_seed(1)
    return nn.Conv2d(3, 4, kernel_size=3, stride=2, padding=1, bias=bias)


@pytest.mark.parametrize("in_channels", [1, 2, 4])
def test_adapted_conv_matches_on_gray_images(in_channels):
    conv = _rgb_conv(bias=True)
    new = adapt_first_conv(conv, in_channels)
    assert new.weight.shape == (4, in_channels, 3, 3)
    assert (new.stride, new.padding) == (conv.stride, conv.padding)
    gray = torch.randn(2, 1, 9, 9)
    torch.testing.assert_close(new(gray.expand(-1, in_channels, -1, -1)), conv(gray.expand(-1, 3, -1, -1)))


def test_adapted_conv_tiles_for_multiples_of_three():
    conv = _rgb_conv()
    new = adapt_first_conv(conv, 6)
    rgb = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(new(torch.cat([rgb, rgb], dim=1)), conv(rgb))
    torch.testing.assert_close(new.weight[:, 3:], conv.weight / 2)


def test_adapt_same_channels_is_identity():
    conv = _rgb_conv()
    assert adapt_first_conv(conv, 3) is conv


@pytest.mark.parametrize(
    ("name", "stem_key"), [("resnet18", "conv1.weight"), ("mobilenet_v3_small", "features.0.0.weight")]
)
def test_pretrained_weights_are_loaded_and_adapted(monkeypatch, name, stem_key):
    from torchvision import models

    torch.manual_seed(7)
    reference = models.get_model(name, weights=None).state_dict()
    monkeypatch.setattr(models.WeightsEnum, "get_state_dict", lambda self, *a, **k: reference)

    rgb = get_encoder(name, in_channels=3, pretrained=True)
    gray = get_encoder(name, in_channels=1, pretrained=True)
    torch.testing.assert_close(rgb.backbone.state_dict()[stem_key], reference[stem_key])
    torch.testing.assert_close(
        gray.backbone.state_dict()[stem_key], reference[stem_key].sum(dim=1, keepdim=True)
    )
    for key, value in gray.backbone.state_dict().items():
        if key != stem_key:
            torch.testing.assert_close(value, reference[key])
    assert "pretrained" not in gray.spec


def test_pretrained_download_failure_is_checkpoint_error(monkeypatch):
    from torchvision import models

    def offline(self, *args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(CheckpointError, match="resnet18"):
        get_encoder("resnet18", pretrained=True)


def test_smallcnn_grid_pooling_keeps_layout_and_round_trips():
    enc = get_encoder("smallcnn", in_channels=1, embedding_dim=16, grid=3, dropout=0.1)
    assert enc.feature_dim == 256 * 9
    x = torch.zeros(2, 1, 40, 40)
    x[0, :, :20] = 1.0  # same content, different place: global pooling could not tell them apart
    x[1, :, 20:] = 1.0
    enc.eval()
    feats = enc.forward_features(x)
    assert feats.shape == (2, 256 * 9) and not torch.allclose(feats[0], feats[1])
    rebuilt = get_encoder(**json.loads(json.dumps(enc.spec)))
    rebuilt.load_state_dict(enc.state_dict(), strict=True)
    assert rebuilt.spec["grid"] == 3 and rebuilt.spec["dropout"] == 0.1


@pytest.mark.parametrize("size", [(4, 3), (7, 6), (9, 9), (2, 5)])
def test_grid_pool_equals_adaptive_avg_pool(size):
    from siamese.models.small_cnn import GridPool

    x = torch.randn(2, 5, *size)
    torch.testing.assert_close(GridPool(3)(x), nn.AdaptiveAvgPool2d(3)(x))

"""Tests for siamese/models/signet.py: SigNet's layer table, shapes, parameters, any input size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from siamese.errors import ConfigError
from siamese.models import get_encoder
from siamese.models.signet import SigNet, feature_map_size


def conv_weights(c_in: int, c_out: int, k: int) -> int:
    return c_out * c_in * k * k + c_out


def test_parameter_count_is_the_papers_layer_table():
    # Dey et al. 2017, Table 1, at 155x220 with the first convolution's stride 4:
    # 155x220 -conv11/4-> 37x53 -pool-> 18x26 -conv5-> 18x26 -pool-> 8x12 -conv3 x2-> 8x12 -pool-> 3x5
    expected = (
        conv_weights(1, 96, 11)
        + conv_weights(96, 256, 5)
        + conv_weights(256, 384, 3)
        + conv_weights(384, 256, 3)
        + (256 * 3 * 5 * 1024 + 1024)  # fully connected 1024
        + (1024 * 128 + 128)  # fully connected 128 (the head)
    )
    enc = get_encoder("signet", embedding_dim=128, normalize=False)
    assert sum(p.numel() for p in enc.parameters()) == expected == 6_460_864
    assert feature_map_size((155, 220), 4) == (3, 5)
    assert feature_map_size((155, 220), 1) == (17, 25)  # the stride-1 reading: a 111M-weight layer


def test_layers_follow_the_table():
    net = SigNet()
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (96, (11, 11), (0, 0)),
        (256, (5, 5), (2, 2)),
        (384, (3, 3), (1, 1)),
        (256, (3, 3), (1, 1)),
    ]
    lrn = [m for m in net.features if isinstance(m, nn.LocalResponseNorm)]
    assert [(m.size, m.alpha, m.beta, m.k) for m in lrn] == [(5, 1e-4, 0.75, 2.0)] * 2
    drops = [m.p for m in net.modules() if isinstance(m, nn.Dropout)]
    assert drops == [0.3, 0.3, 0.5]
    pools = [m for m in net.features if isinstance(m, nn.MaxPool2d)]
    assert [(m.kernel_size, m.stride) for m in pools] == [(3, 2)] * 3


def test_forward_backward_at_the_papers_size():
    torch.manual_seed(0)
    enc = get_encoder("signet", embedding_dim=128, normalize=False)
    x = torch.randn(3, 1, 155, 220)
    out = enc(x)
    assert out.shape == (3, 128)
    out.pow(2).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert enc.backbone.features[0].weight.grad.abs().sum() > 0


def test_other_sizes_pool_to_the_papers_feature_map():
    torch.manual_seed(0)
    net = SigNet().eval()
    x = torch.randn(2, 1, 155, 220)
    with torch.no_grad():
        maps = net.features(x)
        torch.testing.assert_close(net.pool(maps), maps)  # identity at the paper's size
        assert net(torch.randn(2, 1, 100, 300)).shape == (2, 1024)
    with pytest.raises(ValueError, match="at least 67 px"):
        net(torch.randn(1, 1, 60, 220))


@pytest.mark.parametrize("kwargs", [{"stem_stride": 0}, {"fc": 0}, {"stem_stride": 12}, {"pretrained": True}])
def test_bad_options(kwargs):
    with pytest.raises(ConfigError):
        get_encoder("signet", **kwargs)

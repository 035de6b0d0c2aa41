"""Tests for siamese/models/twin.py."""

from __future__ import annotations

import doctest
import math

import pytest
import torch

from siamese.errors import ConfigError, DataError
from siamese.models import TwinNetwork, TwinOutput, get_encoder, pair_distance
from siamese.models import twin as twin_module


def _twin(distance: str = "euclidean", **kwargs) -> TwinNetwork:
    torch.manual_seed(0)
    return TwinNetwork(get_encoder("smallcnn", width=4, embedding_dim=8, **kwargs), distance=distance)


def _naive(e1: torch.Tensor, e2: torch.Tensor, kind: str) -> list[float]:
    out = []
    for a, b in zip(e1.tolist(), e2.tolist(), strict=True):
        if kind == "euclidean":
            out.append(math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True))))
        else:
            dot = sum(x * y for x, y in zip(a, b, strict=True))
            na = math.sqrt(sum(x * x for x in a))
            nb = math.sqrt(sum(y * y for y in b))
            out.append(1.0 - dot / (na * nb))
    return out


def test_weights_are_shared_by_construction():
    twin = _twin()
    twin_params = list(twin.parameters())
    enc_params = list(twin.encoder.parameters())
    assert len(twin_params) == len(enc_params)
    assert all(a is b for a, b in zip(twin_params, enc_params, strict=True))
    assert all(key.startswith("encoder.") for key in twin.state_dict())


def test_one_encoder_pass_per_forward():
    twin = _twin()
    seen: list[int] = []
    twin.encoder.register_forward_hook(lambda module, args, output: seen.append(args[0].shape[0]))
    x1, x2 = torch.randn(3, 1, 16, 16), torch.randn(3, 1, 16, 16)
    out = twin(x1, x2)
    assert seen == [6]
    assert isinstance(out, TwinOutput)
    assert out.emb1.shape == out.emb2.shape == (3, 8)
    assert out.distance.shape == (3,)
    twin(x1, x2)
    assert seen == [6, 6]


def test_halves_are_split_back_in_order():
    twin = _twin().eval()  # eval: BatchNorm uses running stats, so per-image results are batch-independent
    x1, x2 = torch.randn(3, 1, 16, 16), torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        out = twin(x1, x2)
        torch.testing.assert_close(out.emb1, twin.embed(x1))
        torch.testing.assert_close(out.emb2, twin.embed(x2))
        torch.testing.assert_close(out.distance, pair_distance(twin.embed(x1), twin.embed(x2), "euclidean"))


@pytest.mark.parametrize("half", ["emb1", "emb2"])
def test_gradients_reach_shared_encoder_from_each_half(half):
    twin = _twin()
    x1, x2 = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16)
    out = twin(x1, x2)
    weights = torch.randn(2, 8)
    (getattr(out, half) * weights).sum().backward()
    stem = twin.encoder.backbone.features[0][0].weight
    assert twin.encoder.head.weight.grad.abs().sum() > 0
    assert stem.grad is not None and stem.grad.abs().sum() > 0


def test_input_gradient_flows_only_to_its_half():
    twin = _twin().eval()
    x1 = torch.randn(2, 1, 16, 16, requires_grad=True)
    x2 = torch.randn(2, 1, 16, 16, requires_grad=True)
    twin(x1, x2).emb1.sum().backward()
    assert x1.grad.abs().sum() > 0
    assert x2.grad is None or x2.grad.abs().sum() == 0


@pytest.mark.parametrize("kind", ["euclidean", "cosine"])
def test_pair_distance_matches_naive_loop(kind):
    torch.manual_seed(3)
    e1, e2 = torch.randn(5, 4), torch.randn(5, 4)
    torch.testing.assert_close(pair_distance(e1, e2, kind), torch.tensor(_naive(e1, e2, kind)))


def test_pair_distance_hand_computed_on_circle():
    angles = torch.tensor([0.0, math.pi / 2, math.pi, math.pi / 3])
    e1 = torch.stack([torch.ones(4), torch.zeros(4)], dim=1)  # all at angle 0
    e2 = torch.stack([angles.cos(), angles.sin()], dim=1)
    torch.testing.assert_close(pair_distance(e1, e2, "cosine"), torch.tensor([0.0, 1.0, 2.0, 0.5]))
    torch.testing.assert_close(
        pair_distance(e1, e2, "euclidean"), torch.tensor([0.0, math.sqrt(2), 2.0, 1.0])
    )


@pytest.mark.parametrize("kind", ["euclidean", "cosine"])
def test_twin_uses_configured_distance(kind):
    twin = _twin(kind, normalize=False)
    out = twin(torch.randn(4, 1, 12, 12), torch.randn(4, 1, 12, 12))
    expected = torch.tensor(_naive(out.emb1.detach(), out.emb2.detach(), kind))
    torch.testing.assert_close(out.distance.detach(), expected)
    torch.testing.assert_close(twin.pair_distance(out.emb1, out.emb2), out.distance)


@pytest.mark.parametrize("kind", ["euclidean", "cosine"])
def test_identical_pair_has_zero_distance_and_finite_gradient(kind):
    twin = _twin(kind)
    x = torch.randn(2, 1, 16, 16)
    out = twin(x, x.clone())
    torch.testing.assert_close(out.distance, torch.zeros(2), atol=1e-6, rtol=0)
    out.distance.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in twin.parameters())


def test_unknown_distance_is_config_error():
    encoder = get_encoder("smallcnn", width=4)
    with pytest.raises(ConfigError, match="euclidean"):
        TwinNetwork(encoder, distance="manhattan")
    with pytest.raises(ConfigError):
        pair_distance(torch.zeros(1, 2), torch.zeros(1, 2), "manhattan")


def test_shape_mismatch_errors():
    twin = _twin()
    with pytest.raises(DataError):
        twin(torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 12))
    with pytest.raises(ValueError):
        pair_distance(torch.zeros(2, 3), torch.zeros(3, 3), "euclidean")


@pytest.mark.parametrize("size", [(8, 8), (32, 32), (112, 92), (155, 220)])
@pytest.mark.parametrize("stem_stride", [1, 2])
def test_smallcnn_twin_handles_dataset_sizes(size, stem_stride):
    torch.manual_seed(0)
    twin = TwinNetwork(get_encoder("smallcnn", width=4, embedding_dim=8, stem_stride=stem_stride))
    x1, x2 = torch.randn(2, 1, *size), torch.randn(2, 1, *size)
    out = twin(x1, x2)
    assert out.emb1.shape == (2, 8)
    assert torch.isfinite(out.distance).all()
    out.distance.sum().backward()
    assert twin.encoder.head.weight.grad.abs().sum() > 0


def test_docstring_examples():
    result = doctest.testmod(twin_module)
    assert result.attempted > 0 and result.failed == 0

"""ProjectionHead, PredictionHead and Prototypes: layer layout, forward against hand computation, freezing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from siamese.errors import ConfigError
from siamese.models.heads import PredictionHead, ProjectionHead, Prototypes


def layout(module: nn.Module) -> list[tuple]:
    """Each layer as (type name, in, out, has bias) for Linear, (name, features) for BN, (name,) else."""
    rows: list[tuple] = []
    for layer in module:
        if isinstance(layer, nn.Linear):
            rows.append(("Linear", layer.in_features, layer.out_features, layer.bias is not None))
        elif isinstance(layer, nn.BatchNorm1d):
            rows.append(("BatchNorm1d", layer.num_features))
        else:
            rows.append((type(layer).__name__,))
    return rows


def test_default_head_is_linear_bn_relu_linear() -> None:
    assert layout(ProjectionHead(8, 16, 4)) == [
        ("Linear", 8, 16, False),
        ("BatchNorm1d", 16),
        ("ReLU",),
        ("Linear", 16, 4, True),
    ]


def test_three_layers_without_batch_norm() -> None:
    assert layout(ProjectionHead(8, 16, 4, num_layers=3, batch_norm=False)) == [
        ("Linear", 8, 16, True),
        ("ReLU",),
        ("Linear", 16, 16, True),
        ("ReLU",),
        ("Linear", 16, 4, True),
    ]


def test_one_layer_is_a_single_linear() -> None:
    assert layout(ProjectionHead(8, 16, 4, num_layers=1)) == [("Linear", 8, 4, True)]


def test_forward_matches_hand_computation_in_train_mode() -> None:
    torch.manual_seed(0)
    head = ProjectionHead(3, 5, 2).double().train()
    x = torch.randn(6, 3, dtype=torch.float64)  # (B, in)
    first, bn, _, last = head
    h = x @ first.weight.T  # (B, hidden), no bias before BN
    h = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + bn.eps) * bn.weight + bn.bias
    expected = torch.relu(h) @ last.weight.T + last.bias  # (B, out)
    assert torch.allclose(head(x), expected, atol=1e-12)


def test_forward_backward_shapes_and_finite_gradients() -> None:
    head = ProjectionHead(8, 16, 4, num_layers=3)
    x = torch.randn(5, 8)
    out = head(x)
    assert out.shape == (5, 4)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())


def test_prediction_head_maps_back_to_its_input_size() -> None:
    assert layout(PredictionHead(4, 32)) == [
        ("Linear", 4, 32, False),
        ("BatchNorm1d", 32),
        ("ReLU",),
        ("Linear", 32, 4, True),
    ]
    assert PredictionHead(4, 32, out_dim=6)(torch.randn(3, 4)).shape == (3, 6)


@pytest.mark.parametrize(
    "args", [(0, 16, 4), (8, 0, 4), (8, 16, 0), (8, 16, 4, 0)], ids=["in", "hidden", "out", "layers"]
)
def test_bad_head_dims_raise(args: tuple) -> None:
    with pytest.raises(ConfigError, match="must be >= 1"):
        ProjectionHead(*args)


def test_prototypes_are_bias_free_scores() -> None:
    protos = Prototypes(2, 3)
    assert protos.bias is None and protos.weight.shape == (3, 2)
    with torch.no_grad():
        protos.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]]))
    x = torch.tensor([[1.0, 0.0], [0.6, 0.8]])  # (B, D), unit rows
    expected = torch.tensor([[3.0, 0.0, 1.0], [1.8, 1.6, 1.4]])  # (B, K) = x @ W.T
    assert torch.allclose(protos(x), expected)
    protos.normalize_()
    s = 2**-0.5
    assert torch.allclose(protos(x), torch.tensor([[1.0, 0.0, s], [0.6, 0.8, 1.4 * s]]))


def test_normalize_gives_unit_rows_and_keeps_a_trainable_leaf() -> None:
    protos = Prototypes(4, 6)
    protos.normalize_()
    assert torch.allclose(protos.weight.norm(dim=1), torch.ones(6), atol=1e-6)
    assert protos.weight.is_leaf and protos.weight.requires_grad and protos.weight.grad_fn is None


def test_freeze_grad_keeps_prototypes_fixed_for_the_first_steps() -> None:
    torch.manual_seed(0)
    protos = Prototypes(4, 3)
    opt = torch.optim.SGD(protos.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    x = torch.randn(5, 4)
    for step in range(3):
        before = protos.weight.detach().clone()
        opt.zero_grad()
        protos(x).pow(2).sum().backward()
        frozen = protos.freeze_grad(step, freeze_steps=2)
        opt.step()
        assert frozen == (step < 2)
        assert torch.equal(protos.weight.detach(), before) == frozen


def test_freeze_grad_rejects_negative_steps() -> None:
    with pytest.raises(ConfigError, match="freeze_steps"):
        Prototypes(4, 3).freeze_grad(0, -1)


@pytest.mark.parametrize("args", [(0, 3), (4, 0)])
def test_bad_prototype_dims_raise(args: tuple) -> None:
    with pytest.raises(ConfigError, match="must be >= 1"):
        Prototypes(*args)

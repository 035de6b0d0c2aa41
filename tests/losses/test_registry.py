"""Loss registry: names, factory errors, and forward + backward of every loss with every miner."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from siamese import names
from siamese.errors import ConfigError
from siamese.losses import (
    LOSSES,
    MINERS,
    ArcFaceLoss,
    CosFaceLoss,
    MarginContrastiveLoss,
    SubCenterArcFaceLoss,
    SupConLoss,
    TripletLoss,
    get_loss,
    get_miner,
    loss_needs_classes,
)


def classes(name: str) -> dict:
    """What the caller supplies to a loss with class weights: 4 classes of 8-dim embeddings."""
    return {"num_classes": 4, "embedding_size": 8} if loss_needs_classes(name) else {}


def test_registry_keys_are_the_published_names() -> None:
    assert tuple(LOSSES) == names.LOSSES
    assert tuple(MINERS) == names.MINERS


def test_names_map_to_the_loss_classes() -> None:
    assert LOSSES == {
        "margin": MarginContrastiveLoss,
        "supcon": SupConLoss,
        "triplet": TripletLoss,
        "arcface": ArcFaceLoss,
        "cosface": CosFaceLoss,
        "subcenter": SubCenterArcFaceLoss,
    }
    for name, cls in LOSSES.items():
        assert type(get_loss(name, **classes(name))) is cls


def test_options_reach_the_loss() -> None:
    assert get_loss("margin", margin=2.0, distance="cosine").margin == 2.0
    supcon = get_loss("supcon", temperature=0.07, beta=1.5)
    assert (supcon.temperature, supcon.beta) == (0.07, 1.5)
    assert get_loss("triplet", margin=0.3).margin == 0.3


def test_instance_passes_through_unchanged() -> None:
    loss = SupConLoss(temperature=0.5)
    assert get_loss(loss) is loss
    custom = nn.MSELoss()
    assert get_loss(custom) is custom
    with pytest.raises(ConfigError):
        get_loss(loss, temperature=0.1)


@pytest.mark.parametrize("name", ["contrastive", "Margin", "", 3, None])
def test_unknown_name_lists_valid_names(name) -> None:
    with pytest.raises(ConfigError) as err:
        get_loss(name)
    assert all(valid in str(err.value) for valid in names.LOSSES)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("margin", {"temperature": 0.1}), ("supcon", {"margin": 1.0}), ("triplet", {"beta": 1.0})],
)
def test_unknown_option_is_a_config_error(name: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        get_loss(name, **kwargs)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("margin", {"margin": 0.0}),
        ("margin", {"distance": "l1"}),
        ("supcon", {"temperature": -1.0}),
        ("supcon", {"beta": -0.1}),
        ("supcon", {"distance": "l1"}),
        ("triplet", {"margin": -0.2}),
        ("triplet", {"distance": "l1"}),
    ],
)
def test_bad_option_value_is_a_config_error(name: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        get_loss(name, **kwargs)


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes of three (an m-per-class batch) plus two forgeries with labels of their own."""
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(14, 8, generator=gen)  # (B, D)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 100, 101])
    return emb, labels


@pytest.mark.parametrize("distance", names.DISTANCES)
@pytest.mark.parametrize("miner_name", names.MINERS)
@pytest.mark.parametrize("loss_name", names.LOSSES)
def test_every_loss_with_every_miner_is_finite(loss_name: str, miner_name: str, distance: str) -> None:
    emb, labels = batch(seed=len(loss_name) + len(miner_name))
    emb.requires_grad_(True)
    if loss_needs_classes(loss_name) and distance == "euclidean":  # cosine losses: refused
        with pytest.raises(ConfigError, match="cosine"):
            get_loss(loss_name, distance=distance, **classes(loss_name))
        return
    loss_fn = get_loss(loss_name, distance=distance, **classes(loss_name))
    miner = get_miner(miner_name)
    indices = None if miner is None else miner(emb, labels)
    loss = loss_fn(emb, labels, indices)
    assert loss.shape == () and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0


def test_supcon_multi_view_forward_backward() -> None:
    emb, labels = batch(seed=0)
    views = emb.reshape(7, 2, 8).requires_grad_(True)  # (B, V, D)
    loss = get_loss("supcon", beta=1.0)(views, labels[::2])
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(views.grad).all()

"""NTXentLoss against a naive per-anchor loop of SimCLR's formula, closed forms, pml, lightly and SupCon."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.losses import NTXentLoss as PmlNTXentLoss

from siamese.errors import ConfigError
from siamese.losses.ntxent import NTXentLoss
from siamese.losses.supcon import SupConLoss

from .points import circle

# (N, 2) each: three images, the second view rotated a little (image 2 crosses image 1's side),
# radii differ so the loss must normalise.
Z1 = circle([0, 100, 220], radii=[1.0, 2.0, 0.5])
Z2 = circle([20, 130, 150], radii=[0.7, 1.0, 3.0])


def naive_ntxent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """Mean over the 2N anchors of -log(exp(s_kp / t) / sum_{l != k} exp(s_kl / t)), in plain floats."""
    rows = [[float(x) for x in r] for r in torch.cat([z1, z2])]
    rows = [[x / math.sqrt(sum(y * y for y in r)) for x in r] for r in rows]
    n2 = len(rows)

    def sim(a: int, b: int) -> float:
        return sum(x * y for x, y in zip(rows[a], rows[b], strict=True))

    total = 0.0
    for k in range(n2):
        positive = (k + n2 // 2) % n2
        denominator = sum(math.exp(sim(k, m) / temperature) for m in range(n2) if m != k)
        total += -math.log(math.exp(sim(k, positive) / temperature) / denominator)
    return total / n2


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_matches_naive_loop(temperature: float) -> None:
    loss = NTXentLoss(temperature)(Z1, Z2)
    assert loss.item() == pytest.approx(naive_ntxent(Z1, Z2, temperature), rel=1e-10)


def test_swapping_views_or_reordering_images_does_not_change_the_loss() -> None:
    loss = NTXentLoss(0.2)
    perm = torch.tensor([2, 0, 1])
    assert loss(Z2, Z1).item() == pytest.approx(loss(Z1, Z2).item(), rel=1e-12)
    assert loss(Z1[perm], Z2[perm]).item() == pytest.approx(loss(Z1, Z2).item(), rel=1e-12)
    # Pairing the views with the wrong images is a different (higher) loss.
    assert loss(Z1, Z2[perm]).item() > loss(Z1, Z2).item() + 0.1


def test_all_embeddings_identical_is_log_2n_minus_1() -> None:
    # Every logit is equal, so each anchor's softmax is uniform over its 2N - 1 others.
    n = 4
    z = torch.ones(n, 3, dtype=torch.float64)
    loss = NTXentLoss(0.3)(z, 2 * z)
    assert loss.item() == pytest.approx(math.log(2 * n - 1), rel=1e-12)


def test_identical_views_of_orthogonal_images_closed_form() -> None:
    # Positive similarity 1, the 2N - 2 negatives similarity 0:
    # loss = -log(e^{1/T} / (e^{1/T} + (2N - 2) e^{0})).
    n, t = 3, 0.25
    z1 = torch.diag(torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64))  # (3, 3), orthogonal rows
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + (2 * n - 2)))
    assert NTXentLoss(t)(z1, 2 * z1).item() == pytest.approx(expected, rel=1e-12)


def test_one_image_has_only_its_positive_so_loss_is_zero() -> None:
    z1, z2 = Z1[:1], Z2[:1]
    assert NTXentLoss(0.1)(z1, z2).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_matches_pytorch_metric_learning(temperature: float) -> None:
    n = Z1.shape[0]
    labels = torch.arange(n).repeat(2)  # (2N,): image i is rows i and N + i
    expected = PmlNTXentLoss(temperature=temperature)(torch.cat([Z1, Z2]), labels)
    assert NTXentLoss(temperature)(Z1, Z2).item() == pytest.approx(expected.item(), rel=1e-10)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_matches_lightly(temperature: float) -> None:
    lightly_loss = pytest.importorskip("lightly.loss")
    expected = lightly_loss.NTXentLoss(temperature=temperature)(Z1, Z2)
    assert NTXentLoss(temperature)(Z1, Z2).item() == pytest.approx(expected.item(), rel=1e-10)


def test_supcon_with_one_label_per_image_equals_ntxent() -> None:
    t = 0.2
    views = torch.stack([Z1, Z2], dim=1)  # (N, 2, D)
    labels = torch.arange(Z1.shape[0])
    supcon = SupConLoss(temperature=t, distance="cosine")(views, labels)
    assert supcon.item() == pytest.approx(NTXentLoss(t)(Z1, Z2).item(), rel=1e-10)


def test_gradient_reaches_both_views_and_is_finite() -> None:
    z1, z2 = Z1.clone().requires_grad_(), Z2.clone().requires_grad_()
    NTXentLoss(0.1)(z1, z2).backward()
    for g in (z1.grad, z2.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize(
    ("z1", "z2"),
    [(Z1, Z2[:2]), (Z1, torch.ones(3, 5, dtype=torch.float64)), (Z1[0], Z2[0]), (Z1[:0], Z2[:0])],
)
def test_bad_shapes_raise(z1: torch.Tensor, z2: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="NT-Xent"):
        NTXentLoss()(z1, z2)


@pytest.mark.parametrize("temperature", [0.0, -0.1])
def test_bad_temperature_raises(temperature: float) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        NTXentLoss(temperature)

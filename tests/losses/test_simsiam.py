"""SimSiam's negative cosine against a naive loop, BYOL's 2 - 2 cos, the stop-gradient and lightly."""

from __future__ import annotations

import math

import pytest
import torch

from siamese.errors import ConfigError
from siamese.losses.byol import BYOLLoss
from siamese.losses.simsiam import SimSiamLoss, negative_cosine

from .points import circle

# (N, 2): angles between P[i] and Z[i] are 0, 90, 180 and 60 degrees, so cos = 1, 0, -1, 0.5.
P = circle([10, 40, 100, 300], radii=[1.0, 2.0, 0.5, 1.5])
Z = circle([10, 130, 280, 0], radii=[3.0, 1.0, 1.0, 0.2])


def _random(seed: int, n: int = 5, d: int = 3) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _naive_d(p: torch.Tensor, z: torch.Tensor) -> float:
    """The paper's D(p, z) = -cos(p, z), averaged over the batch, one row and one coordinate at a time."""
    total = 0.0
    for i in range(p.shape[0]):
        dot = sum(p[i, k].item() * z[i, k].item() for k in range(p.shape[1]))
        norm_p = math.sqrt(sum(p[i, k].item() ** 2 for k in range(p.shape[1])))
        norm_z = math.sqrt(sum(z[i, k].item() ** 2 for k in range(p.shape[1])))
        total += -dot / (norm_p * norm_z)
    return total / p.shape[0]


def test_matches_hand_computed_cosines() -> None:
    assert negative_cosine(P, Z).item() == pytest.approx(-(1 + 0 - 1 + 0.5) / 4, abs=1e-12)


def test_symmetric_loss_matches_a_naive_loop_of_the_papers_equation() -> None:
    p1, p2, z1, z2 = (_random(s) for s in range(4))
    expected = _naive_d(p1, z2) / 2 + _naive_d(p2, z1) / 2
    assert SimSiamLoss()(p1, p2, z1, z2).item() == pytest.approx(expected, rel=1e-12)
    # Each prediction must meet the OTHER view's projection: the same-view pairing is another number.
    assert not math.isclose(SimSiamLoss()(p1, p2, z1, z2).item(), _naive_d(p1, z1) / 2 + _naive_d(p2, z2) / 2)


def test_identical_predictions_and_projections_reach_the_minimum_of_minus_one() -> None:
    z = _random(7)
    assert SimSiamLoss()(z, 3 * z, z, z).item() == pytest.approx(-1.0, abs=1e-12)


def test_is_an_affine_map_of_the_byol_loss() -> None:
    p1, p2, z1, z2 = (_random(s) for s in range(4, 8))
    byol = BYOLLoss()(p1, p2, z1, z2).item()
    assert SimSiamLoss()(p1, p2, z1, z2).item() == pytest.approx(byol / 4 - 1, rel=1e-12)


def test_stop_gradient_no_gradient_reaches_the_projections() -> None:
    p1, p2, z1, z2 = (_random(s).requires_grad_() for s in range(4))
    SimSiamLoss()(p1, p2, z1, z2).backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad is not None and p2.grad is not None
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0


def test_stop_gradient_through_a_shared_projector() -> None:
    """As in the method: p = h(z) and z = f(x); the gradient reaches f only through the predictor."""
    x1, x2 = _random(10), _random(11)
    f = torch.nn.Linear(3, 3).double()
    h = torch.nn.Linear(3, 3).double()
    z1, z2 = f(x1), f(x2)
    SimSiamLoss()(h(z1), h(z2), z1, z2).backward()
    ours = f.weight.grad.clone()
    f.weight.grad = None
    z1, z2 = f(x1), f(x2)
    # Without the stop-gradient the projections would also be pulled: a different gradient.
    cos = torch.nn.functional.cosine_similarity
    (-(cos(h(z1), z2).mean() + cos(h(z2), z1).mean()) / 2).backward()
    assert not torch.allclose(ours, f.weight.grad)


def test_matches_lightly_negative_cosine_similarity() -> None:
    lightly_loss = pytest.importorskip("lightly.loss")
    neg_cos = lightly_loss.NegativeCosineSimilarity()
    p1, p2, z1, z2 = (_random(s, n=6, d=4) for s in range(20, 24))
    assert negative_cosine(p1, z2).item() == pytest.approx(neg_cos(p1, z2).item(), rel=1e-10)
    lightly_simsiam = 0.5 * (neg_cos(p1, z2.detach()) + neg_cos(p2, z1.detach()))
    assert SimSiamLoss()(p1, p2, z1, z2).item() == pytest.approx(lightly_simsiam.item(), rel=1e-10)


@pytest.mark.parametrize(("p", "z"), [(P, Z[:3]), (P[0], Z[0]), (P, torch.ones(4, 3, dtype=torch.float64))])
def test_bad_shapes_raise(p: torch.Tensor, z: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="SimSiam"):
        negative_cosine(p, z)
    with pytest.raises(ConfigError, match="SimSiam"):
        SimSiamLoss()(p, p, z, z)

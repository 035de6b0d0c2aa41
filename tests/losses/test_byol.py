"""byol_loss / BYOLLoss against 2 - 2 cos, the stop-gradient and lightly's NegativeCosineSimilarity."""

from __future__ import annotations

import math

import pytest
import torch

from siamese.errors import ConfigError
from siamese.losses.byol import BYOLLoss, byol_loss

from .points import circle

# (N, 2): angles between P[i] and Z[i] are 0, 90, 180 and 60 degrees, so cos = 1, 0, -1, 0.5.
P = circle([10, 40, 100, 300], radii=[1.0, 2.0, 0.5, 1.5])
Z = circle([10, 130, 280, 0], radii=[3.0, 1.0, 1.0, 0.2])


def test_matches_hand_computed_cosines() -> None:
    cosines = [1.0, 0.0, -1.0, 0.5]
    expected = sum(2 - 2 * c for c in cosines) / len(cosines)  # (0 + 2 + 4 + 1) / 4
    assert byol_loss(P, Z).item() == pytest.approx(expected, abs=1e-12)


def test_equals_squared_distance_of_unit_vectors() -> None:
    p, z = P / P.norm(dim=1, keepdim=True), Z / Z.norm(dim=1, keepdim=True)
    expected = ((p - z) ** 2).sum(dim=1).mean()
    assert byol_loss(P, Z).item() == pytest.approx(expected.item(), rel=1e-12)


def test_gradient_does_not_flow_into_target() -> None:
    p, z = P.clone().requires_grad_(), Z.clone().requires_grad_()
    byol_loss(p, z).backward()
    assert z.grad is None
    assert p.grad is not None and torch.isfinite(p.grad).all()
    # Row 0 is already aligned (cos = 1) so its gradient is zero; the others pull towards z.
    assert p.grad[0].abs().max().item() == pytest.approx(0.0, abs=1e-12)
    assert p.grad[1:].abs().sum() > 0


def test_symmetric_loss_pairs_each_prediction_with_the_other_views_target() -> None:
    p1, p2, z1, z2 = P, P.flip(0), Z.flip(0), Z
    expected = byol_loss(p1, z2) + byol_loss(p2, z1)
    assert BYOLLoss()(p1, p2, z1, z2).item() == pytest.approx(expected.item(), rel=1e-12)
    # Pairing each prediction with its own view's target is a different number.
    assert not math.isclose(BYOLLoss()(p1, p2, z1, z2).item(), (byol_loss(p1, z1) + byol_loss(p2, z2)).item())


def test_matches_lightly_negative_cosine_similarity() -> None:
    lightly_loss = pytest.importorskip("lightly.loss")
    neg_cos = lightly_loss.NegativeCosineSimilarity()
    assert byol_loss(P, Z).item() == pytest.approx(2 + 2 * neg_cos(P, Z).item(), rel=1e-10)
    # lightly's BYOL example: 0.5 * (neg_cos(p1, z2) + neg_cos(p2, z1)); ours is 4 + 4 * that.
    p1, p2, z1, z2 = P, P.flip(0), Z.flip(0), Z
    lightly_byol = 0.5 * (neg_cos(p1, z2) + neg_cos(p2, z1))
    assert BYOLLoss()(p1, p2, z1, z2).item() == pytest.approx(4 + 4 * lightly_byol.item(), rel=1e-10)


@pytest.mark.parametrize(("p", "z"), [(P, Z[:3]), (P[0], Z[0]), (P, torch.ones(4, 3, dtype=torch.float64))])
def test_bad_shapes_raise(p: torch.Tensor, z: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="BYOL"):
        byol_loss(p, z)
    with pytest.raises(ConfigError, match="BYOL"):
        BYOLLoss()(p, p, z, z)

"""VICRegLoss against a naive loop of the paper's equations, hand-placed cases and lightly."""

from __future__ import annotations

import math

import pytest
import torch

from siamese.errors import ConfigError
from siamese.losses.vicreg import VICRegLoss, covariance_term, variance_term


def _random(seed: int, n: int = 6, d: int = 4) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _naive_terms(z: torch.Tensor, gamma: float, eps: float) -> tuple[float, float]:
    """v(Z) (hinge on sqrt(Var + eps), 1/(N-1)) and c(Z) (off-diagonal Cov^2 summed, / D) by loops."""
    n, d = z.shape
    means = [sum(z[b, j].item() for b in range(n)) / n for j in range(d)]
    cov = [
        [
            sum((z[b, i].item() - means[i]) * (z[b, j].item() - means[j]) for b in range(n)) / (n - 1)
            for j in range(d)
        ]
        for i in range(d)
    ]
    v = sum(max(0.0, gamma - math.sqrt(cov[j][j] + eps)) for j in range(d)) / d
    c = sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
    return v, c


def _naive(z1: torch.Tensor, z2: torch.Tensor, lam: float, mu: float, nu: float, gamma: float = 1.0) -> float:
    n, d = z1.shape
    s = sum((z1[b, j].item() - z2[b, j].item()) ** 2 for b in range(n) for j in range(d)) / (n * d)
    (v1, c1), (v2, c2) = _naive_terms(z1, gamma, 1e-4), _naive_terms(z2, gamma, 1e-4)
    return lam * s + mu * (v1 + v2) / 2 + nu * (c1 + c2)


@pytest.mark.parametrize(
    ("lam", "mu", "nu", "gamma"), [(25.0, 25.0, 1.0, 1.0), (1.0, 3.0, 7.0, 2.0), (0, 0, 1, 1)]
)
def test_matches_a_naive_loop_of_the_papers_equations(lam: float, mu: float, nu: float, gamma: float) -> None:
    z1, z2 = 0.5 * _random(0), 0.5 * _random(1)  # std about 0.5: the variance hinge is active
    loss = VICRegLoss(lam, mu, nu, gamma=gamma)(z1, z2)
    assert loss.item() == pytest.approx(_naive(z1, z2, lam, mu, nu, gamma), rel=1e-10)


def test_terms_match_the_naive_loop() -> None:
    z = 2 * _random(2)
    v, c = _naive_terms(z, 3.0, 1e-4)
    assert variance_term(z, gamma=3.0).item() == pytest.approx(v, rel=1e-10)
    assert covariance_term(z).item() == pytest.approx(c, rel=1e-10)


def test_collapsed_views_pay_the_full_variance_hinge_only() -> None:
    z = torch.ones(5, 3, dtype=torch.float64)  # every image embedded to the same point
    expected = 25.0 * (1 - math.sqrt(1e-4))  # invariance 0, covariance 0, std sqrt(eps) per dimension
    assert VICRegLoss()(z, z).item() == pytest.approx(expected, rel=1e-12)


def test_spread_identical_decorrelated_views_cost_nothing() -> None:
    z = 2 * torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    assert VICRegLoss()(z, z).item() == pytest.approx(0.0, abs=1e-12)  # std > 1, Cov diagonal


def test_matches_lightly_vicreg_loss() -> None:
    lightly_loss = pytest.importorskip("lightly.loss")
    z1, z2 = 0.7 * _random(3, n=8, d=5), 0.7 * _random(4, n=8, d=5)
    theirs = lightly_loss.VICRegLoss()  # lambda (invariance) 25, mu (variance) 25, nu (covariance) 1
    assert VICRegLoss()(z1, z2).item() == pytest.approx(theirs(z1, z2).item(), rel=1e-10)
    theirs = lightly_loss.VICRegLoss(lambda_param=2.0, mu_param=3.0, nu_param=4.0)
    assert VICRegLoss(2.0, 3.0, 4.0)(z1, z2).item() == pytest.approx(theirs(z1, z2).item(), rel=1e-10)


@pytest.mark.parametrize(
    ("z1", "z2"),
    [(_random(0), _random(1)[:5]), (_random(0)[0], _random(1)[0]), (_random(0)[:1], _random(1)[:1])],
)
def test_bad_shapes_and_single_rows_raise(z1: torch.Tensor, z2: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="VICReg"):
        VICRegLoss()(z1, z2)


def test_negative_weight_raises() -> None:
    with pytest.raises(ConfigError, match="VICReg"):
        VICRegLoss(covariance_weight=-1.0)

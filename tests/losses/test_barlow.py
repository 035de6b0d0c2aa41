"""BarlowTwinsLoss against a naive loop of the paper's equations, hand-placed cases and lightly."""

from __future__ import annotations

import math

import pytest
import torch

from siamese.errors import ConfigError
from siamese.losses.barlow import BarlowTwinsLoss, off_diagonal, standardize


def _random(seed: int, n: int = 6, d: int = 4) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _naive(z1: torch.Tensor, z2: torch.Tensor, lam: float, eps: float) -> float:
    """Standardise each dimension over the batch (1/N variance), C_ij = sum_b a_bi b_bj / N, then eq. 1."""
    n, d = z1.shape

    def standardised(z: torch.Tensor) -> list[list[float]]:
        cols = []
        for j in range(d):
            col = [z[b, j].item() for b in range(n)]
            mean = sum(col) / n
            var = sum((v - mean) ** 2 for v in col) / n
            cols.append([(v - mean) / math.sqrt(var + eps) for v in col])
        return cols  # cols[j][b]

    a, b = standardised(z1), standardised(z2)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c_ij = sum(a[i][k] * b[j][k] for k in range(n)) / n
            loss += (1 - c_ij) ** 2 if i == j else lam * c_ij**2
    return loss


@pytest.mark.parametrize(("lam", "eps"), [(5e-3, 1e-5), (0.5, 0.0), (0.0, 1e-5)])
def test_matches_a_naive_loop_of_the_papers_equation(lam: float, eps: float) -> None:
    z1, z2 = _random(0), _random(1)
    loss = BarlowTwinsLoss(redundancy_weight=lam, eps=eps)(z1, z2)
    assert loss.item() == pytest.approx(_naive(z1, z2, lam, eps), rel=1e-10)


def test_identical_decorrelated_views_give_zero() -> None:
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    assert BarlowTwinsLoss(eps=0.0)(z, 3 * z + 2).item() == pytest.approx(0.0, abs=1e-12)  # C = I


def test_fully_redundant_dimensions_cost_lambda_per_off_diagonal_entry() -> None:
    col = torch.tensor([[0.3], [-1.2], [2.0], [0.1], [-0.4]], dtype=torch.float64)
    z = col.repeat(1, 3)  # every dimension the same: C is all ones, diagonal already 1
    loss = BarlowTwinsLoss(redundancy_weight=0.1, eps=0.0)(z, z)
    assert loss.item() == pytest.approx(0.1 * 3 * 2, rel=1e-12)


def test_anti_correlated_views_cost_four_per_dimension() -> None:
    z = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    assert BarlowTwinsLoss(eps=0.0)(z, -z).item() == pytest.approx(2 * (1 - (-1)) ** 2, abs=1e-12)


def test_standardize_uses_the_biased_batch_variance() -> None:
    a = standardize(_random(2), eps=0.0)
    torch.testing.assert_close(a.mean(0), torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(a.pow(2).mean(0), torch.ones(4, dtype=torch.float64))  # 1/N, not 1/(N-1)


def test_off_diagonal_drops_exactly_the_diagonal() -> None:
    m = torch.arange(9.0).reshape(3, 3)
    assert off_diagonal(m).tolist() == [1.0, 2.0, 3.0, 5.0, 6.0, 7.0]


def test_matches_lightly_barlow_twins_loss() -> None:
    lightly_loss = pytest.importorskip("lightly.loss")
    z1, z2 = _random(3, n=8, d=5), _random(4, n=8, d=5)
    theirs = lightly_loss.BarlowTwinsLoss()  # lambda_param 5e-3; F.batch_norm: 1/N variance, eps 1e-5
    assert BarlowTwinsLoss()(z1, z2).item() == pytest.approx(theirs(z1, z2).item(), rel=1e-10)
    theirs = lightly_loss.BarlowTwinsLoss(lambda_param=0.2)
    assert BarlowTwinsLoss(0.2)(z1, z2).item() == pytest.approx(theirs(z1, z2).item(), rel=1e-10)


@pytest.mark.parametrize(
    ("z1", "z2"),
    [(_random(0), _random(1)[:5]), (_random(0)[0], _random(1)[0]), (_random(0)[:1], _random(1)[:1])],
)
def test_bad_shapes_and_single_rows_raise(z1: torch.Tensor, z2: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="Barlow Twins"):
        BarlowTwinsLoss()(z1, z2)


def test_negative_lambda_raises() -> None:
    with pytest.raises(ConfigError, match="lambda"):
        BarlowTwinsLoss(-1.0)

"""Sinkhorn-Knopp marginals and SwAVLoss against naive loops and lightly's SwaVLoss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from siamese.errors import ConfigError
from siamese.losses.swav import SwAVLoss, sinkhorn, sinkhorn_plan

# (B=4, K=3) cosine scores; three samples prefer prototype 0, so equipartition has work to do.
S = torch.tensor([[0.9, 0.1, -0.2], [0.8, 0.3, 0.0], [0.7, -0.5, 0.2], [0.1, 0.2, 0.6]], dtype=torch.float64)
# Four views (2 global then 2 local) of the same 4 images, each (4, 3).
VIEWS = [
    S,
    torch.tensor(
        [[0.5, 0.6, -0.1], [0.9, 0.0, 0.1], [0.2, -0.3, 0.8], [-0.4, 0.7, 0.3]], dtype=torch.float64
    ),
    torch.tensor([[0.3, 0.3, 0.3], [0.1, 0.9, -0.6], [0.4, 0.0, 0.5], [0.0, -0.2, 0.9]], dtype=torch.float64),
    torch.tensor(
        [[-0.7, 0.2, 0.6], [0.6, 0.5, 0.4], [0.8, -0.8, 0.0], [0.2, 0.1, -0.3]], dtype=torch.float64
    ),
]
# (Q=3, K=3) scores of queued features from earlier batches.
QUEUED = [
    torch.tensor([[0.1, 0.9, 0.0], [-0.2, 0.8, 0.3], [0.0, 0.7, 0.6]], dtype=torch.float64),
    torch.tensor([[0.6, 0.1, 0.2], [0.3, 0.2, 0.9], [-0.1, 0.5, 0.4]], dtype=torch.float64),
]


def naive_sinkhorn(scores: torch.Tensor, eps: float, iterations: int) -> list[list[float]]:
    """SwAV's distributed_sinkhorn on one process, on lists: returns codes B * P as (B, K) rows."""
    b, k = scores.shape
    q = [[math.exp(float(scores[i][j]) / eps) for i in range(b)] for j in range(k)]  # K x B
    total = sum(map(sum, q))
    q = [[x / total for x in row] for row in q]
    for _ in range(iterations):
        q = [[x / sum(row) / k for x in row] for row in q]
        col = [sum(q[j][i] for j in range(k)) for i in range(b)]
        q = [[q[j][i] / col[i] / b for i in range(b)] for j in range(k)]
    return [[q[j][i] * b for j in range(k)] for i in range(b)]


def naive_swav(
    views: list[torch.Tensor],
    n_global: int,
    t: float,
    eps: float,
    it: int,
    queued: list[torch.Tensor] | None = None,
) -> float:
    """mean over global i of sum_{j != i} -mean_b sum_k q_i log softmax(s_j / t) / (V - 1)."""
    total = 0.0
    for i in range(n_global):
        if queued is None:
            codes = naive_sinkhorn(views[i], eps, it)
        else:
            codes = naive_sinkhorn(torch.cat([queued[i], views[i]]), eps, it)[len(queued[i]) :]
        sub = 0.0
        for j in range(len(views)):
            if j == i:
                continue
            rows = views[j].tolist()
            for b, row in enumerate(rows):
                log_z = math.log(sum(math.exp(x / t) for x in row))
                sub -= sum(codes[b][k] * (row[k] / t - log_z) for k in range(len(row))) / len(rows)
        total += sub / (len(views) - 1)
    return total / n_global


def test_plan_converges_to_both_marginals() -> None:
    plan = sinkhorn_plan(S, epsilon=0.05, iterations=50)  # (B, K)
    b, k = S.shape
    assert torch.allclose(plan.sum(dim=1), torch.full((b,), 1 / b, dtype=S.dtype), atol=1e-12)
    assert torch.allclose(plan.sum(dim=0), torch.full((k,), 1 / k, dtype=S.dtype), atol=1e-6)
    assert (plan >= 0).all()


def test_three_iterations_are_exact_only_on_the_last_normalised_axis() -> None:
    plan = sinkhorn_plan(S, epsilon=0.05, iterations=3)
    b, k = S.shape
    # Each round ends with the per-sample scaling, so samples sum to 1/B exactly ...
    assert torch.allclose(plan.sum(dim=1), torch.full((b,), 1 / b, dtype=S.dtype), atol=1e-12)
    # ... while prototype 0, preferred by most samples, still holds more than its 1/K share.
    assert plan.sum(dim=0)[0].item() > 1 / k + 0.1


def test_codes_are_b_times_the_plan_and_rows_are_distributions() -> None:
    codes = sinkhorn(S, epsilon=0.05, iterations=3)
    assert torch.allclose(codes, S.shape[0] * sinkhorn_plan(S, 0.05, 3), atol=1e-15)
    assert torch.allclose(codes.sum(dim=1), torch.ones(S.shape[0], dtype=S.dtype), atol=1e-12)


@pytest.mark.parametrize("iterations", [1, 3, 10])
def test_sinkhorn_matches_naive_transcription(iterations: int) -> None:
    expected = torch.tensor(naive_sinkhorn(S, 0.05, iterations), dtype=S.dtype)
    assert torch.allclose(sinkhorn(S, 0.05, iterations), expected, rtol=1e-10, atol=1e-14)


def test_sinkhorn_matches_lightly() -> None:
    swav_loss = pytest.importorskip("lightly.loss.swav_loss")
    for eps, iterations in [(0.05, 3), (0.1, 10)]:
        expected = swav_loss.sinkhorn(S.clone(), iterations=iterations, epsilon=eps)
        assert torch.allclose(sinkhorn(S, eps, iterations), expected, rtol=1e-10, atol=1e-14)


def test_sinkhorn_is_shift_invariant_and_does_not_overflow() -> None:
    # exp((s + 50) / 0.05) overflows even float64; subtracting the global max first does not.
    shifted = sinkhorn(S + 50, 0.05, 3)
    assert torch.isfinite(shifted).all()
    assert torch.allclose(shifted, sinkhorn(S, 0.05, 3), atol=1e-12)


def test_sinkhorn_has_no_gradient() -> None:
    scores = S.clone().requires_grad_()
    assert not sinkhorn(scores).requires_grad
    assert not sinkhorn_plan(scores).requires_grad


@pytest.mark.parametrize("n_global", [1, 2])
@pytest.mark.parametrize(("temperature", "iterations"), [(0.1, 3), (0.5, 7)])
def test_loss_matches_naive_loop(n_global: int, temperature: float, iterations: int) -> None:
    loss = SwAVLoss(temperature, 0.05, iterations)(VIEWS, n_global=n_global)
    expected = naive_swav(VIEWS, n_global, temperature, 0.05, iterations)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_loss_with_queue_matches_naive_loop_and_changes_the_codes() -> None:
    loss_fn = SwAVLoss(0.1, 0.05, 3)
    with_queue = loss_fn(VIEWS, n_global=2, queue_scores=QUEUED)
    assert with_queue.item() == pytest.approx(naive_swav(VIEWS, 2, 0.1, 0.05, 3, QUEUED), rel=1e-10)
    assert not math.isclose(with_queue.item(), loss_fn(VIEWS, n_global=2).item(), rel_tol=1e-3)


def test_matches_lightly_swav_loss() -> None:
    lightly_loss = pytest.importorskip("lightly.loss")
    ours = SwAVLoss(temperature=0.1, epsilon=0.05, sinkhorn_iterations=3)
    reference = lightly_loss.SwaVLoss(temperature=0.1, sinkhorn_iterations=3, sinkhorn_epsilon=0.05)
    # lightly takes global and local views as two lists, and returns shape (1,).
    expected = reference(VIEWS[:2], VIEWS[2:])
    assert ours(VIEWS, n_global=2).item() == pytest.approx(expected.item(), rel=1e-10)
    # lightly appends the queue after the batch, SwAV's code prepends it; the codes are the same.
    expected_q = reference(VIEWS[:2], VIEWS[2:], queue_outputs=QUEUED)
    assert ours(VIEWS, n_global=2, queue_scores=QUEUED).item() == pytest.approx(expected_q.item(), rel=1e-10)


def test_codes_are_targets_without_gradient() -> None:
    # Two views: loss = (CE(q_0, s_1) + CE(q_1, s_0)) / 2, so d loss / d s_0 comes only from s_0's
    # prediction of the fixed codes q_1: (softmax(s_0 / T) - q_1) / (2 T B).
    t = 0.1
    s0, s1 = VIEWS[0].clone().requires_grad_(), VIEWS[1].clone().requires_grad_()
    SwAVLoss(t, 0.05, 3)([s0, s1]).backward()
    q1 = sinkhorn(VIEWS[1], 0.05, 3)
    expected = (F.softmax(VIEWS[0] / t, dim=1) - q1) / (2 * t * VIEWS[0].shape[0])
    assert torch.allclose(s0.grad, expected, atol=1e-12)


@pytest.mark.parametrize(
    ("views", "n_global", "queued"),
    [
        ([S], 1, None),
        ([S, S[:3]], 2, None),
        ([S, torch.ones(4, 5, dtype=torch.float64)], 1, None),
        ([S, S], 0, None),
        ([S, S], 3, None),
        ([S, S], 2, QUEUED[:1]),
        ([S, S], 2, [torch.ones(2, 5), torch.ones(2, 5)]),
    ],
)
def test_bad_views_raise(views: list[torch.Tensor], n_global: int, queued: list[torch.Tensor] | None) -> None:
    with pytest.raises(ConfigError):
        SwAVLoss()(views, n_global=n_global, queue_scores=queued)


@pytest.mark.parametrize(
    ("scores", "eps", "iterations"), [(S, 0.0, 3), (S, 0.05, 0), (S[0], 0.05, 3), (S[:0], 0.05, 3)]
)
def test_bad_sinkhorn_args_raise(scores: torch.Tensor, eps: float, iterations: int) -> None:
    with pytest.raises(ConfigError, match="Sinkhorn"):
        sinkhorn(scores, eps, iterations)


@pytest.mark.parametrize("kwargs", [{"temperature": 0}, {"epsilon": -1}, {"sinkhorn_iterations": 0}])
def test_bad_loss_args_raise(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="SwAV"):
        SwAVLoss(**kwargs)

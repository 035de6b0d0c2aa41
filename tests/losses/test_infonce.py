"""info_nce / InfoNCELoss against a naive loop, MoCo's pseudocode and lightly's memory-bank NT-Xent."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from siamese.errors import ConfigError
from siamese.losses.infonce import InfoNCELoss, info_nce

from .points import circle

# (N, 2) queries and positive keys, (K, 2) queue: key 1 is far from its query and queue row 0 is
# close to query 0, so the positive is not always the largest logit. Radii differ from 1.
QUERY = circle([0, 90, 200], radii=[1.0, 2.0, 0.5])
KEY = circle([10, 160, 190], radii=[3.0, 1.0, 0.8])
QUEUE = circle([5, 45, 120, 250, 300], radii=[1.0, 0.4, 2.0, 1.5, 1.0])


def naive_info_nce(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, t: float) -> float:
    """Mean over queries of -log(exp(q.k / t) / (exp(q.k / t) + sum_j exp(q.n_j / t))), plain floats."""

    def unit(r: torch.Tensor) -> list[float]:
        norm = math.sqrt(sum(float(x) ** 2 for x in r))
        return [float(x) / norm for x in r]

    def dot(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    total = 0.0
    for q_row, k_row in zip(query, key, strict=True):
        q = unit(q_row)
        pos = math.exp(dot(q, unit(k_row)) / t)
        neg = sum(math.exp(dot(q, unit(n)) / t) for n in queue)
        total += -math.log(pos / (pos + neg))
    return total / len(query)


def moco_pseudocode(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, t: float) -> torch.Tensor:
    """Algorithm 1 of He et al. (2020), with ``queue`` as (K, C) rows instead of C x K."""
    q, k, queue = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(queue, dim=1)
    n, c = q.shape
    l_pos = torch.bmm(q.view(n, 1, c), k.view(n, c, 1)).view(n, 1)
    l_neg = torch.mm(q.view(n, c), queue.T)
    logits = torch.cat([l_pos, l_neg], dim=1)
    labels = torch.zeros(n, dtype=torch.long)
    return F.cross_entropy(logits / t, labels)


@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
def test_matches_naive_loop(temperature: float) -> None:
    loss = info_nce(QUERY, KEY, QUEUE, temperature)
    assert loss.item() == pytest.approx(naive_info_nce(QUERY, KEY, QUEUE, temperature), rel=1e-10)


def test_matches_moco_pseudocode_and_module_wraps_function() -> None:
    expected = moco_pseudocode(QUERY, KEY, QUEUE, 0.2)
    assert info_nce(QUERY, KEY, QUEUE, 0.2).item() == pytest.approx(expected.item(), rel=1e-12)
    assert InfoNCELoss(0.2)(QUERY, KEY, QUEUE).item() == pytest.approx(expected.item(), rel=1e-12)


def test_matches_lightly_ntxent_with_memory_bank() -> None:
    lightly_loss = pytest.importorskip("lightly.loss")
    t = 0.2
    reference = lightly_loss.NTXentLoss(temperature=t, memory_bank_size=(QUEUE.shape[0], QUEUE.shape[1]))
    # lightly scores against its bank *before* adding this batch; put our queue (unit rows) there.
    reference.memory_bank.bank = F.normalize(QUEUE, dim=1).clone()
    expected = reference(QUERY.clone().requires_grad_(), KEY)
    assert info_nce(QUERY, KEY, QUEUE, t).item() == pytest.approx(expected.item(), rel=1e-10)


def test_batch_keys_are_not_negatives() -> None:
    # Unlike NT-Xent, another query's key never enters the denominator: with one negative far away
    # the loss depends only on each query's own key and that negative.
    far = -QUERY[:1]
    alone = [info_nce(QUERY[i : i + 1], KEY[i : i + 1], far, 0.5).item() for i in range(3)]
    assert info_nce(QUERY, KEY, far, 0.5).item() == pytest.approx(sum(alone) / 3, rel=1e-12)


def test_empty_queue_gives_zero_loss() -> None:
    empty = QUEUE[:0]  # (0, D)
    assert info_nce(QUERY, KEY, empty, 0.2).item() == pytest.approx(0.0, abs=1e-12)


def test_gradient_flows_into_query_only() -> None:
    q, k, queue = (x.clone().requires_grad_() for x in (QUERY, KEY, QUEUE))
    info_nce(q, k, queue, 0.2).backward()
    assert q.grad is not None and torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0
    assert k.grad is None and queue.grad is None


@pytest.mark.parametrize(
    ("query", "key", "queue"),
    [
        (QUERY, KEY[:2], QUEUE),
        (QUERY, KEY, torch.ones(4, 3, dtype=torch.float64)),
        (QUERY[0], KEY[0], QUEUE),
        (QUERY, KEY, QUEUE[0]),
    ],
)
def test_bad_shapes_raise(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="InfoNCE"):
        info_nce(query, key, queue, 0.2)


@pytest.mark.parametrize("temperature", [0.0, -1.0])
def test_bad_temperature_raises(temperature: float) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        InfoNCELoss(temperature)
    with pytest.raises(ConfigError, match="temperature"):
        info_nce(QUERY, KEY, QUEUE, temperature)

"""TripletLoss (pml's TripletMarginLoss) against a naive per-triplet loop."""

from __future__ import annotations

import math

import pytest
import torch

from siamese.errors import ConfigError
from siamese.losses import TripletLoss

from .points import circle, long

EMB = circle([0, 30, 55, 100, 130, 200, 240, 300], radii=[1.0, 2.0, 0.5, 1.0, 1.4, 0.8, 1.0, 1.3])
LABELS = long([0, 0, 0, 1, 1, 2, 2, 3])

Triplets = list[tuple[int, int, int]]


def naive_value(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    """Euclidean distance of the L2-normalised points, or their cosine similarity."""
    x = x / torch.sqrt(sum(a * a for a in x))
    y = y / torch.sqrt(sum(b * b for b in y))
    if distance == "cosine":
        return sum(a * b for a, b in zip(x, y, strict=True))
    return torch.sqrt(sum((a - b) ** 2 for a, b in zip(x, y, strict=True)))


def label_triplets(labels: list) -> Triplets:
    n = len(labels)
    return [
        (a, p, q)
        for a in range(n)
        for p in range(n)
        for q in range(n)
        if a != p and labels[a] == labels[p] and labels[q] != labels[a]
    ]


def tuple_triplets(indices_tuple: tuple[torch.Tensor, ...]) -> Triplets:
    """Triplets of a pml tuple; pairs ``(a1, p, a2, n)`` combine every positive and negative of an anchor."""
    if len(indices_tuple) == 3:
        return list(zip(*(t.tolist() for t in indices_tuple), strict=True))
    a1, p, a2, n = (t.tolist() for t in indices_tuple)
    negatives = list(zip(a2, n, strict=True))
    return [(a, pp, nn) for a, pp in zip(a1, p, strict=True) for b, nn in negatives if a == b]


def naive_triplet(emb: torch.Tensor, triplets: Triplets, margin: float = 0.2, distance: str = "euclidean"):
    """Mean of ``max(0, d_ap - d_an + m)`` (similarities: ``s_an - s_ap + m``) over non-zero triplets."""
    active = []
    for a, p, q in triplets:
        ap, an = naive_value(emb[a], emb[p], distance), naive_value(emb[a], emb[q], distance)
        gap = an - ap if distance == "cosine" else ap - an
        if gap + margin > 0:
            active.append(gap + margin)
    if not active:
        return torch.zeros((), dtype=emb.dtype)
    return sum(active) / len(active)


def test_default_margin_is_0_2() -> None:
    assert TripletLoss().margin == 0.2


def test_hand_computed_three_points() -> None:
    # Unit circle at 0, 40 (class 0) and 60 degrees (class 1); chords are 2 sin(half the angle).
    emb = circle([0, 40, 60])
    loss = TripletLoss(margin=0.2)(emb, long([0, 0, 1]))
    # (0, 1, 2): 2 sin 20 - 2 sin 30 + 0.2 < 0 is inactive; (1, 0, 2): 2 sin 20 - 2 sin 10 + 0.2.
    by_hand = 2 * math.sin(math.radians(20)) - 2 * math.sin(math.radians(10)) + 0.2
    assert loss.item() == pytest.approx(by_hand, rel=1e-9)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("margin", [0.05, 0.2, 1.0])
def test_all_triplets_from_labels_match_naive_loop(margin: float, distance: str) -> None:
    loss = TripletLoss(margin=margin, distance=distance)(EMB, LABELS)
    expected = naive_triplet(EMB, label_triplets(LABELS.tolist()), margin, distance)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)


def test_gradient_matches_naive_loop() -> None:
    emb = EMB.clone().requires_grad_(True)
    TripletLoss(margin=0.5)(emb, LABELS).backward()
    naive_emb = EMB.clone().requires_grad_(True)
    naive_triplet(naive_emb, label_triplets(LABELS.tolist()), 0.5).backward()
    torch.testing.assert_close(emb.grad, naive_emb.grad)


def test_given_triplets_only() -> None:
    triplets = (long([0, 1, 3, 5]), long([2, 0, 4, 6]), long([3, 7, 2, 4]))
    loss = TripletLoss(margin=0.5)(EMB, LABELS, triplets)
    assert loss.item() == pytest.approx(naive_triplet(EMB, tuple_triplets(triplets), 0.5).item(), rel=1e-9)


def test_pair_tuple_becomes_triplets_sharing_an_anchor() -> None:
    pairs = (long([0, 0, 3]), long([1, 2, 4]), long([0, 3, 5]), long([3, 7, 0]))
    loss = TripletLoss(margin=1.0)(EMB, LABELS, pairs)
    triplets = tuple_triplets(pairs)
    assert triplets == [(0, 1, 3), (0, 2, 3), (3, 4, 7)]
    assert loss.item() == pytest.approx(naive_triplet(EMB, triplets, 1.0).item(), rel=1e-9)


def test_single_triplet() -> None:
    triplet = (long([0]), long([1]), long([3]))
    loss = TripletLoss(margin=1.5)(EMB, LABELS, triplet)
    expected = naive_value(EMB[0], EMB[1], "euclidean") - naive_value(EMB[0], EMB[3], "euclidean") + 1.5
    assert expected.item() > 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)


@pytest.mark.parametrize(
    ("labels", "indices"),
    [
        (long(list(range(8))), None),  # no positives
        (long([1] * 8), None),  # one class: no negatives
        (LABELS, (long([]), long([]), long([]))),
    ],
)
def test_no_triplets_gives_zero_with_a_usable_graph(labels, indices) -> None:
    emb = EMB.clone().requires_grad_(True)
    loss = TripletLoss()(emb, labels, indices)
    assert loss.ndim == 0 and loss.item() == 0.0
    loss.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))


def test_all_identical_embeddings_cost_the_margin() -> None:
    emb = torch.ones(6, 3, dtype=torch.float64, requires_grad=True)
    loss = TripletLoss(margin=0.3)(emb, long([0, 0, 1, 1, 2, 2]))
    assert loss.item() == pytest.approx(0.3, rel=1e-6)
    loss.backward()
    assert torch.isfinite(emb.grad).all()


def test_euclidean_normalises_embeddings() -> None:
    loss = TripletLoss()
    assert loss(EMB * 5, LABELS).item() == pytest.approx(loss(EMB, LABELS).item(), rel=1e-9)


@pytest.mark.parametrize("margin", [0.0, -0.2, math.nan])
def test_nonpositive_margin_is_a_config_error(margin: float) -> None:
    with pytest.raises(ConfigError, match="margin"):
        TripletLoss(margin=margin)


def test_unknown_distance_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="euclidean, cosine"):
        TripletLoss(distance="hamming")

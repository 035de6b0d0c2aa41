"""MarginContrastiveLoss against a naive per-pair loop of Hadsell, Chopra & LeCun (2006)."""

from __future__ import annotations

import math

import pytest
import torch

from siamese.errors import ConfigError
from siamese.losses import MarginContrastiveLoss

from .points import circle, long

# (B, 2): three classes at different radii, so raw vs normalised Euclidean distances differ.
EMB = circle([0, 25, 60, 100, 170, 200, 290], radii=[1.0, 1.3, 0.7, 1.0, 1.6, 0.9, 1.2])
LABELS = long([0, 0, 0, 1, 1, 2, 2])


def naive_distance(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    if distance == "euclidean":
        return torch.sqrt(sum((a - b) ** 2 for a, b in zip(x, y, strict=True)))
    dot = sum(a * b for a, b in zip(x, y, strict=True))
    norm_x = torch.sqrt(sum(a * a for a in x))
    norm_y = torch.sqrt(sum(b * b for b in y))
    return 1 - dot / (norm_x * norm_y)


def all_pairs(labels: torch.Tensor) -> list[tuple[int, int, bool]]:
    """Every unordered pair ``(i, j, is_same)``, ``i < j``."""
    lab = labels.tolist()
    return [(i, j, lab[i] == lab[j]) for i in range(len(lab)) for j in range(i + 1, len(lab))]


def pairs_from_tuple(indices_tuple: tuple[torch.Tensor, ...]) -> list[tuple[int, int, bool]]:
    """The pairs a pml index tuple names; a triplet ``(a, p, n)`` is the pairs ``(a, p)``, ``(a, n)``."""
    if len(indices_tuple) == 3:
        a, p, n = (t.tolist() for t in indices_tuple)
        a1, a2 = a, a
    else:
        a1, p, a2, n = (t.tolist() for t in indices_tuple)
    positives = [(i, j, True) for i, j in zip(a1, p, strict=True)]
    return positives + [(i, j, False) for i, j in zip(a2, n, strict=True)]


def naive_margin(
    emb: torch.Tensor,
    pairs: list[tuple[int, int, bool]],
    margin: float = 1.0,
    distance: str = "euclidean",
) -> torch.Tensor:
    """Mean over the pairs of ``y * D**2 / 2 + (1 - y) * max(0, m - D)**2 / 2``, one pair at a time."""
    if not pairs:
        return torch.zeros((), dtype=emb.dtype)
    total = torch.zeros((), dtype=emb.dtype)
    for i, j, same in pairs:
        d = naive_distance(emb[i], emb[j], distance)
        total = total + (0.5 * d**2 if same else 0.5 * torch.clamp(margin - d, min=0) ** 2)
    return total / len(pairs)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("margin", [0.3, 1.0, 2.5])
def test_all_pairs_from_labels_match_naive_loop(margin: float, distance: str) -> None:
    loss = MarginContrastiveLoss(margin=margin, distance=distance)(EMB, LABELS)
    expected = naive_margin(EMB, all_pairs(LABELS), margin, distance)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)


def test_some_negatives_beyond_the_margin_are_inactive_but_still_counted() -> None:
    # Margin 1: the 0/100 and 0/170 negatives are farther than 1, yet the mean divides by every pair.
    pairs = all_pairs(LABELS)
    active = [p for p in pairs if p[2] or naive_distance(EMB[p[0]], EMB[p[1]], "euclidean") < 1.0]
    assert 0 < len(active) < len(pairs)
    loss = MarginContrastiveLoss(margin=1.0)(EMB, LABELS)
    assert loss.item() == pytest.approx(naive_margin(EMB, pairs).item(), rel=1e-9)
    assert loss.item() < naive_margin(EMB, active).item()


def test_euclidean_uses_raw_embeddings_and_cosine_is_scale_free() -> None:
    scaled = EMB * 3.0
    euclid = MarginContrastiveLoss(distance="euclidean")
    cosine = MarginContrastiveLoss(distance="cosine")
    assert euclid(scaled, LABELS).item() == pytest.approx(naive_margin(scaled, all_pairs(LABELS)).item())
    assert euclid(scaled, LABELS).item() != pytest.approx(euclid(EMB, LABELS).item())
    assert cosine(scaled, LABELS).item() == pytest.approx(cosine(EMB, LABELS).item(), rel=1e-9)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_gradient_matches_naive_loop(distance: str) -> None:
    emb = EMB.clone().requires_grad_(True)
    MarginContrastiveLoss(margin=1.2, distance=distance)(emb, LABELS).backward()
    naive_emb = EMB.clone().requires_grad_(True)
    naive_margin(naive_emb, all_pairs(LABELS), 1.2, distance).backward()
    torch.testing.assert_close(emb.grad, naive_emb.grad)


def test_given_pair_subset_only_counts_those_pairs() -> None:
    indices = (long([0, 3, 5]), long([2, 4, 6]), long([1, 2, 4, 6]), long([3, 3, 5, 0]))
    loss = MarginContrastiveLoss(margin=1.5)(EMB, LABELS, indices)
    expected = naive_margin(EMB, pairs_from_tuple(indices), margin=1.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)
    assert loss.item() != pytest.approx(MarginContrastiveLoss(margin=1.5)(EMB, LABELS).item())


def test_triplet_tuple_counts_as_anchor_positive_and_anchor_negative_pairs() -> None:
    triplets = (long([0, 1, 3]), long([1, 2, 4]), long([3, 5, 0]))
    loss = MarginContrastiveLoss(margin=1.5)(EMB, LABELS, triplets)
    expected = naive_margin(EMB, pairs_from_tuple(triplets), margin=1.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)


def test_single_positive_and_single_negative_pair_is_not_dropped() -> None:
    # pml's GenericPairLoss returns 0 when every index tensor has length <= 1.
    indices = (long([0]), long([1]), long([0]), long([3]))
    loss = MarginContrastiveLoss(margin=2.0)(EMB, LABELS, indices)
    d_pos = naive_distance(EMB[0], EMB[1], "euclidean")
    d_neg = naive_distance(EMB[0], EMB[3], "euclidean")
    by_hand = (0.5 * d_pos**2 + 0.5 * (2.0 - d_neg) ** 2) / 2
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-9)
    assert loss.item() > 0


ONE_POSITIVE = (long([0]), long([1]), long([]), long([]))
ONE_NEGATIVE = (long([]), long([]), long([0]), long([3]))


@pytest.mark.parametrize("indices", [ONE_POSITIVE, ONE_NEGATIVE])
def test_single_pair_of_one_kind(indices: tuple[torch.Tensor, ...]) -> None:
    loss = MarginContrastiveLoss(margin=2.0)(EMB, LABELS, indices)
    expected = naive_margin(EMB, pairs_from_tuple(indices), margin=2.0)
    assert expected.item() > 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)


def test_no_positive_pairs_averages_the_negatives() -> None:
    labels = long(list(range(len(EMB))))
    loss = MarginContrastiveLoss(margin=1.5)(EMB, labels)
    pairs = all_pairs(labels)
    assert not any(same for _, _, same in pairs)
    assert loss.item() == pytest.approx(naive_margin(EMB, pairs, margin=1.5).item(), rel=1e-9)
    assert loss.item() > 0


def test_one_class_has_only_positive_pairs() -> None:
    labels = long([4] * len(EMB))
    loss = MarginContrastiveLoss()(EMB, labels)
    pairs = all_pairs(labels)
    half_squares = [0.5 * naive_distance(EMB[i], EMB[j], "euclidean") ** 2 for i, j, _ in pairs]
    mean_half_sq = sum(half_squares) / len(pairs)
    assert loss.item() == pytest.approx(mean_half_sq.item(), rel=1e-9)


def test_all_identical_embeddings() -> None:
    # D = 0 everywhere: positives cost 0, each negative costs margin**2 / 2.
    emb = torch.ones(6, 3, dtype=torch.float64, requires_grad=True)
    labels = long([0, 0, 0, 1, 1, 2])
    loss = MarginContrastiveLoss(margin=0.8)(emb, labels)
    n_pos, n_neg = 4, 11  # unordered: 3 + 1 positive pairs, 15 - 4 negative pairs
    assert loss.item() == pytest.approx(0.5 * 0.8**2 * n_neg / (n_pos + n_neg), rel=1e-9)
    loss.backward()
    assert torch.isfinite(emb.grad).all()


@pytest.mark.parametrize(
    ("emb", "labels", "indices"),
    [
        (EMB[:1], long([0]), None),
        (EMB, LABELS, (long([]), long([]), long([]), long([]))),
        (EMB, LABELS, (long([]), long([]), long([]))),
    ],
)
def test_no_pairs_gives_zero_with_a_usable_graph(emb, labels, indices) -> None:
    emb = emb.clone().requires_grad_(True)
    loss = MarginContrastiveLoss()(emb, labels, indices)
    assert loss.ndim == 0 and loss.item() == 0.0
    loss.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))


def test_float32_batch_matches_float64() -> None:
    loss32 = MarginContrastiveLoss(margin=1.0)(EMB.float(), LABELS)
    assert loss32.dtype == torch.float32
    assert loss32.item() == pytest.approx(naive_margin(EMB, all_pairs(LABELS)).item(), rel=1e-5)


@pytest.mark.parametrize("margin", [0.0, -1.0, math.nan])
def test_nonpositive_margin_is_a_config_error(margin: float) -> None:
    with pytest.raises(ConfigError, match="margin"):
        MarginContrastiveLoss(margin=margin)


def test_unknown_distance_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="euclidean, cosine"):
        MarginContrastiveLoss(distance="manhattan")

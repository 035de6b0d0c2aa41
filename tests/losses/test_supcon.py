"""SupConLoss against naive per-anchor loops of Khosla et al. (2020) and Robinson et al. (2021)."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.losses import SupConLoss as PmlSupConLoss

from siamese.errors import ConfigError
from siamese.losses import SupConLoss

from .points import circle, long

# (B, 2): classes 0 and 1 have positives; 2 and 3 are singletons (anchors without positives that
# still sit in everyone else's denominator). Radii differ so normalisation matters.
EMB = circle([0, 20, 50, 110, 140, 200, 260, 320], radii=[1.0, 1.5, 0.8, 1.0, 1.2, 0.7, 1.1, 1.0])
LABELS = long([0, 0, 0, 1, 1, 1, 2, 3])

Pairs = list[tuple[int, int]]


def naive_similarity(x: torch.Tensor, y: torch.Tensor, distance: str) -> torch.Tensor:
    x = x / torch.sqrt(sum(a * a for a in x))
    y = y / torch.sqrt(sum(b * b for b in y))
    if distance == "cosine":
        return sum(a * b for a, b in zip(x, y, strict=True))
    return -torch.sqrt(sum((a - b) ** 2 for a, b in zip(x, y, strict=True)))


def label_pairs(labels: list) -> tuple[Pairs, Pairs]:
    """All ordered positive and negative pairs ``(anchor, other)``, ``anchor != other``."""
    n = len(labels)
    pos = [(i, j) for i in range(n) for j in range(n) if i != j and labels[i] == labels[j]]
    neg = [(i, j) for i in range(n) for j in range(n) if labels[i] != labels[j]]
    return pos, neg


def tuple_pairs(indices_tuple: tuple[torch.Tensor, ...]) -> tuple[Pairs, Pairs]:
    """Positive and negative pairs of a pml index tuple (triplets give ``(a, p)`` and ``(a, n)``)."""
    if len(indices_tuple) == 3:
        a, p, n = (t.tolist() for t in indices_tuple)
        return list(zip(a, p, strict=True)), list(zip(a, n, strict=True))
    a1, p, a2, n = (t.tolist() for t in indices_tuple)
    return list(zip(a1, p, strict=True)), list(zip(a2, n, strict=True))


def naive_supcon(
    rows: list[torch.Tensor],
    pos_pairs: Pairs,
    neg_pairs: Pairs,
    temperature: float = 0.1,
    beta: float = 0.0,
    distance: str = "cosine",
) -> torch.Tensor:
    """Mean over anchors with positives of ``-1/|P| sum_p log(exp(s_ip/t) / Z_i)``, one anchor at a time.

    ``Z_i = sum_p exp(s_ip/t) + sum_n w_n exp(s_in/t)`` with ``w_n = |N| exp(b s_in) / sum_k exp(b s_ik)``.
    """
    per_anchor = []
    for i in range(len(rows)):
        positives = sorted({j for a, j in pos_pairs if a == i})
        negatives = sorted({k for a, k in neg_pairs if a == i})
        if not positives:
            continue
        s_pos = [naive_similarity(rows[i], rows[j], distance) for j in positives]
        s_neg = [naive_similarity(rows[i], rows[k], distance) for k in negatives]
        z = sum(torch.exp(s / temperature) for s in s_pos)
        if s_neg:
            norm = sum(torch.exp(beta * s) for s in s_neg)
            weights = [len(s_neg) * torch.exp(beta * s) / norm for s in s_neg]
            z = z + sum(w * torch.exp(s / temperature) for w, s in zip(weights, s_neg, strict=True))
        terms = [-torch.log(torch.exp(s / temperature) / z) for s in s_pos]
        per_anchor.append(sum(terms) / len(terms))
    if not per_anchor:
        return torch.zeros((), dtype=torch.float64)
    return sum(per_anchor) / len(per_anchor)


def naive_from_labels(emb: torch.Tensor, labels: torch.Tensor, **kwargs) -> torch.Tensor:
    return naive_supcon(list(emb), *label_pairs(labels.tolist()), **kwargs)


@pytest.mark.parametrize("temperature", [0.07, 0.5, 1.0])
@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_all_pairs_from_labels_match_naive_loop(temperature: float, distance: str) -> None:
    loss = SupConLoss(temperature=temperature, distance=distance)(EMB, LABELS)
    expected = naive_from_labels(EMB, LABELS, temperature=temperature, distance=distance)
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)


@pytest.mark.parametrize("views", [2, 3])
def test_multi_view_matches_naive_loop_over_views(views: int) -> None:
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(5, views, 4, generator=gen, dtype=torch.float64)  # (B, V, D)
    labels = long([0, 0, 1, 2, 2])
    rows = [(b, v) for b in range(5) for v in range(views)]  # views of one image share its label
    grid = [(x, y, labels[rx[0]] == labels[ry[0]]) for x, rx in enumerate(rows) for y, ry in enumerate(rows)]
    pos = [(x, y) for x, y, same in grid if same and x != y]
    neg = [(x, y) for x, y, same in grid if not same]
    expected = naive_supcon([emb[b, v] for b, v in rows], pos, neg, temperature=0.2)
    loss = SupConLoss(temperature=0.2)(emb, labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)


def test_multi_view_unique_labels_make_only_the_other_views_positive() -> None:
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(4, 2, 3, generator=gen, dtype=torch.float64)  # (B, V, D)
    flat = list(emb.reshape(8, 3))
    pos = [(2 * b, 2 * b + 1) for b in range(4)] + [(2 * b + 1, 2 * b) for b in range(4)]
    neg = [(x, y) for x in range(8) for y in range(8) if x // 2 != y // 2]
    expected = naive_supcon(flat, pos, neg)
    assert SupConLoss()(emb, long([0, 1, 2, 3])).item() == pytest.approx(expected.item(), rel=1e-9)
    assert SupConLoss()(emb).item() == pytest.approx(expected.item(), rel=1e-9)


def test_multi_view_indices_tuple_indexes_the_flattened_rows() -> None:
    gen = torch.Generator().manual_seed(2)
    emb = torch.randn(3, 2, 3, generator=gen, dtype=torch.float64)  # rows b * 2 + v
    indices = (long([0, 2]), long([1, 3]), long([0, 0, 2]), long([4, 5, 4]))
    expected = naive_supcon(list(emb.reshape(6, 3)), *tuple_pairs(indices))
    assert SupConLoss()(emb, long([0, 0, 1]), indices).item() == pytest.approx(expected.item(), rel=1e-9)


def test_beta_zero_is_plain_supcon_and_tiny_beta_is_continuous() -> None:
    plain = naive_from_labels(EMB, LABELS)
    assert SupConLoss(beta=0.0)(EMB, LABELS).item() == pytest.approx(plain.item(), rel=1e-12)
    # A tiny beta runs the weighting code path, which must reduce to the plain loss.
    assert SupConLoss(beta=1e-9)(EMB, LABELS).item() == pytest.approx(plain.item(), rel=1e-7)


@pytest.mark.parametrize("beta", [0.5, 2.0, 8.0])
def test_hardness_weighted_negatives_match_naive_loop(beta: float) -> None:
    loss = SupConLoss(temperature=0.2, beta=beta)(EMB, LABELS)
    expected = naive_from_labels(EMB, LABELS, temperature=0.2, beta=beta)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)
    # Weights grow with similarity, so the denominator (and the loss) grows with beta.
    assert loss.item() > SupConLoss(temperature=0.2)(EMB, LABELS).item()


@pytest.mark.parametrize("beta", [0.0, 3.0])
def test_gradient_matches_naive_loop(beta: float) -> None:
    emb = EMB.clone().requires_grad_(True)
    SupConLoss(temperature=0.3, beta=beta)(emb, LABELS).backward()
    naive_emb = EMB.clone().requires_grad_(True)
    naive_from_labels(naive_emb, LABELS, temperature=0.3, beta=beta).backward()
    torch.testing.assert_close(emb.grad, naive_emb.grad)


@pytest.mark.parametrize("beta", [0.0, 1.5])
def test_mined_pairs_restrict_positives_and_the_denominator(beta: float) -> None:
    # Anchor 0 keeps one positive and its hardest negative only; anchor 6 has negatives but no positive.
    indices = (long([0, 3, 4]), long([1, 5, 3]), long([0, 3, 3, 6]), long([3, 2, 7, 0]))
    loss = SupConLoss(temperature=0.2, beta=beta)(EMB, LABELS, indices)
    expected = naive_supcon(list(EMB), *tuple_pairs(indices), temperature=0.2, beta=beta)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)
    assert loss.item() != pytest.approx(SupConLoss(temperature=0.2, beta=beta)(EMB, LABELS).item())


def test_triplet_tuple_gives_anchor_positive_and_anchor_negative_pairs() -> None:
    triplets = (long([0, 0, 3]), long([1, 2, 4]), long([3, 7, 0]))
    loss = SupConLoss(beta=1.0)(EMB, LABELS, triplets)
    expected = naive_supcon(list(EMB), *tuple_pairs(triplets), beta=1.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9)


def test_single_positive_and_single_negative_pair_is_not_dropped() -> None:
    # pml's GenericPairLoss returns 0 when every index tensor has length <= 1.
    indices = (long([0]), long([1]), long([0]), long([3]))
    loss = SupConLoss()(EMB, LABELS, indices)
    s_p, s_n = naive_similarity(EMB[0], EMB[1], "cosine"), naive_similarity(EMB[0], EMB[3], "cosine")
    by_hand = -torch.log(torch.exp(s_p / 0.1) / (torch.exp(s_p / 0.1) + torch.exp(s_n / 0.1)))
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-9)
    assert loss.item() > 0


@pytest.mark.parametrize(
    ("labels", "indices"),
    [
        (long(list(range(8))), None),
        (LABELS, (long([]), long([]), long([0]), long([3]))),
        (LABELS, (long([]), long([]), long([]))),
    ],
)
def test_no_positive_pairs_gives_zero_with_a_usable_graph(labels, indices) -> None:
    emb = EMB.clone().requires_grad_(True)
    loss = SupConLoss(beta=1.0)(emb, labels, indices)
    assert loss.ndim == 0 and loss.item() == 0.0
    loss.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))


@pytest.mark.parametrize("beta", [0.0, 2.0])
def test_one_class_has_no_negatives_and_follows_the_formula(beta: float) -> None:
    labels = long([0] * 8)
    emb = EMB.clone().requires_grad_(True)
    loss = SupConLoss(beta=beta)(emb, labels)
    assert loss.item() == pytest.approx(naive_from_labels(EMB, labels).item(), rel=1e-9)
    loss.backward()
    assert torch.isfinite(emb.grad).all()


@pytest.mark.parametrize("labels", [[0, 0, 0, 0, 0], [0, 0, 1, 1, 2]])
def test_all_identical_embeddings_give_log_of_denominator_size(labels: list[int]) -> None:
    # Every similarity is 1, so each anchor's term is log(B - 1) whatever the classes are.
    emb = torch.ones(5, 3, dtype=torch.float64, requires_grad=True)
    loss = SupConLoss(beta=2.0)(emb, long(labels))
    assert loss.item() == pytest.approx(math.log(4), rel=1e-9)
    loss.backward()
    assert torch.isfinite(emb.grad).all()


def test_agrees_with_pml_supcon_in_the_plain_case() -> None:
    gen = torch.Generator().manual_seed(3)
    emb = torch.randn(12, 5, generator=gen, dtype=torch.float64)
    labels = long([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4])
    for temperature in (0.1, 0.5):
        ours = SupConLoss(temperature=temperature)(emb, labels)
        theirs = PmlSupConLoss(temperature=temperature)(emb, labels)
        assert ours.item() == pytest.approx(theirs.item(), rel=1e-9)
    views = emb.reshape(6, 2, 5)  # (B, V, D): pml sees the flattened rows with repeated labels
    ours = SupConLoss()(views, labels[::2])
    theirs = PmlSupConLoss()(emb, labels[::2].repeat_interleave(2))
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-9)
    indices = (long([0, 3, 5]), long([1, 4, 8]), long([0, 3, 5, 5]), long([9, 0, 1, 11]))
    ours = SupConLoss()(emb, labels, indices)
    assert ours.item() == pytest.approx(PmlSupConLoss()(emb, labels, indices).item(), rel=1e-9)


def test_where_pml_supcon_differs() -> None:
    """pml returns 0 when the batch has no negative pair and averages only non-zero anchor losses
    (AvgNonZeroReducer); the brief's formula has a finite loss without negatives and averages over
    every anchor that has a positive. Both differences show up when negatives are missing."""
    one_class = long([0] * 8)
    assert PmlSupConLoss()(EMB, one_class).item() == 0.0
    assert SupConLoss()(EMB, one_class).item() == pytest.approx(naive_from_labels(EMB, one_class).item())
    assert SupConLoss()(EMB, one_class).item() > 0
    # Anchor 0 has one positive and no negative (its term is exactly 0); anchor 3 has both.
    indices = (long([0, 3]), long([1, 4]), long([3]), long([0]))
    ours = SupConLoss()(EMB, LABELS, indices)
    assert ours.item() == pytest.approx(naive_supcon(list(EMB), *tuple_pairs(indices)).item(), rel=1e-9)
    assert PmlSupConLoss()(EMB, LABELS, indices).item() == pytest.approx(2 * ours.item(), rel=1e-9)


@pytest.mark.parametrize("temperature", [0.0, -0.1, math.nan])
def test_nonpositive_temperature_is_a_config_error(temperature: float) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        SupConLoss(temperature=temperature)


@pytest.mark.parametrize("beta", [-0.5, math.nan])
def test_negative_beta_is_a_config_error(beta: float) -> None:
    with pytest.raises(ConfigError, match="beta"):
        SupConLoss(beta=beta)


def test_unknown_distance_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="euclidean, cosine"):
        SupConLoss(distance="dot")

"""Miners: registry behaviour, index tuples against naive loops, and every miner with every loss."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
from pytorch_metric_learning.miners import BatchHardMiner, MultiSimilarityMiner, PairMarginMiner

from siamese.errors import ConfigError
from siamese.losses import MINERS, MarginContrastiveLoss, SupConLoss, TripletLoss, get_miner, make_distance

from .points import circle, long
from .test_margin import naive_margin, pairs_from_tuple
from .test_supcon import naive_supcon, tuple_pairs
from .test_triplet import naive_triplet, tuple_triplets

# Unit circle, all pairwise angle gaps distinct, so every hardest/easiest pair is unique.
ANGLES = [0, 11, 29, 58, 96, 141, 187, 236, 290, 331]
EMB = circle(ANGLES)
LABELS = long([0, 1, 0, 2, 1, 0, 2, 1, 2, 3])  # class 3 is a singleton (e.g. a forgery)


def chord(i: int, j: int) -> float:
    """Euclidean distance on the unit circle, from the angles alone."""
    gap = abs(ANGLES[i] - ANGLES[j]) % 360
    return 2 * torch.sin(torch.deg2rad(torch.tensor(min(gap, 360 - gap) / 2.0))).item()


def cosine(i: int, j: int) -> float:
    return 1 - chord(i, j) ** 2 / 2


def positives(i: int) -> list[int]:
    return [j for j in range(len(ANGLES)) if j != i and LABELS[j] == LABELS[i]]


def negatives(i: int) -> list[int]:
    return [j for j in range(len(ANGLES)) if LABELS[j] != LABELS[i]]


def as_sets(indices_tuple: tuple[torch.Tensor, ...]) -> tuple[set, ...]:
    if len(indices_tuple) == 3:
        return (set(zip(*(t.tolist() for t in indices_tuple), strict=True)),)
    a1, p, a2, n = (t.tolist() for t in indices_tuple)
    return set(zip(a1, p, strict=True)), set(zip(a2, n, strict=True))


def test_none_gives_no_miner() -> None:
    assert get_miner(None) is None
    assert get_miner("none") is None


def test_each_name_builds_the_pml_miner_with_its_defaults() -> None:
    assert isinstance(get_miner("batchhard"), BatchHardMiner)
    multi = get_miner("multisimilarity")
    assert isinstance(multi, MultiSimilarityMiner) and multi.epsilon == 0.1
    pair = get_miner("pairmargin")
    assert isinstance(pair, PairMarginMiner) and (pair.pos_margin, pair.neg_margin) == (0.2, 0.8)
    assert get_miner("pairmargin", pos_margin=0.1, neg_margin=0.5).neg_margin == 0.5


def test_instance_passes_through() -> None:
    miner = PairMarginMiner()
    assert get_miner(miner) is miner
    with pytest.raises(ConfigError):
        get_miner(miner, pos_margin=0.1)


def test_distance_name_becomes_a_pml_distance() -> None:
    assert isinstance(get_miner("batchhard", distance="cosine").distance, CosineSimilarity)
    euclid = get_miner("multisimilarity", distance="euclidean").distance
    assert isinstance(euclid, LpDistance) and euclid.normalize_embeddings
    assert not make_distance("euclidean", normalize=False).normalize_embeddings
    with pytest.raises(ConfigError, match="euclidean, cosine"):
        get_miner("batchhard", distance="chebyshev")


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as err:
        get_miner("semihard")
    assert all(name in str(err.value) for name in MINERS)


@pytest.mark.parametrize(("name", "kwargs"), [("batchhard", {"epsilon": 0.1}), ("none", {"epsilon": 0.1})])
def test_unknown_option_is_a_config_error(name: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="epsilon"):
        get_miner(name, **kwargs)


@pytest.mark.parametrize("name", ["multisimilarity", "batchhard", "pairmargin"])
def test_miners_return_valid_index_tuples(name: str) -> None:
    emb = EMB.float().requires_grad_(True)
    mined = get_miner(name)(emb, LABELS)
    assert isinstance(mined, tuple) and len(mined) in (3, 4)
    assert all(t.dtype == torch.long and t.ndim == 1 and not t.requires_grad for t in mined)
    a1, p, a2, n = mined if len(mined) == 4 else (mined[0], mined[1], mined[0], mined[2])
    assert len(a1) > 0 and len(a2) > 0
    assert torch.equal(LABELS[a1], LABELS[p]) and bool((a1 != p).all())
    assert bool((LABELS[a2] != LABELS[n]).all())


def test_batchhard_picks_the_farthest_positive_and_nearest_negative() -> None:
    expected = set()
    for a in range(len(ANGLES)):
        if positives(a) and negatives(a):
            hardest_pos = max(positives(a), key=lambda j: chord(a, j))
            hardest_neg = min(negatives(a), key=lambda j: chord(a, j))
            expected.add((a, hardest_pos, hardest_neg))
    mined = get_miner("batchhard")(EMB, LABELS)
    assert len(mined) == 3
    assert as_sets(mined) == (expected,)
    assert (0, 5, 1) in expected  # 0 deg: farthest class-0 point is 141, nearest other is 11


@pytest.mark.parametrize(("pos_margin", "neg_margin"), [(0.2, 0.8), (0.9, 0.6)])
def test_pairmargin_keeps_far_positives_and_near_negatives(pos_margin: float, neg_margin: float) -> None:
    n = len(ANGLES)
    pos = {(i, j) for i in range(n) for j in positives(i) if chord(i, j) > pos_margin}
    neg = {(i, j) for i in range(n) for j in negatives(i) if chord(i, j) < neg_margin}
    assert 0 < len(neg) < sum(len(negatives(i)) for i in range(n))
    kwargs = {} if pos_margin == 0.2 else {"pos_margin": pos_margin, "neg_margin": neg_margin}
    assert as_sets(get_miner("pairmargin", **kwargs)(EMB, LABELS)) == (pos, neg)


def test_pairmargin_margins_filter_positives_too() -> None:
    pos, _ = as_sets(get_miner("pairmargin", pos_margin=0.9)(EMB, LABELS))
    all_pos = sum(len(positives(i)) for i in range(len(ANGLES)))
    assert 0 < len(pos) < all_pos


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5])
def test_multisimilarity_keeps_pairs_violating_the_other_side_by_epsilon(epsilon: float) -> None:
    # Positive (i, j) kept if s_ij - eps < the most similar negative of i;
    # negative (i, k) kept if s_ik + eps > the least similar positive of i.
    n = len(ANGLES)
    pos, neg = set(), set()
    for i in range(n):
        if not positives(i) or not negatives(i):
            continue
        hardest_neg_sim = max(cosine(i, k) for k in negatives(i))
        hardest_pos_sim = min(cosine(i, j) for j in positives(i))
        pos |= {(i, j) for j in positives(i) if cosine(i, j) - epsilon < hardest_neg_sim}
        neg |= {(i, k) for k in negatives(i) if cosine(i, k) + epsilon > hardest_pos_sim}
    assert as_sets(get_miner("multisimilarity", epsilon=epsilon)(EMB, LABELS)) == (pos, neg)


@pytest.mark.parametrize("name", ["multisimilarity", "batchhard", "pairmargin"])
def test_mined_tuples_feed_each_loss(name: str) -> None:
    mined = get_miner(name)(EMB, LABELS)
    margin = MarginContrastiveLoss(margin=1.2)(EMB, LABELS, mined)
    assert margin.item() == pytest.approx(naive_margin(EMB, pairs_from_tuple(mined), 1.2).item(), rel=1e-9)
    supcon = SupConLoss(temperature=0.3, beta=1.0)(EMB, LABELS, mined)
    expected = naive_supcon(list(EMB), *tuple_pairs(mined), temperature=0.3, beta=1.0)
    assert supcon.item() == pytest.approx(expected.item(), rel=1e-9)
    triplet = TripletLoss(margin=0.5)(EMB, LABELS, mined)
    assert triplet.item() == pytest.approx(naive_triplet(EMB, tuple_triplets(mined), 0.5).item(), rel=1e-9)

"""ArcFace, CosFace and sub-center ArcFace against the published formulas, written as naive loops."""

from __future__ import annotations

import math

import pytest
import torch

from siamese.errors import ConfigError
from siamese.losses import ArcFaceLoss, CosFaceLoss, SubCenterArcFaceLoss, get_loss

# Embeddings on circles in 2-D (norms differ: the losses compare angles only), labels of 3 classes.
ANGLES = [0.1, 2.0, 4.0, 1.0, 5.5]
NORMS = [1.0, 2.0, 0.5, 1.5, 3.0]
LABELS = [0, 1, 2, 0, 2]
# Class weights at 0, 120 and 240 degrees, plus a second sub-centre per class at +50 degrees.
CLASS_ANGLES = [0.0, 2 * math.pi / 3, 4 * math.pi / 3]
SUB_OFFSET = math.radians(50)


def embeddings() -> torch.Tensor:
    return torch.tensor(
        [[r * math.cos(a), r * math.sin(a)] for a, r in zip(ANGLES, NORMS, strict=True)]
    )  # (5, 2)


def labels() -> torch.Tensor:
    return torch.tensor(LABELS)


def weights(angles: list[float], norms: list[float] | None = None) -> torch.Tensor:
    """Class weights `(D, n)`, column j at `angles[j]` with length `norms[j]`."""
    norms = norms or [1.0 + 0.5 * j for j in range(len(angles))]
    return torch.tensor(
        [
            [r * math.cos(a) for a, r in zip(angles, norms, strict=True)],
            [r * math.sin(a) for a, r in zip(angles, norms, strict=True)],
        ]
    )


def cosine(a: float, b: float) -> float:
    return math.cos(a - b)


def naive(target_logit, scale: float, class_cosines: list[list[float]]) -> float:
    """Mean over samples of -log softmax, with the true class's logit from `target_logit(cos)`."""
    total = 0.0
    for cosines, y in zip(class_cosines, LABELS, strict=True):
        target = math.exp(target_logit(cosines[y]))
        others = sum(math.exp(scale * c) for j, c in enumerate(cosines) if j != y)
        total += -math.log(target / (target + others))
    return total / len(LABELS)


def class_cosines(centres: int = 1) -> list[list[float]]:
    """Per sample, the cosine to each class: the max over its sub-centres (a naive loop)."""
    rows = []
    for a in ANGLES:
        row = []
        for c in CLASS_ANGLES:
            row.append(max(cosine(a, c + k * SUB_OFFSET) for k in range(centres)))
        rows.append(row)
    return rows


@pytest.mark.parametrize(("scale", "margin"), [(4.0, 0.3), (16.0, 0.5), (64.0, 0.1)])
def test_arcface_matches_the_published_formula(scale: float, margin: float) -> None:
    loss = ArcFaceLoss(num_classes=3, embedding_size=2, margin=margin, scale=scale)
    loss.W.data = weights(CLASS_ANGLES)

    def target(cos: float) -> float:
        return scale * math.cos(math.acos(cos) + margin)

    expected = naive(target, scale, class_cosines())
    assert loss(embeddings(), labels()).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("scale", "margin"), [(4.0, 0.2), (16.0, 0.35)])
def test_cosface_matches_the_published_formula(scale: float, margin: float) -> None:
    loss = CosFaceLoss(num_classes=3, embedding_size=2, margin=margin, scale=scale)
    loss.W.data = weights(CLASS_ANGLES)
    expected = naive(lambda cos: scale * (cos - margin), scale, class_cosines())
    assert loss(embeddings(), labels()).item() == pytest.approx(expected, rel=1e-5)


def test_subcenter_takes_the_nearest_of_k_centres_per_class() -> None:
    scale, margin = 8.0, 0.4
    loss = SubCenterArcFaceLoss(num_classes=3, embedding_size=2, margin=margin, scale=scale, sub_centers=2)
    columns = [c + k * SUB_OFFSET for c in CLASS_ANGLES for k in range(2)]  # column c * K + k
    loss.W.data = weights(columns)

    def target(cos: float) -> float:
        return scale * math.cos(math.acos(cos) + margin)

    expected = naive(target, scale, class_cosines(centres=2))
    assert loss(embeddings(), labels()).item() == pytest.approx(expected, rel=1e-5)
    # the second centres matter: with only the first ones the loss is different
    assert naive(target, scale, class_cosines(centres=1)) != pytest.approx(expected, rel=1e-3)


def test_one_sub_centre_is_arcface() -> None:
    arc = ArcFaceLoss(3, 2, margin=0.3, scale=8.0)
    sub = SubCenterArcFaceLoss(3, 2, margin=0.3, scale=8.0, sub_centers=1)
    sub.W.data = arc.W.data.clone()
    assert sub(embeddings(), labels()).item() == pytest.approx(arc(embeddings(), labels()).item(), rel=1e-6)


@pytest.mark.parametrize("name", ["arcface", "cosface", "subcenter"])
def test_rows_without_a_training_class_are_ignored(name: str) -> None:
    loss = get_loss(name, num_classes=3, embedding_size=2)
    emb, y = embeddings(), labels()
    extra = torch.cat([emb, torch.tensor([[0.3, -0.7], [1.0, 1.0]])])  # a forgery, an unlabelled image
    with_extra = loss(extra, torch.cat([y, torch.tensor([100, -1])]))
    assert with_extra.item() == pytest.approx(loss(emb, y).item(), rel=1e-6)
    nothing = loss(emb.clone().requires_grad_(True), torch.full((5,), 7))
    assert nothing.item() == 0.0
    nothing.backward()  # the zero keeps a graph, so a batch of forgeries does not stop training


@pytest.mark.parametrize("name", ["arcface", "cosface", "subcenter"])
def test_indices_tuple_is_ignored_and_gradients_reach_embeddings_and_weights(name: str) -> None:
    loss = get_loss(name, num_classes=3, embedding_size=2)
    emb = embeddings().requires_grad_(True)
    pairs = (torch.tensor([0]), torch.tensor([3]), torch.tensor([1]), torch.tensor([2]))
    value = loss(emb, labels(), pairs)
    assert value.item() == pytest.approx(loss(emb, labels()).item(), rel=1e-6)
    value.backward()
    assert emb.grad.abs().sum() > 0 and loss.W.grad.abs().sum() > 0


def test_defaults_and_attributes() -> None:
    arc, cos, sub = ArcFaceLoss(5, 8), CosFaceLoss(5, 8), SubCenterArcFaceLoss(5, 8)
    assert (arc.margin, arc.scale, arc.lr_multiplier) == (0.5, 16.0, 10.0)
    assert (cos.margin, cos.scale) == (0.35, 16.0)
    assert (sub.margin, sub.sub_centers, tuple(sub.W.shape)) == (0.5, 3, (8, 15))
    assert tuple(arc.W.shape) == (8, 5) and arc.distance.is_inverted  # cosine similarity
    assert ArcFaceLoss.samplers[0] == "mperclass" and ArcFaceLoss.distances == ("cosine",)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("arcface", {"margin": 28.6}, "radians: 28.6 degrees is 0.4992"),
        ("subcenter", {"margin": -0.1}, "margin"),
        ("cosface", {"margin": 1.0}, "margin"),
        ("arcface", {"distance": "euclidean"}, "cosine distance only"),
        ("cosface", {"scale": 0.0}, "scale"),
        ("subcenter", {"sub_centers": 0}, "sub centers"),
        ("arcface", {"lr_multiplier": 0.0}, "lr multiplier"),
        ("arcface", {"num_classes": 1}, "at least 2 training identities"),
    ],
)
def test_bad_options_are_config_errors(name: str, kwargs: dict, match: str) -> None:
    options = {"num_classes": 3, "embedding_size": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        get_loss(name, **options)

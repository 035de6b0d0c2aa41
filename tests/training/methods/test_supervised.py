"""Tests for siamese/training/methods/supervised.py: evaluation with class-weight losses and TTA."""

from __future__ import annotations

import math

import pytest
import torch

from siamese.losses import get_loss
from siamese.models import get_encoder, tta_embed
from siamese.training import Batch, SupervisedMethod


def _method(loss_name: str, tta: str = "none") -> SupervisedMethod:
    torch.manual_seed(0)
    encoder = get_encoder("smallcnn", in_channels=1, embedding_dim=8)
    extra = {"num_classes": 3, "embedding_size": 8} if loss_name == "arcface" else {}
    return SupervisedMethod(encoder, get_loss(loss_name, **extra), distance="cosine", tta=tta).eval()


def _validation_batch() -> Batch:
    """Two triplets of validation identities 0, 7 and 9: labels beyond the 3 training classes."""
    images = torch.randn(6, 1, 16, 12, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 7, 0, 7, 9, 0])
    return Batch(images, labels, (torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5])))


def test_a_class_weight_loss_reports_no_validation_loss_but_the_embeddings() -> None:
    method, batch = _method("arcface"), _validation_batch()
    with torch.no_grad():
        out = method.evaluation_step(batch)
        expected = method.encoder(batch.images)
    assert math.isnan(out.loss.item())
    torch.testing.assert_close(out.embeddings, expected)
    assert out.indices is batch.indices


@pytest.mark.parametrize("loss_name", ["supcon", "arcface"])
def test_flip_tta_scores_the_augmented_embeddings(loss_name: str) -> None:
    method, batch = _method(loss_name, tta="flip"), _validation_batch()
    with torch.no_grad():
        out = method.evaluation_step(batch)
        expected = tta_embed(method.encoder, batch.images, "flip")
        plain = method.encoder(batch.images)
    torch.testing.assert_close(out.embeddings, expected)
    assert not torch.allclose(out.embeddings, plain, atol=1e-4)
    if loss_name == "supcon":
        assert out.loss.item() == pytest.approx(method.loss(expected, batch.labels, batch.indices).item())


def test_without_tta_evaluation_is_the_training_step() -> None:
    method, batch = _method("supcon"), _validation_batch()
    with torch.no_grad():
        out, train = method.evaluation_step(batch), method.training_step(batch)
    torch.testing.assert_close(out.embeddings, train.embeddings)
    assert out.loss.item() == pytest.approx(train.loss.item())


def test_param_groups_without_loss_parameters_are_one_group() -> None:
    method = _method("supcon")
    (group,) = method.param_groups(1e-3)
    assert group["lr"] == 1e-3 and len(group["params"]) == len(list(method.encoder.parameters()))

"""Tests for siamese/training/evaluation.py: the pairs an index tuple names, scored with the step."""

import pytest
import torch

from siamese.losses import get_loss
from siamese.training.evaluation import indexed_pair_distances, score_pairs
from siamese.training.methods import SupervisedMethod
from siamese.training.trainer import Trainer
from tests.training.test_trainer import Flat, _pair_batch


def test_indexed_pair_distances_triplets_and_pairs():
    emb = torch.tensor([[0.0, 0], [3, 4], [0, 1], [6, 8]])
    d, same = indexed_pair_distances(
        emb, (torch.tensor([0]), torch.tensor([1]), torch.tensor([2])), "euclidean"
    )
    assert d.tolist() == pytest.approx([5.0, 1.0]) and same.tolist() == [True, False]
    d, same = indexed_pair_distances(
        emb, (torch.tensor([1]), torch.tensor([3]), torch.tensor([0]), torch.tensor([2])), "cosine"
    )
    assert d.tolist() == pytest.approx([0.0, 1.0], abs=1e-6) and same.tolist() == [True, False]


def test_score_pairs_collects_balanced_pair_distances_with_the_trainers_step():
    model = SupervisedMethod(Flat(), get_loss("margin"))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1))
    scores = score_pairs(trainer, [_pair_batch(), _pair_batch()])
    assert scores.distances.shape == (4,) and scores.is_same.tolist() == [True, False, True, False]
    assert scores.loss > 0

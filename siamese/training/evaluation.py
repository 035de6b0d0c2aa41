"""Scoring a training method on pair batches: the distances of the pairs that the batches' index
tuples name, computed with the trainer's one step function in evaluation mode. The validation
callback (`siamese.training.callbacks.ValidationCallback`) and the run's final test use it; the
trainer itself only steps."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from siamese.models.twin import pair_distance

if TYPE_CHECKING:
    from siamese.training.trainer import Trainer


@dataclass
class PairScores:
    """Pair distances gathered while evaluating, with the mean loss."""

    loss: float
    distances: np.ndarray  # (P,)
    is_same: np.ndarray  # (P,) bool


def indexed_pair_distances(
    emb: torch.Tensor, indices: Sequence[torch.Tensor], kind: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances of the pairs an index tuple names, and whether each pair is genuine.

    Args:
        emb: embeddings `(N, D)`.
        indices: `(a, p, n)` triplets or `(a1, p, a2, n)` pairs into `emb`.
        kind: "euclidean" or "cosine".

    Returns:
        Distances `(P,)` and a boolean `(P,)` mask, genuine pairs first.
    """
    if len(indices) == 3:
        a, p, n = indices
        a1, a2 = a, a
    else:
        a1, p, a2, n = indices
    d = torch.cat([pair_distance(emb[a1], emb[p], kind), pair_distance(emb[a2], emb[n], kind)])
    is_same = torch.cat([torch.ones(len(a1), dtype=torch.bool), torch.zeros(len(a2), dtype=torch.bool)])
    return d, is_same


@torch.no_grad()
def score_pairs(trainer: Trainer, loader: Iterable[Any]) -> PairScores:
    """Mean loss and the distances (the method's `distance`) of every pair the batches' index
    tuples name, each batch through `trainer.step(batch, train=False)`."""
    trainer.method.eval()
    losses, dists, same = [], [], []
    for batch in loader:
        loss, emb, indices = trainer.step(batch, train=False)
        if torch.isfinite(loss):
            losses.append(loss.item())
        if indices is not None:
            d, s = indexed_pair_distances(emb, indices, trainer.method.distance)
            dists.append(d.cpu())
            same.append(s)
    distances = torch.cat(dists).numpy() if dists else np.zeros(0)
    is_same = torch.cat(same).numpy() if same else np.zeros(0, dtype=bool)
    return PairScores(float(np.mean(losses)) if losses else math.nan, distances, is_same)

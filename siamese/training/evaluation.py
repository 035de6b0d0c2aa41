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
import torch.distributed as dist

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
def score_pairs(trainer: Trainer, loader: Iterable[Any], shared: bool = False) -> PairScores:
    """Mean loss and the distances (the method's `distance`) of every pair the batches' index
    tuples name, each batch through `trainer.step(batch, train=False)`.

    Args:
        trainer: its method scores; `trainer.distributed` says whether it is a data-parallel rank.
        loader: the pair batches.
        shared: every rank of a data-parallel run calls this at once: each scores every W-th
            batch with rank 0's weights and buffers and every rank gets all the scores (in batch
            order), the same scores one process computes. Otherwise this process scores alone.
    """
    trainer.method.eval()
    ranked = shared and trainer.distributed is not None and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if ranked else (0, 1)
    if ranked:
        for buffer in trainer.method.buffers():  # BatchNorm statistics: rank 0's, like the weights
            dist.broadcast(buffer, src=0)
    scored: list[tuple[int, float, Any]] = []  # (batch, loss, (distances, is_same) or None)
    for i, batch in enumerate(loader):
        if i % world != rank:
            continue
        loss, emb, indices = trainer.step(batch, train=False)
        pairs = None
        if indices is not None:
            d, s = indexed_pair_distances(emb, indices, trainer.method.distance)
            pairs = (d.cpu().numpy(), s.numpy())
        scored.append((i, loss.item(), pairs))
    if ranked:
        everyone: list[Any] = [None] * world
        dist.all_gather_object(everyone, scored)
        scored = sorted((item for part in everyone for item in part), key=lambda item: item[0])
    losses = [loss for _, loss, _ in scored if math.isfinite(loss)]
    found = [p for _, _, p in scored if p is not None]
    distances = np.concatenate([d for d, _ in found]) if found else np.zeros(0)
    is_same = np.concatenate([s for _, s in found]) if found else np.zeros(0, dtype=bool)
    return PairScores(float(np.mean(losses)) if losses else math.nan, distances, is_same)

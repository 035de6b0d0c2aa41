"""One training loop with one step function shared by training and evaluation (minGPT style)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from siamese.errors import SiameseError
from siamese.models.twin import pair_distance

logger = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...] | None]


class NonFiniteLossError(SiameseError):
    """The loss became NaN or infinite; training stops and keeps the last good checkpoint."""


class Callback:
    """Hooks called by `Trainer.fit`; override the ones you need."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int, num_steps: int) -> None: ...

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...


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


class Trainer:
    """Fits a twin network's shared encoder with a metric loss.

    Args:
        model: twin network (`embed` and `distance` are used).
        loss_fn: called as `loss_fn(embeddings, labels, indices_tuple)`.
        optimizer: torch optimiser over the model's parameters.
        scheduler: optional per-step learning-rate scheduler.
        miner: optional miner applied to batches that carry no index tuple.
        device: where batches are moved.
        callbacks: logging, evaluation, checkpointing.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        miner: Any = None,
        device: str | torch.device = "cpu",
        callbacks: Iterable[Callback] = (),
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.miner = miner
        self.device = torch.device(device)
        self.callbacks = list(callbacks)
        self.epoch = 0
        self.global_step = 0
        self.stop_requested = False

    def step(self, batch: Batch, train: bool) -> tuple[torch.Tensor, torch.Tensor, tuple | None]:
        """Embed a batch, mine if needed, compute the loss and (when training) update.

        Returns:
            The loss (detached), the embeddings `(N, D)` (detached) and the index tuple used.
        """
        images, labels, indices = batch
        images, labels = images.to(self.device), labels.to(self.device)
        if indices is not None:
            indices = tuple(t.to(self.device) for t in indices)
        with torch.set_grad_enabled(train):
            emb = self.model.embed(images)  # (N, D)
            if indices is None and self.miner is not None:
                indices = self.miner(emb, labels)
            loss = self.loss_fn(emb, labels, indices)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at epoch {self.epoch + 1}, step {self.global_step + 1}; "
                "try a lower --lr"
            )
        if train:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
        return loss.detach(), emb.detach(), indices

    @torch.no_grad()
    def evaluate(self, loader: Iterable[Batch]) -> PairScores:
        """Mean loss and the distances of every pair the batches' index tuples name."""
        self.model.eval()
        losses, dists, same = [], [], []
        kind = getattr(self.model, "distance", "euclidean")
        for batch in loader:
            loss, emb, indices = self.step(batch, train=False)
            losses.append(loss.item())
            if indices is not None:
                d, s = indexed_pair_distances(emb, indices, kind)
                dists.append(d.cpu())
                same.append(s)
        distances = torch.cat(dists).numpy() if dists else np.zeros(0)
        is_same = torch.cat(same).numpy() if same else np.zeros(0, dtype=bool)
        return PairScores(float(np.mean(losses)) if losses else math.nan, distances, is_same)

    def train_epoch(self, loader: Iterable[Batch]) -> float:
        """One pass over `loader`; returns the mean training loss."""
        self.model.train()
        total, count = 0.0, 0
        for batch in loader:
            loss, _, _ = self.step(batch, train=True)
            self.global_step += 1
            total, count = total + loss.item(), count + 1
            for cb in self.callbacks:
                cb.on_step_end(self, self.global_step, loss.item())
            if self.stop_requested:
                break
        return total / max(count, 1)

    def fit(self, train_loader: Any, epochs: int, start_epoch: int = 0) -> None:
        """Train from `start_epoch` to `epochs`; callbacks evaluate, log and checkpoint."""
        for cb in self.callbacks:
            cb.on_fit_start(self)
        for epoch in range(start_epoch, epochs):
            self.epoch = epoch
            for obj in (train_loader.dataset, getattr(train_loader, "batch_sampler", None)):
                if hasattr(obj, "set_epoch"):
                    obj.set_epoch(epoch)
            for cb in self.callbacks:
                cb.on_epoch_start(self, epoch, len(train_loader))
            metrics = {"epoch": epoch + 1, "train_loss": self.train_epoch(train_loader)}
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch, metrics)
            if self.stop_requested:
                break
        for cb in self.callbacks:
            cb.on_fit_end(self)

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

    def on_interrupt(self, trainer: Trainer) -> None: ...

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
        skip_nonfinite: skip (no update) batches whose loss is NaN/inf instead of stopping.

    Setting `stop_requested` (e.g. from a SIGINT handler) ends training after the current step;
    callbacks' `on_interrupt` then run (the checkpoint callback saves a resumable state).
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
        skip_nonfinite: bool = False,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.miner = miner
        self.device = torch.device(device)
        self.callbacks = list(callbacks)
        self.skip_nonfinite = skip_nonfinite
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.skipped_steps = 0
        self.epoch_loss = (0.0, 0)  # running (sum, count) of this epoch's training loss
        self.stop_requested = False
        self.finish_requested = False  # end normally after the current epoch (e.g. a time budget)
        self.interrupted = False

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
            if train and self.skip_nonfinite:
                logger.warning(
                    "skipping a batch with non-finite loss at epoch %d, step %d",
                    self.epoch + 1,
                    self.global_step + 1,
                )
                self.skipped_steps += 1
                return loss.detach(), emb.detach(), indices
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
        if self.step_in_epoch == 0:
            self.epoch_loss = (0.0, 0)
        for batch in loader:
            loss, _, _ = self.step(batch, train=True)
            self.global_step += 1
            self.step_in_epoch += 1
            if torch.isfinite(loss):
                total, count = self.epoch_loss
                self.epoch_loss = (total + loss.item(), count + 1)
            for cb in self.callbacks:
                cb.on_step_end(self, self.global_step, loss.item())
            if self.stop_requested:
                break
        total, count = self.epoch_loss
        return total / max(count, 1)

    def fit(self, train_loader: Any, epochs: int, start_epoch: int = 0, start_step: int = 0) -> None:
        """Train epochs `start_epoch`..`epochs - 1`; callbacks evaluate, log and checkpoint.

        Args:
            train_loader: a DataLoader; its dataset and batch sampler get `set_epoch` when they have it.
            epochs: total number of epochs.
            start_epoch: first epoch to run (when resuming).
            start_step: batches of `start_epoch` already done (when resuming mid-epoch); needs a
                batch sampler with a `skip` attribute (`siamese.data.ResumableBatchSampler`).
        """
        for cb in self.callbacks:
            cb.on_fit_start(self)
        for epoch in range(start_epoch, epochs):
            self.epoch = epoch
            self.step_in_epoch = start_step if epoch == start_epoch else 0
            for obj in (train_loader.dataset, getattr(train_loader, "batch_sampler", None)):
                if hasattr(obj, "set_epoch"):
                    obj.set_epoch(epoch)
            if self.step_in_epoch:
                train_loader.batch_sampler.skip = self.step_in_epoch
            for cb in self.callbacks:
                cb.on_epoch_start(self, epoch, len(train_loader) - self.step_in_epoch)
            train_loss = self.train_epoch(train_loader)
            if self.stop_requested:
                self.interrupted = True
                for cb in self.callbacks:
                    cb.on_interrupt(self)
                return
            metrics = {"epoch": epoch + 1, "train_loss": train_loss}
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch, metrics)
            if self.finish_requested:
                logger.info("finishing early after epoch %d", epoch + 1)
                break
        for cb in self.callbacks:
            cb.on_fit_end(self)

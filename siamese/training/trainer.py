"""One training loop with one step function shared by training and evaluation (minGPT style);
scoring pairs with that step is `siamese.training.evaluation.score_pairs`."""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from siamese.errors import ConfigError, SiameseError
from siamese.training.distributed import Distributed
from siamese.training.methods.base import Batch, Method, StepOutput

logger = logging.getLogger(__name__)


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


class _Steps(nn.Module):
    """The method's training step as a module's forward, for DistributedDataParallel to wrap."""

    def __init__(self, method: Method) -> None:
        super().__init__()
        self.method = method

    def forward(self, batch: Batch) -> StepOutput:
        return self.method.training_step(batch)


class Trainer:
    """Fits a training method: one loop, one step function for training and evaluation.

    Args:
        method: what a step computes (`siamese.training.methods`); the optimiser should cover
            its `param_groups`.
        optimizer: torch optimiser over the method's parameters.
        scheduler: optional per-step learning-rate scheduler.
        device: where batches are moved.
        callbacks: logging, evaluation, checkpointing.
        skip_nonfinite: skip (no update) batches whose loss is NaN/inf instead of stopping.
        distributed: this process's place in a data-parallel run (`siamese.training.distributed`):
            training steps go through DistributedDataParallel, and the run's stop, finish and
            length decisions (made by rank 0's callbacks) are shared with every rank.
        accumulate: optimiser steps every `accumulate` batches, on the sum of their gradients
            divided by `accumulate` (a batch `accumulate` times larger in one process's memory).

    Setting `stop_requested` (e.g. from a SIGINT handler) ends training after the current step;
    callbacks' `on_interrupt` then run (the checkpoint callback saves a resumable state).
    """

    def __init__(
        self,
        method: Method,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        device: str | torch.device = "cpu",
        callbacks: Iterable[Callback] = (),
        skip_nonfinite: bool = False,
        distributed: Distributed | None = None,
        accumulate: int = 1,
    ) -> None:
        if accumulate < 1:
            raise ConfigError(f"--accumulate must be >= 1, got {accumulate}")
        self.method = method
        self.distributed = distributed
        self.accumulate = int(accumulate)
        self._pending = 0  # batches whose gradients wait for the optimiser step
        self._ddp: DistributedDataParallel | None = None
        if distributed is not None:
            on_gpu = torch.device(device).type == "cuda"
            self._ddp = DistributedDataParallel(
                _Steps(method), device_ids=[torch.device(device).index] if on_gpu else None
            )
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.device = torch.device(device)
        self.callbacks = list(callbacks)
        self.skip_nonfinite = skip_nonfinite
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.epochs = 0  # set by `fit`; a time budget may re-plan it (`siamese.training.budget`)
        self.total_steps = 0  # set by `fit`: epochs x batches, for the methods' schedules
        self.skipped_steps = 0
        self.epoch_loss = (0.0, 0)  # running (sum, count) of this epoch's training loss
        self.stop_requested = False
        self.finish_requested = False  # end normally after the current epoch (e.g. a time budget)
        self.interrupted = False
        self.last_metrics: dict[str, float] = {}  # the metrics of the last finished epoch

    def step(self, batch: Batch | tuple, train: bool) -> StepOutput:
        """Run the method's step on a batch and (when training) update.

        Returns:
            The step's output with the loss and embeddings detached.
        """
        batch = Batch(*batch).to(self.device)
        accumulating = train and self._pending + 1 < self.accumulate
        quiet = self._ddp.no_sync() if self._ddp is not None and accumulating else contextlib.nullcontext()
        with quiet:  # gradients of all but the last accumulated batch stay local (DDP's no_sync)
            with torch.set_grad_enabled(train):
                if not train:
                    out = self.method.evaluation_step(batch)
                else:
                    out = self._ddp(batch) if self._ddp is not None else self.method.training_step(batch)
            detached = StepOutput(out.loss.detach(), out.embeddings.detach(), out.indices)
            if train and torch.isfinite(out.loss):
                self._backward(out.loss)
        if train and not torch.isfinite(out.loss):
            if not self.skip_nonfinite:
                raise NonFiniteLossError(
                    f"non-finite loss ({out.loss.item()}) at epoch {self.epoch + 1}, "
                    f"step {self.global_step + 1}; try a lower --lr"
                )
            logger.warning(
                "skipping a batch with non-finite loss at epoch %d, step %d",
                self.epoch + 1,
                self.global_step + 1,
            )
            self.skipped_steps += 1
        elif train and not accumulating:
            self._update()
        return detached

    def _backward(self, loss: torch.Tensor) -> None:
        if self._pending == 0:
            self.optimizer.zero_grad(set_to_none=True)
        (loss / self.accumulate if self.accumulate > 1 else loss).backward()
        self._pending += 1

    def _update(self) -> None:
        self._pending = 0
        self.method.on_before_optimizer_step(self.global_step, self.total_steps)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.method.on_after_optimizer_step(self.global_step, self.total_steps)

    def _share_decisions(self) -> None:
        """Rank 0's stop, finish and run-length decisions (Ctrl-C, time budgets), on every rank."""
        if self.distributed is None:
            return
        flags = torch.tensor(
            [self.stop_requested, self.finish_requested, self.epochs, self.total_steps], dtype=torch.int64
        )
        if self.distributed.backend == "nccl":
            flags = flags.to(self.device)
        torch.distributed.broadcast(flags, src=0)
        stop, finish, epochs, total = flags.tolist()
        self.stop_requested, self.finish_requested = bool(stop), bool(finish)
        self.epochs, self.total_steps = int(epochs), int(total)

    def train_epoch(self, loader: Iterable[Any]) -> float:
        """One pass over `loader`; returns the mean training loss."""
        self.method.train()
        if self.step_in_epoch == 0:
            self.epoch_loss = (0.0, 0)
        for batch in loader:
            loss = self.step(batch, train=True).loss
            self.global_step += 1
            self.step_in_epoch += 1
            if torch.isfinite(loss):
                total, count = self.epoch_loss
                self.epoch_loss = (total + loss.item(), count + 1)
            for cb in self.callbacks:
                cb.on_step_end(self, self.global_step, loss.item())
            self._share_decisions()
            if self.stop_requested or 0 < self.total_steps <= self.global_step:
                break  # interrupted, or the run's last step (a time budget may end an epoch early)
        total, count = self.epoch_loss
        return total / max(count, 1)

    def fit(self, train_loader: Any, epochs: int, start_epoch: int = 0, start_step: int = 0) -> None:
        """Train epochs `start_epoch`..`epochs - 1`; callbacks evaluate, log and checkpoint.

        Args:
            train_loader: a DataLoader; its dataset and batch sampler get `set_epoch` when they have it.
            epochs: total number of epochs; a callback may re-plan `self.epochs` and
                `self.total_steps` (a time budget: `siamese.training.budget.PlannedBudget`), after
                which training stops even within an epoch.
            start_epoch: first epoch to run (when resuming).
            start_step: batches of `start_epoch` already done (when resuming mid-epoch); needs a
                batch sampler with a `skip` attribute (`siamese.data.ResumableBatchSampler`).
        """
        self.epochs, self.total_steps = epochs, epochs * len(train_loader)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        for epoch in itertools.count(start_epoch):
            if epoch >= self.epochs:
                break
            self.epoch = epoch
            self.step_in_epoch = start_step if epoch == start_epoch else 0
            for obj in (train_loader.dataset, getattr(train_loader, "batch_sampler", None)):
                set_epoch = getattr(obj, "set_epoch", None)
                if set_epoch is not None:
                    set_epoch(epoch)
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
            self._share_decisions()
            self.last_metrics = metrics
            if self.finish_requested:
                logger.info("finishing early after epoch %d", epoch + 1)
                break
        for cb in self.callbacks:
            cb.on_fit_end(self)

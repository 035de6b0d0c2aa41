"""One training loop with one step function shared by training and evaluation (minGPT style);
scoring pairs with that step is `siamese.training.evaluation.score_pairs`."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from typing import Any

import torch

from siamese.errors import SiameseError
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
    ) -> None:
        self.method = method
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
        with torch.set_grad_enabled(train):
            out = self.method.training_step(batch) if train else self.method.evaluation_step(batch)
        detached = StepOutput(out.loss.detach(), out.embeddings.detach(), out.indices)
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
        elif train:
            self._update(out.loss)
        return detached

    def _update(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.method.on_before_optimizer_step(self.global_step, self.total_steps)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.method.on_after_optimizer_step(self.global_step, self.total_steps)

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
            self.last_metrics = metrics
            if self.finish_requested:
                logger.info("finishing early after epoch %d", epoch + 1)
                break
        for cb in self.callbacks:
            cb.on_fit_end(self)

"""Callbacks: validation, CSV logging and checkpointing are hooks, not branches in the loop."""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path
from typing import Any

from siamese.evaluation import choose_threshold
from siamese.models.checkpoint import CHECKPOINT_DIR, save_checkpoint
from siamese.training.trainer import Callback, PairScores, Trainer

logger = logging.getLogger(__name__)


def threshold_from_scores(
    scores: PairScores, rule: str = "eer", target_far: float = 1e-3
) -> dict[str, float]:
    """Validation EER and the distance threshold chosen by `rule` (see `choose_threshold`).

    Returns:
        `val_eer` and `threshold`; pairs with distance <= threshold are declared the same identity.
    """
    err, thr = choose_threshold(scores.distances, scores.is_same, rule, target_far)
    return {"val_eer": err, "threshold": thr}


class ValidationCallback(Callback):
    """Adds `val_loss`, `val_eer` and `threshold` to each epoch's metrics.

    Args:
        loader: validation batches whose index tuples name balanced genuine/impostor pairs.
        rule: threshold rule, "eer", "accuracy" or "far".
        target_far: FAR target of the "far" rule.
    """

    def __init__(self, loader: Any, rule: str = "eer", target_far: float = 1e-3) -> None:
        self.loader = loader
        self.rule = rule
        self.target_far = target_far

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        scores = trainer.evaluate(self.loader)
        metrics["val_loss"] = scores.loss
        metrics.update(threshold_from_scores(scores, self.rule, self.target_far))
        metrics["lr"] = trainer.optimizer.param_groups[0]["lr"]


class CSVLogger(Callback):
    """Appends one row of metrics per epoch to a CSV file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(metrics))
            if new:
                writer.writeheader()
            writer.writerow(metrics)


class CheckpointCallback(Callback):
    """Saves model checkpoints (`last` every epoch; `best`, the run's model, when the validation
    EER improves or, with `select="last"`, every epoch) and the resumable training state (every
    epoch, every `save_every` steps and on interruption).

    Args:
        run_dir: run directory; checkpoints go to `<run_dir>/checkpoints/`.
        metadata: static metadata (preset, preprocessing, ...) merged into every checkpoint.
        save_every: also save the training state every this many steps (0 = only per epoch).
        select: "best" (lowest validation EER) or "last" (final epoch) becomes `best`.
    """

    def __init__(
        self, run_dir: str | Path, metadata: dict[str, Any], save_every: int = 0, select: str = "best"
    ) -> None:
        self.dir = Path(run_dir) / CHECKPOINT_DIR
        self.metadata = metadata
        self.save_every = save_every
        self.select = select
        self.best_eer = math.inf
        self.best_epoch = 0

    def save_state(self, trainer: Trainer, epoch: int, step_in_epoch: int) -> None:
        """Write `checkpoints/state.*` so `siamese train --resume` continues from here."""
        from siamese.training.state import save_training_state

        extra = {
            "best_eer": self.best_eer if math.isfinite(self.best_eer) else None,
            "best_epoch": self.best_epoch,
        }
        save_training_state(self.dir / "state", trainer, epoch, step_in_epoch, extra)

    def restore(self, extra: dict[str, Any]) -> None:
        """Take back the bookkeeping stored with a training state."""
        self.best_eer = math.inf if extra.get("best_eer") is None else float(extra["best_eer"])
        self.best_epoch = int(extra.get("best_epoch", 0))

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        if self.save_every and step % self.save_every == 0:
            self.save_state(trainer, trainer.epoch, trainer.step_in_epoch)

    def on_interrupt(self, trainer: Trainer) -> None:
        self.save_state(trainer, trainer.epoch, trainer.step_in_epoch)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        meta = {
            **self.metadata,
            "epoch": epoch + 1,
            "val_eer": metrics.get("val_eer"),
            "threshold": metrics.get("threshold"),
        }
        model = trainer.method.twin()
        save_checkpoint(self.dir / "last", model, meta)
        val_eer = metrics.get("val_eer", math.inf)
        if val_eer < self.best_eer or self.best_epoch == 0 or self.select == "last":
            self.best_eer, self.best_epoch = val_eer, epoch + 1
            save_checkpoint(self.dir / "best", model, meta)
            if self.select == "best":
                logger.info("epoch %d: new best validation EER %.4f", epoch + 1, val_eer)
        self.save_state(trainer, epoch + 1, 0)


class TimeBudget(Callback):
    """Ends training normally once another epoch would exceed `seconds` of wall-clock time: a hard
    cap (`--max-minutes`) that cuts the schedules where it binds (a warning says so);
    `siamese.training.budget.PlannedBudget` plans the epochs to fit instead (`--minutes`).

    Args:
        seconds: budget for the fit, validation included.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = 0.0
        self.epochs = 0

    def on_fit_start(self, trainer: Trainer) -> None:
        self.start, self.epochs = time.perf_counter(), 0

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        self.epochs += 1
        elapsed = time.perf_counter() - self.start
        if elapsed * (self.epochs + 1) / self.epochs > self.seconds and epoch + 1 < trainer.epochs:
            trainer.finish_requested = True
            logger.warning(
                "time cap of %.1f min: stopping after epoch %d of %d, which cuts the learning-rate "
                "schedule (--minutes plans the epochs to fit the time instead)",
                self.seconds / 60,
                epoch + 1,
                trainer.epochs,
            )

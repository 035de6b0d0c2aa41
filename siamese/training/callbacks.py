"""Callbacks: validation, CSV logging and checkpointing are hooks, not branches in the loop."""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from siamese.errors import CheckpointError
from siamese.evaluation import choose_threshold, fit_confidence
from siamese.models.checkpoint import load_weights, save_checkpoint, weights_file
from siamese.runs import BEST, LAST, STATE, RunDir
from siamese.training.evaluation import PairScores, score_pairs
from siamese.training.selection import select_epoch
from siamese.training.trainer import Callback, Trainer

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


@dataclass(frozen=True)
class Validation:
    """One epoch's validation: its scored pairs and the threshold chosen on them.

    Attributes:
        epoch: the epoch (1-based).
        scores: the validation pairs' distances and labels, and the mean loss.
        val_eer: the equal error rate on them.
        threshold: the distance threshold of the run's rule (same when `distance <= threshold`).
    """

    epoch: int
    scores: PairScores
    val_eer: float
    threshold: float


class ValidationCallback(Callback):
    """Scores the validation pairs after each epoch: `last` holds the result, and `val_loss`,
    `val_eer`, `threshold` (and `lr`) go into the epoch's metrics for the log.

    Args:
        loader: validation batches whose index tuples name balanced genuine/impostor pairs.
        rule: threshold rule, "eer", "accuracy" or "far".
        target_far: FAR target of the "far" rule.
        identities: how many identities the pairs come from (the selection rule's standard
            error counts them; None: the pairs count as independent).
    """

    def __init__(
        self, loader: Any, rule: str = "eer", target_far: float = 1e-3, identities: int | None = None
    ) -> None:
        self.loader = loader
        self.rule = rule
        self.target_far = target_far
        self.identities = identities
        self.last: Validation | None = None

    def score(self, trainer: Trainer, epoch: int, shared: bool = False) -> Validation:
        """Score the validation pairs with the trainer's current weights (`shared`: every rank of a
        data-parallel run scores its share at once, `score_pairs`)."""
        scores = score_pairs(trainer, self.loader, shared)
        found = threshold_from_scores(scores, self.rule, self.target_far)
        return Validation(epoch, scores, found["val_eer"], found["threshold"])

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        self.last = self.score(trainer, epoch + 1, shared=True)  # every rank is here at each epoch's end
        metrics["val_loss"] = self.last.scores.loss
        metrics.update(val_eer=self.last.val_eer, threshold=self.last.threshold)
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
    """Keeps the run's model and its resumable state.

    Every epoch it writes `last` and the training state; `best` is written whenever an epoch
    becomes the lowest validation EER so far (every epoch with `select="last"`). At the end of the
    fit it decides which epoch the run keeps (`siamese.training.selection.select_epoch` on the
    validation history), leaves the trainer holding that epoch's weights, fits the
    distance -> confidence calibration on that epoch's validation pairs and writes it to `best`
    once, with the epoch's threshold. State, checkpoints and validation results pass between
    callbacks through typed fields (`ValidationCallback.last`), never through the metrics dict.

    Args:
        run_dir: the run directory (`siamese.runs.RunDir`).
        metadata: static metadata (preset, preprocessing, ...) merged into every checkpoint.
        save_every: also save the training state every this many steps (0 = only per epoch).
        select: the selection rule, one of `siamese.training.selection.SELECT_RULES`.
        validation: where each epoch's validation comes from; None (self-supervised runs) keeps
            the last epoch and calibrates nothing.

    Attributes:
        kept: the kept epoch's validation, after the fit (None without validation).
    """

    def __init__(
        self,
        run_dir: str | Path,
        metadata: dict[str, Any],
        save_every: int = 0,
        select: str = "best",
        validation: ValidationCallback | None = None,
    ) -> None:
        self.run = RunDir(run_dir)
        self.metadata = metadata
        self.save_every = save_every
        self.select = select
        self.validation = validation
        self.history: list[float | None] = []  # validation EER per epoch
        self.best: Validation | None = None  # the lowest validation EER so far
        self.best_epoch = 0
        self._best_weights: dict[str, torch.Tensor] | None = None
        self.kept: Validation | None = None

    def save_state(self, trainer: Trainer, epoch: int, step_in_epoch: int) -> None:
        """Write `checkpoints/state.*` so `siamese train --resume` continues from here."""
        from siamese.training.state import save_training_state

        extra = {"history": self.history, "best_epoch": self.best_epoch}
        save_training_state(self.run.checkpoint(STATE), trainer, epoch, step_in_epoch, extra)

    def restore(self, extra: dict[str, Any]) -> None:
        """Take back the bookkeeping stored with a training state (states written before the
        history was kept hold the best epoch and its EER only)."""
        self.best_epoch = int(extra.get("best_epoch", 0))
        if "history" in extra:
            self.history = [None if v is None else float(v) for v in extra["history"]]
        elif self.best_epoch:
            before: list[float | None] = [None] * (self.best_epoch - 1)
            self.history = [*before, extra.get("best_eer")]

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        if self.save_every and step % self.save_every == 0:
            self.save_state(trainer, trainer.epoch, trainer.step_in_epoch)

    def on_interrupt(self, trainer: Trainer) -> None:
        self.save_state(trainer, trainer.epoch, trainer.step_in_epoch)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        result = self.validation.last if self.validation is not None else None
        self.history = self.history[:epoch] + [None] * (epoch - len(self.history))
        self.history.append(None if result is None else result.val_eer)
        model = trainer.method.twin()
        save_checkpoint(self.run.checkpoint(LAST), model, self._metadata(epoch + 1, result))
        lowest = min((v for v in self.history[:-1] if v is not None), default=math.inf)
        current = math.inf if result is None else result.val_eer
        if self.select == "last" or self.best_epoch == 0 or current < lowest:
            self.best, self.best_epoch = result, epoch + 1
            if self.validation is not None and self.select != "last":  # may be kept over later epochs
                self._best_weights = {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}
            save_checkpoint(self.run.checkpoint(BEST), model, self._metadata(epoch + 1, result))
            if result is not None and self.select != "last":
                logger.info("epoch %d: lowest validation EER so far, %.4f", epoch + 1, current)
        self.save_state(trainer, epoch + 1, 0)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.validation is None or not self.history:
            return
        n_pairs = max(len(self.validation.last.scores.distances), 1) if self.validation.last else 1
        kept = select_epoch(self.history, n_pairs, self.select, self.validation.identities) + 1
        last = len(self.history)
        if kept != last and kept == self.best_epoch:  # an earlier epoch: its weights come back
            trainer.method.encoder.load_state_dict(self._best_weights or self._saved_best_weights())
            result = self.best
        else:  # the rules keep the lowest so far or the last
            kept, result = last, self.validation.last
        if result is None or result.epoch != kept:  # resumed past the kept epoch: score it again
            result = self.validation.score(trainer, kept)
        self.kept = result
        meta = {**self._metadata(kept, result), "calibration": fit_confidence(*_pairs(result))}
        save_checkpoint(self.run.checkpoint(BEST), trainer.method.twin(), meta)
        logger.info("keeping epoch %d (validation EER %.4f, rule %r)", kept, result.val_eer, self.select)

    def _metadata(self, epoch: int, result: Validation | None) -> dict[str, Any]:
        return {
            **self.metadata,
            "epoch": epoch,
            "val_eer": None if result is None else result.val_eer,
            "threshold": None if result is None else result.threshold,
        }

    def _saved_best_weights(self) -> dict[str, torch.Tensor]:
        """The weights `best` holds on disk (a resumed run's best epoch came before the resume)."""
        stem = self.run.checkpoint(BEST)
        path = weights_file(stem)
        if path is None:
            raise CheckpointError(f"no weights beside {stem}.json")
        return load_weights(path)


def _pairs(result: Validation) -> tuple[np.ndarray, np.ndarray]:
    return result.scores.distances, result.scores.is_same


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


class RankStateCallback(Callback):
    """On a data-parallel rank other than 0: its own random generators' states, saved whenever
    rank 0 saves the training state (every `save_every` steps, every epoch, on interrupt), so a
    resumed run continues each rank's augmentation exactly. Two files alternate by step parity
    (`checkpoints/state-rank<r>-<0|1>.*`): rank 0's state is at most a step apart, so one of
    them is always the step it saved."""

    def __init__(self, run_dir: str | Path, rank: int, save_every: int = 0) -> None:
        self.run = RunDir(run_dir)
        self.rank = rank
        self.save_every = save_every

    def _save(self, trainer: Trainer) -> None:
        from siamese.training.state import save_rng_state

        step = trainer.global_step
        save_rng_state(rank_states(self.run, self.rank)[step % 2], step)

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        if self.save_every and step % self.save_every == 0:
            self._save(trainer)

    def on_interrupt(self, trainer: Trainer) -> None:
        self._save(trainer)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        self._save(trainer)


def rank_states(run: RunDir, rank: int) -> list[Path]:
    """The two checkpoint stems of rank `rank`'s random-generator states (by step parity)."""
    return [run.checkpoint(f"{STATE}-rank{rank}-{parity}") for parity in (0, 1)]

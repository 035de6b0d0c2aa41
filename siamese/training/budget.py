"""Time budgets: a run planned to train for N minutes (`TrainConfig.minutes`, `--minutes N`).

`PlannedBudget` measures the run's own pace and fixes its length, so the schedules end with it:

1. The first `WARMUP_STEPS` steps are not timed (lazy initialisation, first kernels); the next
   `PACE_STEPS` give the seconds a step takes, and a provisional plan (steps only) already sizes
   the schedules.
2. At the end of the first epoch, its evaluation and checkpoints are timed too and the plan is
   fixed: the epochs done plus as many whole epochs as fit in what is left of the budget. The
   trainer's `epochs` and `total_steps` (the momentum schedules of BYOL/MoCo read it) and the
   `WarmupCosine` learning-rate schedule span exactly those epochs.
3. The plan is logged and recorded in the run's `config.json` (`TrainConfig.planned_epochs`); a
   resumed run keeps it and does not measure again.
4. If the epochs later run slower than planned, the run finishes after the last epoch that ends
   within the budget (a warning says so), as `TimeBudget` does.

The budget counts from the start of training: reading the data before and the final test after
are not in it. An epoch is never cut, so a budget shorter than one epoch still trains one (with a
warning). `max_minutes` (`TimeBudget`) stays a hard cap for runs without `minutes`; with both,
the plan is for the smaller.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from siamese.training.callbacks import TimeBudget
from siamese.training.config import TrainConfig
from siamese.training.schedules import set_total_steps
from siamese.training.trainer import Callback, Trainer

logger = logging.getLogger(__name__)

WARMUP_STEPS = 2  # steps not timed: lazy initialisation, first kernels
PACE_STEPS = 8  # steps timed before the provisional plan


@dataclass(frozen=True)
class BudgetPlan:
    """A run's length, fixed from its measured pace.

    Attributes:
        epochs: epochs of the whole run.
        steps_per_epoch: optimiser steps in an epoch.
        seconds_per_step: measured seconds of a training step.
        seconds_per_epoch: expected seconds of an epoch, its evaluation and checkpoints included.
    """

    epochs: int
    steps_per_epoch: int
    seconds_per_step: float
    seconds_per_epoch: float

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the whole run: the length the schedules span."""
        return self.epochs * self.steps_per_epoch


def plan_epochs(seconds_left: float, seconds_per_epoch: float, epochs_done: int) -> int:
    """The run's epochs: those done plus as many whole epochs as fit in `seconds_left`.

    >>> plan_epochs(seconds_left=89.0, seconds_per_epoch=7.0, epochs_done=1)
    13
    >>> plan_epochs(seconds_left=-3.0, seconds_per_epoch=7.0, epochs_done=1)
    1
    """
    if seconds_per_epoch <= 0:
        raise ValueError(f"seconds per epoch must be > 0, got {seconds_per_epoch}")
    return epochs_done + max(math.floor(seconds_left / seconds_per_epoch), 0)


def apply_plan(trainer: Trainer, epochs: int, steps_per_epoch: int) -> None:
    """Make the trainer run `epochs` epochs, with its momentum and learning-rate schedules
    spanning their steps."""
    trainer.epochs, trainer.total_steps = epochs, epochs * steps_per_epoch
    set_total_steps(trainer.scheduler, trainer.total_steps)


class PlannedBudget(Callback):
    """Plans the run for `seconds` of training from its measured pace (see the module's docstring).

    Place it after the callbacks that evaluate and checkpoint each epoch, so their cost is timed.

    Args:
        seconds: the training time to plan for, each epoch's evaluation included.
        planned_epochs: a plan recorded earlier (a resumed run): kept, nothing is measured.
        record: called once with the plan when it is fixed (e.g. to write it to the run's config).
        clock: seconds of a monotonic clock; `time.perf_counter` by default.
        warmup_steps: first steps left out of the pace.
        pace_steps: steps timed before the provisional plan.
    """

    def __init__(
        self,
        seconds: float,
        planned_epochs: int | None = None,
        record: Callable[[BudgetPlan], None] | None = None,
        clock: Callable[[], float] | None = None,
        warmup_steps: int = WARMUP_STEPS,
        pace_steps: int = PACE_STEPS,
    ) -> None:
        self.seconds, self.planned, self.record = seconds, planned_epochs, record
        self.clock = clock or time.perf_counter
        self.warmup_steps, self.pace_steps = warmup_steps, pace_steps
        self.steps_per_epoch = 0
        self.deadline = self.last_epoch_end = self.pace_start = self.last_step = 0.0
        self.steps = 0  # steps timed so far, before the plan
        self.plan: BudgetPlan | None = None  # the plan this process fixed (None when resumed with one)
        self.epoch_seconds: list[float] = []  # epochs after the plan, as they took

    def on_fit_start(self, trainer: Trainer) -> None:
        now = self.clock()
        self.deadline, self.last_epoch_end = now + self.seconds, now
        self.steps_per_epoch = trainer.total_steps // max(trainer.epochs, 1)
        if self.planned is not None:
            apply_plan(trainer, self.planned, self.steps_per_epoch)
            logger.info("time budget: continuing the plan of %d epochs", self.planned)

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        if self.planned is not None:
            return
        self.last_step, self.steps = self.clock(), self.steps + 1
        if self.steps == self.warmup_steps:
            self.pace_start = self.last_step
        elif self.steps == self.warmup_steps + self.pace_steps:
            self._provisional(trainer, (self.last_step - self.pace_start) / self.pace_steps)

    def _provisional(self, trainer: Trainer, step_s: float) -> None:
        """Size the schedules from the steps' pace alone, until the first epoch's end."""
        epoch_s = self.steps_per_epoch * step_s
        rest_of_epoch = (self.steps_per_epoch - trainer.step_in_epoch) * step_s
        left = self.deadline - self.last_step - rest_of_epoch
        apply_plan(trainer, plan_epochs(left, epoch_s, trainer.epoch + 1), self.steps_per_epoch)
        if left < 0:
            logger.warning(
                "an epoch takes about %.0f s, more than the %.1f-minute budget: the run trains one "
                "epoch only (fewer samples per epoch make shorter epochs)",
                epoch_s,
                self.seconds / 60,
            )

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        now = self.clock()
        if self.planned is None:
            self._fix_plan(trainer, epoch, now)
        elif self.plan is not None:
            self._keep_time(trainer, epoch, now, self.plan)
        self.last_epoch_end = now

    def _step_seconds(self) -> float:
        """Seconds a step takes: after the warm-up steps, else over every step of this fit."""
        if self.steps > self.warmup_steps:
            return (self.last_step - self.pace_start) / (self.steps - self.warmup_steps)
        return (self.last_step - self.last_epoch_end) / max(self.steps, 1)

    def _fix_plan(self, trainer: Trainer, epoch: int, now: float) -> None:
        step_s = self._step_seconds()
        epoch_s = self.steps_per_epoch * step_s + (now - self.last_step)  # + evaluation, checkpoints
        epochs = plan_epochs(self.deadline - now, epoch_s, epoch + 1)
        self.plan = BudgetPlan(epochs, self.steps_per_epoch, step_s, epoch_s)
        self.planned = epochs
        apply_plan(trainer, epochs, self.steps_per_epoch)
        logger.info(
            "time budget %.1f min: %d steps an epoch at %.3f s a step, %.1f s an epoch with its "
            "evaluation -> %d epochs (%d steps); the schedules span them",
            self.seconds / 60,
            self.steps_per_epoch,
            step_s,
            epoch_s,
            epochs,
            self.plan.total_steps,
        )
        if now > self.deadline:
            logger.warning(
                "the first epoch took %.0f s, more than the %.1f-minute budget: the run ends after it",
                now - self.last_epoch_end,
                self.seconds / 60,
            )
        if self.record is not None:
            self.record(self.plan)

    def _keep_time(self, trainer: Trainer, epoch: int, now: float, plan: BudgetPlan) -> None:
        """Finish early when the next epoch, at the pace the planned epochs actually took, would
        end after the deadline."""
        self.epoch_seconds.append(now - self.last_epoch_end)
        expected = sum(self.epoch_seconds) / len(self.epoch_seconds)
        if epoch + 1 < trainer.epochs and now + expected > self.deadline:
            trainer.finish_requested = True
            logger.warning(
                "epochs take %.1f s, more than the %.1f s planned: stopping after epoch %d of %d to "
                "end within the %.1f-minute budget",
                expected,
                plan.seconds_per_epoch,
                epoch + 1,
                trainer.epochs,
                self.seconds / 60,
            )


def time_budgets(config: TrainConfig, run_dir: Path) -> list[Callback]:
    """The time-budget callback of a run: `PlannedBudget` with `minutes` (recording its plan in the
    run's `config.json`), else `TimeBudget` with `max_minutes`, else none."""
    if config.minutes is None:
        return [TimeBudget(config.max_minutes * 60)] if config.max_minutes else []
    minutes = min(config.minutes, config.max_minutes or math.inf)

    def record(plan: BudgetPlan) -> None:
        replace(config, planned_epochs=plan.epochs).save(run_dir / "config.json")

    return [PlannedBudget(minutes * 60, config.planned_epochs, record)]

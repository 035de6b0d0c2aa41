"""Time budgets: a run planned to train for N minutes (`TrainConfig.minutes`, `--minutes N`).

`PlannedBudget` measures the run's own pace and fixes its length in optimiser steps, so the
schedules end with the run:

1. The first `WARMUP_STEPS` steps are not timed (lazy initialisation, first kernels); the next
   `PACE_STEPS` give the seconds a step takes, and a provisional plan (steps only) already sizes
   the schedules, and cuts the first epoch when it alone would overrun the budget.
2. At the end of the first epoch, its evaluation and checkpoints are timed too and the plan is
   fixed (`plan_steps`): whole epochs, each with its evaluation, then a last shorter epoch when a
   few steps and an evaluation still fit. The trainer's `total_steps` (where it stops; the
   momentum schedules of BYOL/MoCo read it) and `epochs`, and the `WarmupCosine` learning-rate
   schedule, span exactly those steps.
3. The plan is logged and recorded in the run's `config.json` (`TrainConfig.planned_steps`); a
   resumed run keeps it and does not measure again.
4. If the epochs later run slower than planned, the run finishes after the last epoch that ends
   within the budget (a warning says so), as `TimeBudget` does.

The budget counts from the start of training: reading the data before and the final test after
are not in it. Nothing is known of the evaluation's cost before the first one, so a first epoch
cut short to fit the budget has its evaluation on top. `max_minutes` (`TimeBudget`) stays a hard
cap for runs without `minutes`; with both, the plan is for the smaller.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from siamese.runs import RunDir
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
        total_steps: optimiser steps of the whole run: the length the schedules span.
        steps_per_epoch: optimiser steps of a whole epoch.
        seconds_per_step: measured seconds of a training step.
        seconds_per_evaluation: measured seconds of an epoch's evaluation and checkpoints.
    """

    total_steps: int
    steps_per_epoch: int
    seconds_per_step: float
    seconds_per_evaluation: float

    @property
    def epochs(self) -> int:
        """Epochs of the run, the last one possibly shorter."""
        return math.ceil(self.total_steps / self.steps_per_epoch)

    @property
    def seconds_per_epoch(self) -> float:
        """Expected seconds of a whole epoch with its evaluation."""
        return self.steps_per_epoch * self.seconds_per_step + self.seconds_per_evaluation


def plan_steps(seconds_left: float, step_s: float, evaluation_s: float, steps_per_epoch: int) -> int:
    """Steps that fit in `seconds_left` from the start of an epoch: whole epochs, each followed by
    its evaluation, then the steps of a shorter last epoch when they and its evaluation still fit.

    Args:
        seconds_left: time left in the budget.
        step_s: seconds of a training step (> 0).
        evaluation_s: seconds of an epoch's evaluation and checkpoints.
        steps_per_epoch: steps of a whole epoch.

    >>> plan_steps(89.0, step_s=1.0, evaluation_s=3.0, steps_per_epoch=4)  # 12 epochs of 7 s, 2 steps
    50
    >>> plan_steps(2.0, step_s=1.0, evaluation_s=3.0, steps_per_epoch=4)
    0
    """
    if step_s <= 0:
        raise ValueError(f"seconds per step must be > 0, got {step_s}")
    epoch_s = steps_per_epoch * step_s + evaluation_s
    whole = max(math.floor(seconds_left / epoch_s), 0)
    rest = seconds_left - whole * epoch_s - evaluation_s
    return whole * steps_per_epoch + min(max(math.floor(rest / step_s), 0), steps_per_epoch - 1)


def apply_plan(trainer: Trainer, total_steps: int, steps_per_epoch: int) -> None:
    """Make the trainer stop after `total_steps` steps, with its momentum and learning-rate
    schedules spanning them."""
    trainer.total_steps, trainer.epochs = total_steps, math.ceil(total_steps / steps_per_epoch)
    set_total_steps(trainer.scheduler, total_steps)


class PlannedBudget(Callback):
    """Plans the run for `seconds` of training from its measured pace (see the module's docstring).

    Place it after the callbacks that evaluate and checkpoint each epoch, so their cost is timed.

    Args:
        seconds: the training time to plan for, each epoch's evaluation included.
        planned_steps: a plan recorded earlier (a resumed run): kept, nothing is measured.
        record: called once with the plan when it is fixed (e.g. to write it to the run's config).
        clock: seconds of a monotonic clock; `time.perf_counter` by default.
        warmup_steps: first steps left out of the pace.
        pace_steps: steps timed before the provisional plan.
    """

    def __init__(
        self,
        seconds: float,
        planned_steps: int | None = None,
        record: Callable[[BudgetPlan], None] | None = None,
        clock: Callable[[], float] | None = None,
        warmup_steps: int = WARMUP_STEPS,
        pace_steps: int = PACE_STEPS,
    ) -> None:
        self.seconds, self.planned, self.record = seconds, planned_steps, record
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
            logger.info("time budget: continuing the plan of %d steps", self.planned)

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        if self.planned is not None:
            return
        self.last_step, self.steps = self.clock(), self.steps + 1
        if self.steps == self.warmup_steps:
            self.pace_start = self.last_step
        elif self.steps == self.warmup_steps + self.pace_steps:
            self._provisional(trainer, (self.last_step - self.pace_start) / self.pace_steps)

    def _provisional(self, trainer: Trainer, step_s: float) -> None:
        """Size the schedules from the steps' pace alone (no evaluation timed yet), until the first
        epoch's end; cut this epoch if it alone would overrun."""
        left, rest = self.deadline - self.last_step, self.steps_per_epoch - trainer.step_in_epoch
        if left < rest * step_s:
            total = trainer.global_step + max(math.floor(left / step_s), 0)
            logger.warning(
                "an epoch takes about %.0f s, more than the %.1f-minute budget: this one stops after "
                "step %d of %d",
                self.steps_per_epoch * step_s,
                self.seconds / 60,
                total - trainer.global_step + trainer.step_in_epoch,
                self.steps_per_epoch,
            )
        else:
            more = plan_steps(left - rest * step_s, step_s, 0.0, self.steps_per_epoch)
            total = trainer.global_step + rest + more
        apply_plan(trainer, max(total, trainer.global_step), self.steps_per_epoch)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        now = self.clock()
        if self.planned is None:
            self._fix_plan(trainer, now)
        elif self.plan is not None:
            self._keep_time(trainer, epoch, now, self.plan)
        self.last_epoch_end = now

    def _step_seconds(self) -> float:
        """Seconds a step takes: after the warm-up steps, else over every step of this fit."""
        if self.steps > self.warmup_steps:
            return (self.last_step - self.pace_start) / (self.steps - self.warmup_steps)
        return (self.last_step - self.last_epoch_end) / max(self.steps, 1)

    def _fix_plan(self, trainer: Trainer, now: float) -> None:
        step_s, evaluation_s = self._step_seconds(), now - self.last_step
        more = plan_steps(self.deadline - now, step_s, evaluation_s, self.steps_per_epoch)
        self.plan = BudgetPlan(trainer.global_step + more, self.steps_per_epoch, step_s, evaluation_s)
        self.planned = self.plan.total_steps
        apply_plan(trainer, self.plan.total_steps, self.steps_per_epoch)
        logger.info(
            "time budget %.1f min: %d steps an epoch at %.3f s a step, %.1f s of evaluation an "
            "epoch -> %d steps in %d epoch%s; the schedules span them",
            self.seconds / 60,
            self.steps_per_epoch,
            step_s,
            evaluation_s,
            self.plan.total_steps,
            self.plan.epochs,
            "" if self.plan.epochs == 1 else "s",
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
        """Finish early when the next epoch (the last may be shorter), at the pace the planned
        epochs actually took, would end after the deadline."""
        self.epoch_seconds.append(now - self.last_epoch_end)
        took = sum(self.epoch_seconds) / len(self.epoch_seconds)
        steps = min(self.steps_per_epoch, trainer.total_steps - trainer.global_step)
        planned = steps * plan.seconds_per_step + plan.seconds_per_evaluation
        if epoch + 1 < trainer.epochs and now + planned * took / plan.seconds_per_epoch > self.deadline:
            trainer.finish_requested = True
            logger.warning(
                "epochs take %.1f s, more than the %.1f s planned: stopping after epoch %d of %d to "
                "end within the %.1f-minute budget",
                took,
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
        RunDir(run_dir).write_config(replace(config, planned_steps=plan.total_steps).to_dict())

    return [PlannedBudget(minutes * 60, config.planned_steps, record)]

"""Time budgets planned from the measured pace, checked on a fake clock that the steps advance."""

import json
import logging
import math

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from siamese.errors import ConfigError
from siamese.losses import get_loss
from siamese.training.budget import BudgetPlan, PlannedBudget, plan_steps, time_budgets
from siamese.training.callbacks import TimeBudget
from siamese.training.methods import SupervisedMethod
from siamese.training.schedules import WarmupCosine, set_total_steps
from siamese.training.trainer import Callback, Trainer
from tests.conftest import write_identity_folder

BASE_LR = 0.01


class FakeClock:
    """Seconds that only the `Costs` callback advances."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Costs(Callback):
    """Advances the clock as if each step and each epoch's evaluation took time: the first step of
    the fit `first_step` seconds (start-up), later steps `step` seconds (`slow_step` from epoch
    `slow_from` on), each epoch's evaluation `evaluation` seconds. Placed before the budget."""

    def __init__(self, clock, first_step=5.0, step=1.0, evaluation=3.0, slow_from=None, slow_step=2.0):
        self.clock, self.first_step, self.step, self.evaluation = clock, first_step, step, evaluation
        self.slow_from, self.slow_step = slow_from, slow_step
        self.steps = 0

    def on_step_end(self, trainer, step, loss):
        self.steps += 1
        slow = self.slow_from is not None and trainer.epoch >= self.slow_from
        self.clock.now += self.first_step if self.steps == 1 else self.slow_step if slow else self.step

    def on_epoch_end(self, trainer, epoch, metrics):
        self.clock.now += self.evaluation


class Seen(Callback):
    """Each step's learning rate and the epochs that ended."""

    def __init__(self):
        self.lrs, self.epochs = [], []

    def on_step_end(self, trainer, step, loss):
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])

    def on_epoch_end(self, trainer, epoch, metrics):
        self.epochs.append(epoch)


class Recording(SupervisedMethod):
    """Records the total steps the momentum schedules of BYOL/MoCo would be given at each step."""

    def __init__(self):
        super().__init__(nn.Linear(4, 2), get_loss("margin"))
        self.totals = []

    def on_after_optimizer_step(self, step, total_steps):
        self.totals.append(total_steps)


class Loader(list):
    dataset = None


def _loader(steps_per_epoch):
    x = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    pairs = (torch.tensor([0]), torch.tensor([2]), torch.tensor([1]), torch.tensor([3]))
    return Loader([(x, torch.tensor([0, 1, 0, 2]), pairs)] * steps_per_epoch)


def _fit(budget, clock, steps_per_epoch=4, nominal_epochs=3, warmup_epochs=1, **costs):
    """Fit the recording method with `budget` after the costs; `nominal_epochs` size the schedules
    until the plan, as `--epochs` (or the preset's) does."""
    torch.manual_seed(0)
    method = Recording()
    optimizer = torch.optim.SGD(method.parameters(), lr=BASE_LR)
    factor = WarmupCosine(warmup_epochs * steps_per_epoch, nominal_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    seen = Seen()
    trainer = Trainer(method, optimizer, scheduler, callbacks=[Costs(clock, **costs), budget, seen])
    trainer.fit(_loader(steps_per_epoch), nominal_epochs)
    return trainer, method, seen


def test_plan_steps_counts_whole_epochs_then_a_shorter_one_that_fits():
    # epochs of 4 steps of 1 s and 3 s of evaluation: 7 s each
    assert plan_steps(89.0, 1.0, 3.0, steps_per_epoch=4) == 12 * 4 + 2  # 84 s, then 2 steps + 3 s
    assert plan_steps(84.0, 1.0, 3.0, steps_per_epoch=4) == 12 * 4  # exactly 12 epochs
    assert plan_steps(6.5, 1.0, 3.0, steps_per_epoch=4) == 3  # never a whole epoch as a shorter one
    assert plan_steps(3.5, 1.0, 3.0, steps_per_epoch=4) == 0  # no room for a step and an evaluation
    assert plan_steps(-3.0, 1.0, 3.0, steps_per_epoch=4) == 0  # already overran
    assert plan_steps(100.0, 1.0, 0.0, steps_per_epoch=4) == 100
    with pytest.raises(ValueError):
        plan_steps(10.0, 0.0, 3.0, steps_per_epoch=4)


def test_the_first_epoch_fixes_the_steps_and_the_schedules_span_them():
    clock, plans = FakeClock(), []
    budget = PlannedBudget(100, record=plans.append, clock=clock, warmup_steps=2)
    trainer, method, seen = _fit(budget, clock)
    # epoch 1: steps end at 5, 6, 7, 8 s (the first is start-up, left out: 1 s a step), evaluation
    # to 11 s; in the 89 s left fit 12 epochs of 4 x 1 + 3 = 7 s, then 2 steps and an evaluation
    assert plans == [
        BudgetPlan(total_steps=54, steps_per_epoch=4, seconds_per_step=1.0, seconds_per_evaluation=3.0)
    ]
    assert plans[0].epochs == 14 and plans[0].seconds_per_epoch == 7.0
    assert seen.epochs == list(range(14)) and not trainer.interrupted and trainer.global_step == 54
    assert clock.now == 11 + 12 * 7 + 2 + 3 <= 100
    assert (trainer.epochs, trainer.total_steps) == (14, 54)
    # the methods' momentum schedules: the nominal 12 steps until the plan, then 54
    assert method.totals == [12] * 4 + [54] * 50
    # the learning rate warms up over epoch 1, then decays over all 54 steps (not the nominal 12)
    decay = seen.lrs[3:]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False)) and seen.lrs[11] > 0.9 * BASE_LR
    assert seen.lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert seen.lrs[26] == pytest.approx(BASE_LR * WarmupCosine(4, 54)(27))


def test_the_first_steps_make_a_provisional_plan(caplog):
    clock, plans = FakeClock(), []
    budget = PlannedBudget(100, record=plans.append, clock=clock, warmup_steps=2, pace_steps=3)
    with caplog.at_level(logging.INFO, logger="siamese"):
        trainer, method, _ = _fit(budget, clock, steps_per_epoch=20, nominal_epochs=2)
    # step 5 ends at 9 s, 1 s a step: the 15 steps left of epoch 1 end at 24 s, then 76 steps fit
    # in the 76 s left (no evaluation timed yet): 96 steps, from step 6 on
    assert method.totals[:5] == [40] * 5 and method.totals[5:20] == [96] * 15
    # at 27 s, after the evaluation: 3 epochs of 23 s fit in the 73 s left, then 1 step and its evaluation
    assert plans[0].total_steps == 20 + 3 * 20 + 1 and plans[0].epochs == 5
    assert method.totals[20:] == [81] * 61 and trainer.epochs == 5
    assert clock.now == 27 + 3 * 23 + 1 + 3 and "-> 81 steps in 5 epochs" in caplog.text
    assert "more than the" not in caplog.text


def test_slower_epochs_finish_the_run_on_time(caplog):
    clock = FakeClock()
    budget = PlannedBudget(100, clock=clock, warmup_steps=2)
    with caplog.at_level(logging.WARNING, logger="siamese"):
        trainer, _, seen = _fit(budget, clock, slow_from=2)  # planned at 7 s an epoch; 11 s from epoch 3
    # after epoch 9 (95 s) the epochs since the plan took 10.5 s on average: a 10th would end at 105.5 s
    assert trainer.epochs == 14 and seen.epochs == list(range(9)) and clock.now == 95
    assert not trainer.interrupted and "stopping after epoch 9 of 14" in caplog.text


def test_a_budget_shorter_than_one_epoch_cuts_it(caplog):
    clock, plans = FakeClock(), []
    budget = PlannedBudget(12, record=plans.append, clock=clock, warmup_steps=2, pace_steps=3)
    with caplog.at_level(logging.WARNING, logger="siamese"):
        trainer, method, seen = _fit(budget, clock, steps_per_epoch=20)
    # step 5 ends at 9 s: 3 more steps fit in the 3 s left; the evaluation comes on top
    assert trainer.global_step == 8 and seen.epochs == [0] and plans[0].total_steps == 8
    assert method.totals == [60] * 5 + [8] * 3 and seen.lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert clock.now == 12 + 3 and "this one stops after step 8 of 20" in caplog.text
    assert "the first epoch took 15 s, more than the 0.2-minute budget" in caplog.text


def test_a_first_epoch_over_budget_ends_the_run(caplog):
    clock, plans = FakeClock(), []
    with caplog.at_level(logging.INFO, logger="siamese"):
        trainer, _, seen = _fit(PlannedBudget(5, record=plans.append, clock=clock), clock)
    assert seen.epochs == [0] and plans[0].total_steps == 4 and trainer.total_steps == 4
    assert "the first epoch took 11 s, more than the 0.1-minute budget" in caplog.text
    assert "-> 4 steps in 1 epoch;" in caplog.text


def test_a_recorded_plan_is_kept_without_measuring_again():
    clock, plans = FakeClock(), []
    budget = PlannedBudget(100, planned_steps=22, record=plans.append, clock=clock)
    trainer, method, seen = _fit(budget, clock)
    assert seen.epochs == list(range(6)) and plans == [] and method.totals == [22] * 22  # 5 x 4 + 2
    assert trainer.scheduler.lr_lambdas[0].total_steps == 22 and seen.lrs[-1] == pytest.approx(0.0)


def test_set_total_steps_moves_the_current_learning_rate_and_is_saved_with_the_state():
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(0, 10))
    for _ in range(5):
        opt.step()
        scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)  # halfway through 10 steps
    set_total_steps(scheduler, 20)
    assert opt.param_groups[0]["lr"] == pytest.approx(WarmupCosine(0, 20)(5))
    assert scheduler.get_last_lr() == [opt.param_groups[0]["lr"]]
    state = json.loads(json.dumps(scheduler.state_dict()))  # as the training state stores it
    fresh = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(0, 10))
    fresh.load_state_dict(state)
    assert fresh.lr_lambdas[0].total_steps == 20 and fresh.last_epoch == 5


def test_warmup_cosine_is_the_schedule_of_earlier_versions():
    import numpy as np

    def earlier(step, warmup, total):
        total = max(total, 1)
        warmup = min(warmup, total - 1)
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * min((step - warmup) / max(total - warmup, 1), 1.0)))

    for warmup, total in ((4, 40), (0, 7), (10, 5), (3, 0)):
        f = WarmupCosine(warmup, total)
        assert [f(s) for s in range(45)] == [earlier(s, warmup, total) for s in range(45)]


def test_config_records_the_budget_and_refuses_epochs_with_it(tmp_path):
    from siamese.training.config import TrainConfig, build_train_config

    config = build_train_config("digits", minutes=2.5)
    assert config.minutes == 2.5 and config.planned_steps is None
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert (again.minutes, again.planned_steps, again.optim) == (2.5, None, config.optim)
    with pytest.raises(ConfigError, match="give --epochs or --minutes, not both"):
        build_train_config("digits", minutes=2.5, epochs=4)
    with pytest.raises(ConfigError, match="minutes must be > 0"):
        build_train_config("digits", minutes=0)
    with pytest.raises(ConfigError, match="planned steps must be >= 1 and come with minutes"):
        build_train_config("digits", planned_steps=3)


def test_time_budgets_plan_for_the_smaller_budget_and_record_the_plan(tmp_path):
    from siamese.training.config import TrainConfig, build_train_config

    assert time_budgets(build_train_config("digits"), tmp_path) == []
    (cap,) = time_budgets(build_train_config("digits", max_minutes=2), tmp_path)
    assert isinstance(cap, TimeBudget) and cap.seconds == 120
    config = build_train_config("digits", minutes=3, max_minutes=2)
    (budget,) = time_budgets(config, tmp_path)
    assert isinstance(budget, PlannedBudget) and budget.seconds == 120 and budget.planned is None
    budget.record(
        BudgetPlan(total_steps=33, steps_per_epoch=5, seconds_per_step=0.1, seconds_per_evaluation=1.0)
    )
    recorded = TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert recorded.planned_steps == 33 and recorded.minutes == 3 and recorded.optim == config.optim
    (resumed,) = time_budgets(recorded, tmp_path)
    assert resumed.planned == 33


def test_train_minutes_records_its_plan_and_runs_it(tmp_path):
    from siamese.cli.app import app

    runner = CliRunner(env={"COLUMNS": "250"})
    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    out = tmp_path / "run"
    tiny = ["--preset", "digits", "--batch-size", "8", "--samples-per-epoch", "16", "--eval-pairs", "8"]
    args = ["train", str(data), *tiny, "--embedding-dim", "8", "--minutes", "0.02", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    rows = (out / "metrics.csv").read_text().splitlines()[1:]
    steps_per_epoch = math.ceil(config["data"]["samples_per_epoch"] / config["optim"]["batch_size"])
    assert config["minutes"] == 0.02 and config["planned_steps"] >= 1
    assert len(rows) == math.ceil(config["planned_steps"] / steps_per_epoch)
    both = runner.invoke(app, ["train", str(data), "--minutes", "1", "--epochs", "3"])
    assert both.exit_code == 1 and "give --epochs or --minutes, not both" in both.stderr

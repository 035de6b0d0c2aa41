"""The learning-rate schedule: linear warm-up, then cosine decay, over a length a time budget may re-plan."""

from __future__ import annotations

import numpy as np
import torch


class WarmupCosine:
    """Learning-rate factor of a step: linear warm-up to 1, then cosine decay to 0 at `total_steps`.

    A callable object rather than a closure, so `total_steps` can be re-planned during a run
    (`siamese.training.budget`) and `LambdaLR.state_dict` saves it with the training state.

    Args:
        warmup_steps: steps of linear warm-up (at most `total_steps - 1`).
        total_steps: the step at which the factor reaches 0; later steps stay at 0.

    >>> f = WarmupCosine(warmup_steps=2, total_steps=10)
    >>> [round(f(s), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """

    def __init__(self, warmup_steps: int, total_steps: int) -> None:
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps

    def __call__(self, step: int) -> float:
        total = max(self.total_steps, 1)
        warmup = min(self.warmup_steps, total - 1)
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return float(0.5 * (1 + np.cos(np.pi * min(progress, 1.0))))


def set_total_steps(scheduler: torch.optim.lr_scheduler.LRScheduler | None, total_steps: int) -> None:
    """Stretch (or shrink) the `WarmupCosine` factors of `scheduler` to end at `total_steps`, and
    set the optimiser's current learning rates to the new schedule's value at this step.

    Schedulers of other kinds are left as they are.
    """
    factors = getattr(scheduler, "lr_lambdas", [])
    if scheduler is None or not all(isinstance(f, WarmupCosine) for f in factors) or not factors:
        return
    for f in factors:
        f.total_steps = total_steps
    step = scheduler.last_epoch
    groups = scheduler.optimizer.param_groups
    for group, base, f in zip(groups, scheduler.base_lrs, factors, strict=True):
        group["lr"] = base * f(step)
    scheduler._last_lr = [group["lr"] for group in groups]  # what get_last_lr() reports

"""The part MoCo and BYOL share: a momentum copy of the online network, updated after each step."""

from __future__ import annotations

from torch import nn

from siamese.models.momentum import cosine_schedule, momentum_copy, update_momentum
from siamese.training.methods.base import Method


class MomentumMethod(Method):
    """A method with a momentum (EMA) target: `target <- m * target + (1 - m) * online`.

    The online network is the encoder followed by `self.projector`; the target is a copy of both.
    `m` follows a cosine schedule from `momentum` to `momentum_end` over the run (BYOL); equal
    values keep it constant (MoCo's 0.99 by default). Subclasses set `self.projector` and call
    `init_momentum()`; the target receives no gradient and is saved with the method.

    Args:
        encoder: the shared encoder that checkpoints keep.
        momentum: EMA coefficient at the first step.
        momentum_end: EMA coefficient at the last step.
    """

    projector: nn.Module  # set by the subclass before `init_momentum()`

    def __init__(self, encoder: nn.Module, momentum: float, momentum_end: float) -> None:
        super().__init__(encoder, "cosine")
        self.momentum = float(momentum)
        self.momentum_end = float(momentum_end)

    def online(self) -> nn.Module:
        """Encoder then projector (a view over the registered modules, not a copy)."""
        return nn.Sequential(self.encoder, self.projector)

    def init_momentum(self) -> None:
        """Create `self.target`, a gradient-free copy of the online network."""
        self.target = momentum_copy(self.online())

    def current_momentum(self, step: int, total_steps: int) -> float:
        """The EMA coefficient at `step` of `total_steps`."""
        return cosine_schedule(step, max(total_steps, 1), self.momentum, self.momentum_end)

    def on_after_optimizer_step(self, step: int, total_steps: int) -> None:
        update_momentum(self.target, self.online(), self.current_momentum(step, total_steps))

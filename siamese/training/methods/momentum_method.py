"""The part MoCo and BYOL share: a momentum copy of the online network, updated after each step."""

from __future__ import annotations

from torch import nn

from siamese.errors import ConfigError
from siamese.models.momentum import cosine_schedule, momentum_copy, update_momentum
from siamese.training.methods.two_view import TwoViewMethod


class MomentumMethod(TwoViewMethod):
    """A method with a momentum (EMA) target: `target <- m * target + (1 - m) * online`.

    The online network is the encoder followed by `self.projector`; the target is a copy of both.
    `m` follows a cosine schedule from `momentum` to `momentum_end` over the run (BYOL); equal
    values keep it constant (MoCo). Subclasses set `self.projector` and call `init_momentum()`;
    the target receives no gradient and is saved with the method.

    Args:
        encoder: the shared encoder that checkpoints keep.
        loss: the objective (None: the subclass's `loss_class`).
        distance: pair distance of verification (None: cosine).
        momentum: EMA coefficient at the first step.
        momentum_end: EMA coefficient at the last step.

    Raises:
        ConfigError: a coefficient outside [0, 1].
    """

    def __init__(
        self,
        encoder: nn.Module,
        loss: nn.Module | None,
        distance: str | None,
        momentum: float,
        momentum_end: float,
    ) -> None:
        super().__init__(encoder, loss, distance)
        for name, value in (("momentum", momentum), ("momentum end", momentum_end)):
            if not 0 <= value <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
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

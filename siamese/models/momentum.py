"""Momentum (EMA) target networks for MoCo and BYOL, and BYOL's cosine momentum schedule."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch
from torch import nn

from siamese.errors import ConfigError


def momentum_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters do not require gradients.

    The copy starts with the same weights, buffers and train/eval mode; it is meant to be updated
    only by :func:`update_momentum`.

    Args:
        module: the online network (or one of its parts).

    Returns:
        The independent copy.
    """
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


@torch.no_grad()
def update_momentum(target: nn.Module, online: nn.Module, m: float) -> None:
    """EMA update in place: ``theta_t <- m * theta_t + (1 - m) * theta_o`` for every parameter.

    Buffers (batch-norm running statistics and counters) are copied from ``online`` rather than
    averaged, so the target normalises with statistics of the same weights history; lightly's
    ``update_momentum`` leaves buffers alone (they then only change in the target's own forward
    passes in train mode). Note the order: the target comes first here.

    Args:
        target: the momentum network, updated in place.
        online: the network trained by the optimiser; unchanged.
        m: momentum in ``[0, 1]``; 1 keeps the target's parameters, 0 copies the online ones.

    Raises:
        ConfigError: if ``m`` is outside ``[0, 1]`` or the two modules' parameters or buffers do
            not have the same names and shapes.
    """
    if not 0.0 <= m <= 1.0:
        raise ConfigError(f"momentum must be in [0, 1], got {m!r}")
    pairs = _matched(target.named_parameters(), online.named_parameters(), "parameters")
    buffers = _matched(target.named_buffers(), online.named_buffers(), "buffers")
    if pairs:  # one fused (foreach) multiply and add over all parameters: the same arithmetic
        targets, onlines = zip(*pairs, strict=True)
        torch._foreach_mul_(list(targets), m)
        torch._foreach_add_(list(targets), [o.detach() for o in onlines], alpha=1.0 - m)
    for t, o in buffers:
        t.copy_(o)


def _matched(
    target: Iterable[tuple[str, torch.Tensor]], online: Iterable[tuple[str, torch.Tensor]], kind: str
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    t, o = dict(target), dict(online)
    if t.keys() != o.keys() or any(t[k].shape != o[k].shape for k in t):
        raise ConfigError(f"target and online networks must have the same {kind} (names and shapes)")
    return [(t[k], o[k]) for k in t]


def cosine_schedule(step: int, total_steps: int, start: float = 0.99, end: float = 1.0) -> float:
    """BYOL's momentum schedule: ``end - (end - start) * (cos(pi * step / total_steps) + 1) / 2``.

    It is ``start`` at step 0, halfway at ``total_steps / 2`` and ``end`` at ``total_steps``;
    later steps stay at ``end``. Lightly's ``cosine_schedule`` divides by ``max_steps - 1``
    instead, reaching ``end`` one step earlier.

    Args:
        step: the current step, from 0.
        total_steps: the step at which ``end`` is reached.
        start: value at step 0 (BYOL: 0.996).
        end: final value.

    Returns:
        The scheduled value.

    Raises:
        ConfigError: if ``step < 0`` or ``total_steps < 1``.

    Example:
        >>> cosine_schedule(0, 10), cosine_schedule(5, 10), cosine_schedule(10, 10)
        (0.99, 0.995, 1.0)
    """
    if step < 0:
        raise ConfigError(f"step must be >= 0, got {step!r}")
    if total_steps < 1:
        raise ConfigError(f"total_steps must be >= 1, got {total_steps!r}")
    progress = min(step, total_steps) / total_steps
    return end - (end - start) * (math.cos(math.pi * progress) + 1) / 2

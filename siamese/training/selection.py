"""Which epoch a run keeps as its model, from its per-epoch validation EERs.

A validation EER is an estimate: on 1,000 balanced pairs an EER near 4% has a standard error of
about 0.6 points, and the validation pairs are the same every epoch, so the lowest of a dozen
epochs is often an early one that only had luck with those pairs. The "stable" rule keeps an
earlier epoch only when its EER beats the last epoch's by more than that standard error; otherwise
the last epoch, the one trained longest, is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SELECT_RULES = ("stable", "best", "last")
""""stable": the last epoch unless an earlier one is lower by more than `STABLE_MARGIN` standard
errors; "best": the lowest validation EER (the earliest of ties); "last": the final epoch."""

STABLE_MARGIN = 1.0
"""How many standard errors of the last epoch's EER an earlier epoch must beat it by ("stable")."""


def eer_standard_error(eer: float, n_pairs: int) -> float:
    """Standard error of an EER measured on `n_pairs` balanced pairs (half genuine, half impostor).

    The EER is the mean of the false reject rate (a proportion over the genuine pairs) and the false
    accept rate (over the impostor pairs) where they meet, so its variance is
    `(p(1-p)/(n/2) + p(1-p)/(n/2)) / 4 = p(1-p)/n`.

    Args:
        eer: the estimated EER, in [0, 1].
        n_pairs: number of scored pairs (>= 1).

    Returns:
        `sqrt(eer * (1 - eer) / n_pairs)`.

    >>> round(eer_standard_error(0.04, 1000), 4)
    0.0062
    >>> eer_standard_error(0.0, 1000)
    0.0
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    p = min(max(eer, 0.0), 1.0)
    return math.sqrt(p * (1.0 - p) / n_pairs)


def _finite(history: Sequence[float | None]) -> list[int]:
    """Positions of the measured (not None, not NaN, not infinite) values."""
    return [i for i, v in enumerate(history) if v is not None and math.isfinite(v)]


def select_epoch(
    history: Sequence[float | None], n_pairs: int, rule: str = "stable", margin: float = STABLE_MARGIN
) -> int:
    """The position in `history` of the epoch a run keeps.

    Epochs without a measurement (None or NaN) are never kept by "best" or "stable"; when no epoch
    has one, every rule keeps the last epoch. "stable" compares the lowest EER (the earliest of
    ties) with the last measured epoch's and keeps it only when it is lower by more than
    `margin` standard errors of the latter (`eer_standard_error`), so it always keeps either the
    "best" epoch or the last measured one.

    Args:
        history: validation EER of each epoch, first epoch first (None or NaN where not measured).
        n_pairs: validation pairs each EER was measured on.
        rule: one of `SELECT_RULES`.
        margin: standard errors the "stable" rule asks for.

    Returns:
        A position in `history` (0 = the first epoch).

    Raises:
        ValueError: empty history or unknown rule.

    >>> select_epoch([0.036, 0.05, 0.045, 0.040], n_pairs=1000)  # 0.4 points: inside the noise
    3
    >>> select_epoch([0.036, 0.05, 0.045, 0.040], n_pairs=1000, rule="best")
    0
    >>> select_epoch([0.02, 0.05, 0.045, 0.060], n_pairs=1000)  # 4 points: a real degradation
    0
    """
    if not history:
        raise ValueError("no epochs to select from")
    if rule not in SELECT_RULES:
        raise ValueError(f"unknown selection rule {rule!r}; choose one of: {', '.join(SELECT_RULES)}")
    measured = _finite(history)
    if rule == "last" or not measured:
        return len(history) - 1
    best = min(measured, key=lambda i: (history[i], i))
    if rule == "best":
        return best
    last = measured[-1]
    last_eer, best_eer = float(history[last]), float(history[best])  # type: ignore[arg-type]
    return best if last_eer - best_eer > margin * eer_standard_error(last_eer, n_pairs) else last

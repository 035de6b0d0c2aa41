"""Which epoch a run keeps as its model, from its per-epoch validation EERs.

A validation EER is an estimate, and the validation identities and pairs are the same every
epoch, so the lowest of a dozen epochs is often an early one that only suits those identities. The
"stable" rule keeps an earlier epoch only when its EER beats the last epoch's by more than the
standard error of that estimate; otherwise the last epoch, the one trained longest, is kept.

The standard error counts what is really sampled: pairs of one identity share its difficulty, so
the genuine pairs weigh at most as many independent draws as there are validation identities and
the impostor pairs as many as there are pairs of identities (`eer_standard_error`). With 6
validation people a difference of 3 points is noise; with 48 characters, 1.5 points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SELECT_RULES = ("stable", "best", "last")
""""stable": the last epoch unless an earlier one is lower by more than `STABLE_MARGIN` standard
errors; "best": the lowest validation EER (the earliest of ties); "last": the final epoch."""

STABLE_MARGIN = 1.0
"""How many standard errors of the last epoch's EER an earlier epoch must beat it by ("stable")."""


def eer_standard_error(eer: float, n_pairs: int, identities: int | None = None) -> float:
    """Standard error of an EER measured on `n_pairs` balanced pairs (half genuine, half impostor)
    of `identities` validation identities.

    The EER is the mean of the false reject rate (a proportion over `g` genuine draws) and the
    false accept rate (over `i` impostor draws) where they meet, so its variance is
    `p(1-p) (1/g + 1/i) / 4`. Without `identities`, `g = i = n_pairs / 2` (independent pairs:
    `p(1-p)/n_pairs`); with them, a genuine pair's difficulty is its identity's, so
    `g = min(n_pairs / 2, identities)` and `i = min(n_pairs / 2, identities (identities - 1) / 2)`.

    Args:
        eer: the estimated EER, in [0, 1].
        n_pairs: number of scored pairs (>= 1).
        identities: number of identities the pairs are drawn from (>= 1), or None.

    >>> round(eer_standard_error(0.04, 1000), 4)  # sqrt(0.04 * 0.96 / 1000)
    0.0062
    >>> round(eer_standard_error(0.04, 1000, identities=48), 4)  # g = 48, i = 500
    0.0148
    >>> eer_standard_error(0.0, 1000)
    0.0
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    if identities is not None and identities < 1:
        raise ValueError(f"identities must be >= 1, got {identities}")
    genuine = impostor = n_pairs / 2
    if identities is not None:
        pairs_of_identities = max(identities * (identities - 1) / 2, 1)
        genuine, impostor = min(genuine, identities), min(impostor, pairs_of_identities)
    p = min(max(eer, 0.0), 1.0)
    return 0.5 * math.sqrt(p * (1.0 - p) * (1 / genuine + 1 / impostor))


def _finite(history: Sequence[float | None]) -> list[int]:
    """Positions of the measured (not None, not NaN, not infinite) values."""
    return [i for i, v in enumerate(history) if v is not None and math.isfinite(v)]


def select_epoch(
    history: Sequence[float | None],
    n_pairs: int,
    rule: str = "stable",
    identities: int | None = None,
    margin: float = STABLE_MARGIN,
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
        identities: validation identities the pairs come from (None: independent pairs).
        margin: standard errors the "stable" rule asks for.

    Returns:
        A position in `history` (0 = the first epoch).

    Raises:
        ValueError: empty history or unknown rule.

    >>> select_epoch([0.036, 0.05, 0.045, 0.040], n_pairs=1000, identities=48)  # 0.4 points: noise
    3
    >>> select_epoch([0.036, 0.05, 0.045, 0.040], n_pairs=1000, rule="best")
    0
    >>> select_epoch([0.02, 0.05, 0.045, 0.060], n_pairs=1000, identities=48)  # 4 points: real
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
    noise = margin * eer_standard_error(last_eer, n_pairs, identities)
    return best if last_eer - best_eer > noise else last

"""Turning a distance into a confidence that a pair is the same identity."""

from __future__ import annotations

import math

import numpy as np


def fit_confidence(distances: np.ndarray, is_same: np.ndarray) -> dict[str, float]:
    """Fit a logistic calibration `P(same | d) = sigmoid(coef * d + intercept)` on validation pairs.

    Args:
        distances: pair distances `(P,)`.
        is_same: whether each pair is genuine `(P,)`.

    Returns:
        `{"coef": ..., "intercept": ...}` (coef is negative when smaller distances mean "same").

    Example:
        >>> cal = fit_confidence(np.array([0.1, 0.2, 0.3, 0.9, 1.0, 1.1]), np.array([1, 1, 1, 0, 0, 0], bool))
        >>> confidence(0.15, cal) > 0.5 > confidence(1.05, cal)
        True
    """
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=10.0)
    lr.fit(np.asarray(distances, dtype=np.float64).reshape(-1, 1), np.asarray(is_same, dtype=bool))
    return {"coef": float(lr.coef_[0, 0]), "intercept": float(lr.intercept_[0])}


def confidence(distance: float, calibration: dict[str, float]) -> float:
    """Probability in [0, 1] that a pair at `distance` is the same identity."""
    z = calibration["coef"] * distance + calibration["intercept"]
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

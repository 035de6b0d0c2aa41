"""Hand-placed embeddings for the loss and miner tests."""

from __future__ import annotations

import math

import torch


def circle(angles_deg: list[float], radii: list[float] | None = None) -> torch.Tensor:
    """Points ``r * (cos a, sin a)`` in float64, one row per angle: ``(B, 2)``.

    On the unit circle the chord between angles ``a`` and ``b`` is ``2 sin(|a - b| / 2)``, so
    which pair is closest or farthest is plain from the angles.
    """
    radii = radii if radii is not None else [1.0] * len(angles_deg)
    rows = [
        [r * math.cos(math.radians(a)), r * math.sin(math.radians(a))]
        for a, r in zip(angles_deg, radii, strict=True)
    ]
    return torch.tensor(rows, dtype=torch.float64)


def long(values: list[int]) -> torch.Tensor:
    """A LongTensor (labels or indices); `torch.tensor([])` alone would be float."""
    return torch.tensor(values, dtype=torch.long)

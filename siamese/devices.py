"""Choosing the torch device from a user's `--device` value (cheap to import: torch only)."""

from __future__ import annotations

import torch

from siamese.errors import ConfigError


def resolve_device(device: str | torch.device) -> torch.device:
    """ "auto" picks CUDA when available, else the CPU.

    Raises:
        ConfigError: CUDA requested but not available, or an unknown device name.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but CUDA is not available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda") from None

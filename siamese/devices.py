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


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the encoders' backbones in training, or None for float32.

    "bf16" asks for bfloat16 autocast; "auto" takes it only where the hardware computes it natively
    (a CUDA device that supports bfloat16, a CPU with AVX512-BF16 or AMX through oneDNN), since an
    emulated bfloat16 is slower than float32; "fp32" never does.

    Raises:
        ConfigError: an unknown precision name.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ConfigError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    return torch.bfloat16 if native_bf16(device) else None


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 matrix products natively."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())

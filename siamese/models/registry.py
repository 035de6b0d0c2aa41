"""The encoder registry and its `get_encoder` factory."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from siamese.errors import ConfigError
from siamese.models.encoder import Encoder
from siamese.models.signet import signet
from siamese.models.small_cnn import smallcnn
from siamese.models.torchvision_backbones import mobilenet_v3_small, resnet18, resnet34, resnet50

ENCODERS: dict[str, Callable[..., Encoder]] = {
    "smallcnn": smallcnn,
    "signet": signet,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "mobilenet_v3_small": mobilenet_v3_small,
}
"""Builders keyed by `siamese.names.ENCODERS`; each takes
`(in_channels, embedding_dim, normalize, pretrained, **extra)` and returns an `Encoder`."""

_COMMON = ("in_channels", "embedding_dim", "normalize", "pretrained")


def get_encoder(
    name: str | nn.Module,
    in_channels: int = 1,
    embedding_dim: int | None = 128,
    normalize: bool = True,
    pretrained: bool = False,
    **kwargs: Any,
) -> Encoder:
    """Build a registered encoder by name, or pass an `Encoder` instance through unchanged.

    `get_encoder(**encoder.spec)` rebuilds the architecture of `encoder` (with fresh weights).

    Args:
        name: A key of `ENCODERS`, or an `Encoder` (returned as is; the other arguments are ignored).
        in_channels: Image channels.
        embedding_dim: Output size of the linear head; None or 0 for no head (an `nn.Identity`).
        normalize: L2-normalise embeddings.
        pretrained: Start from torchvision's default weights (downloads; torchvision encoders only).
        **kwargs: Encoder-specific options, e.g. `width`, `stem_stride` for `smallcnn`.

    Returns:
        The encoder.

    Raises:
        ConfigError: Unknown name, unknown option, or bad dimensions.
    """
    if isinstance(name, Encoder):
        return name
    if isinstance(name, nn.Module):
        raise ConfigError(
            f"get_encoder needs an Encoder, got {type(name).__name__}; "
            "wrap it as Encoder(backbone, feature_dim, embedding_dim, normalize, spec)"
        )
    if not isinstance(name, str) or name not in ENCODERS:
        raise ConfigError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}")
    builder = ENCODERS[name]
    allowed = [p for p in inspect.signature(builder).parameters if p not in _COMMON]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        extra = ", ".join(allowed) if allowed else "none"
        raise ConfigError(f"unknown option(s) {unknown} for encoder {name!r}; its extra options: {extra}")
    return builder(
        in_channels=in_channels,
        embedding_dim=embedding_dim,
        normalize=normalize,
        pretrained=pretrained,
        **kwargs,
    )

"""torchvision backbones (ResNet, MobileNetV3) as encoders with any number of input channels.

torchvision is imported inside the builders only: importing it costs about two seconds, and
`import siamese.models` must stay cheap.
"""

from __future__ import annotations

import logging
from typing import cast

import torch
from torch import nn

from siamese.errors import CheckpointError, ConfigError
from siamese.models.encoder import Encoder, check_encoder_args

logger = logging.getLogger(__name__)


def _pair(size: tuple[int, ...]) -> tuple[int, int]:
    """A Conv2d size attribute as the `(h, w)` its constructor takes (torch types them `tuple[int, ...]`)."""
    height, width = size
    return height, width


def adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """Return a copy of a stem conv that takes `in_channels` inputs, initialised from `conv`.

    If `in_channels` is a multiple of the old channel count the old kernels are tiled; otherwise
    every new channel gets the mean of the old kernels. Either way the weights are scaled by
    `old / new` channels, so an image whose channels are copies of one another (e.g. a grayscale
    image fed as 1 channel versus as 3 identical RGB channels) gives the same response.

    Args:
        conv: The original first convolution (`groups == 1`).
        in_channels: Channel count of the new convolution.

    Returns:
        `conv` itself when the channel count already matches, else a new `nn.Conv2d`.
    """
    if in_channels == conv.in_channels:
        return conv
    if conv.groups != 1:
        raise ConfigError(f"cannot adapt a grouped first conv (groups={conv.groups})")
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=_pair(conv.kernel_size),
        stride=_pair(conv.stride),
        padding=conv.padding if isinstance(conv.padding, str) else _pair(conv.padding),
        dilation=_pair(conv.dilation),
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    old = conv.weight.detach()  # (O, C_old, k, k)
    c_old = old.shape[1]
    if in_channels % c_old == 0:
        weight = old.repeat(1, in_channels // c_old, 1, 1)
    else:
        weight = old.mean(dim=1, keepdim=True).expand(-1, in_channels, -1, -1)
    with torch.no_grad():
        new.weight.copy_(weight * (c_old / in_channels))  # (O, C_new, k, k)
        if conv.bias is not None and new.bias is not None:  # new has a bias exactly when conv has
            new.bias.copy_(conv.bias)
    return new


def _load_torchvision(arch: str, pretrained: bool) -> nn.Module:
    from torchvision import models

    if pretrained:
        logger.info("loading torchvision's default pretrained weights for %s", arch)
    try:
        return models.get_model(arch, weights="DEFAULT" if pretrained else None)
    except OSError as exc:  # includes URLError: no network, no cached weights
        raise CheckpointError(
            f"could not get pretrained weights for {arch} ({exc}); "
            "use pretrained=False or put the weights in the torch hub cache"
        ) from exc


def _torchvision_encoder(
    arch: str, in_channels: int, embedding_dim: int | None, normalize: bool, pretrained: bool
) -> Encoder:
    """Load `arch`, adapt its stem to `in_channels`, drop its classifier and wrap it in an Encoder."""
    check_encoder_args(in_channels, embedding_dim)
    model = _load_torchvision(arch, pretrained)
    if arch.startswith("resnet"):
        model.conv1 = adapt_first_conv(cast(nn.Conv2d, model.conv1), in_channels)
        feature_dim = cast(nn.Linear, model.fc).in_features
        model.fc = nn.Identity()
    else:  # mobilenet_v3: features[0] is Conv-BN-Hardswish; classifier starts with Linear(576, ...)
        stem = cast(nn.Sequential, cast(nn.Sequential, model.features)[0])
        stem[0] = adapt_first_conv(cast(nn.Conv2d, stem[0]), in_channels)
        feature_dim = cast(nn.Linear, cast(nn.Sequential, model.classifier)[0]).in_features
        model.classifier = nn.Identity()
    spec = {"name": arch, "in_channels": in_channels}
    return Encoder(model, feature_dim, embedding_dim, normalize, spec)


def resnet18(
    in_channels: int = 1, embedding_dim: int | None = 128, normalize: bool = True, pretrained: bool = False
) -> Encoder:
    """ResNet-18 encoder (512 features). `pretrained=True` downloads torchvision's default weights."""
    return _torchvision_encoder("resnet18", in_channels, embedding_dim, normalize, pretrained)


def resnet34(
    in_channels: int = 1, embedding_dim: int | None = 128, normalize: bool = True, pretrained: bool = False
) -> Encoder:
    """ResNet-34 encoder (512 features). `pretrained=True` downloads torchvision's default weights."""
    return _torchvision_encoder("resnet34", in_channels, embedding_dim, normalize, pretrained)


def resnet50(
    in_channels: int = 1, embedding_dim: int | None = 128, normalize: bool = True, pretrained: bool = False
) -> Encoder:
    """ResNet-50 encoder (2048 features). `pretrained=True` downloads torchvision's default weights."""
    return _torchvision_encoder("resnet50", in_channels, embedding_dim, normalize, pretrained)


def mobilenet_v3_small(
    in_channels: int = 1, embedding_dim: int | None = 128, normalize: bool = True, pretrained: bool = False
) -> Encoder:
    """MobileNetV3-Small encoder (576 features). `pretrained=True` downloads torchvision's weights."""
    return _torchvision_encoder("mobilenet_v3_small", in_channels, embedding_dim, normalize, pretrained)

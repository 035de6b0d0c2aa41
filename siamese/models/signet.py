"""SigNet: the convolutional network of Dey et al.'s writer-independent signature verifier.

S. Dey, A. Dutta, J. I. Toledo, S. K. Ghosh, J. Lladós and U. Pal, "SigNet: Convolutional Siamese
Network for Writer Independent Offline Signature Verification", 2017 (arXiv:1707.02131), Table 1:
155x220 grayscale input; conv 96x11x11 - LRN - maxpool 3/2; conv 256x5x5 (pad 2) - LRN - maxpool
3/2 - dropout 0.3; conv 384x3x3 (pad 1); conv 256x3x3 (pad 1) - maxpool 3/2 - dropout 0.3;
fully connected 1024 - dropout 0.5; fully connected 128 (here the `Encoder`'s head). ReLU after
every convolution and the first fully connected layer; LRN with alpha 1e-4, beta 0.75, k 2, n 5.
"""

from __future__ import annotations

import torch
from torch import nn

from siamese.errors import ConfigError
from siamese.models.encoder import Encoder, check_encoder_args, check_positive_ints
from siamese.models.small_cnn import GridPool

INPUT_SIZE = (155, 220)
"""(H, W) of the paper's input; the fully connected layer is sized for it."""


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2)


def feature_map_size(size: tuple[int, int], stem_stride: int) -> tuple[int, int]:
    """(h, w) of the last convolutional block's output for an input of `size` (H, W)."""

    def side(n: int) -> int:
        n = (n - 11) // stem_stride + 1  # conv1, no padding
        for _ in range(3):  # the three 3/2 max pools (conv2-4 keep the size)
            n = (n - 3) // 2 + 1
        return n

    return side(size[0]), side(size[1])


class SigNet(nn.Module):
    """SigNet's convolutions and first fully connected layer: `(B, C, H, W) -> (B, 1024)`.

    The fully connected layer is sized for 155x220 inputs; other sizes are average-pooled to the
    feature map that 155x220 gives, so any input of at least 11 + 14 * `stem_stride` pixels a side
    works (at 155x220 the pooling is the identity).
    """

    def __init__(self, in_channels: int = 1, stem_stride: int = 4, fc: int = 1024) -> None:
        """Build the network.

        Args:
            in_channels: Image channels.
            stem_stride: Stride of the 11x11 first convolution. 4 is AlexNet's, whose first layers
                SigNet copies, and gives 6.5M weights; 1 gives a 111M-weight fully connected layer
                and about 10x the compute.
            fc: Units of the first fully connected layer (the features fed to the head).

        Raises:
            ConfigError: A non-positive option.
        """
        super().__init__()
        check_positive_ints("signet", in_channels=in_channels, stem_stride=stem_stride, fc=fc)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, kernel_size=11, stride=stem_stride),
            nn.ReLU(inplace=True),
            _lrn(),
            _pool(),
            nn.Conv2d(96, 256, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            _lrn(),
            _pool(),
            nn.Dropout(0.3),
            nn.Conv2d(256, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            _pool(),
            nn.Dropout(0.3),
        )
        self.map_size = feature_map_size(INPUT_SIZE, stem_stride)
        if min(self.map_size) < 1:
            raise ConfigError(f"signet stem_stride {stem_stride} leaves no feature map at 155x220")
        self.pool = GridPool(self.map_size)
        self.fc = nn.Sequential(
            nn.Linear(256 * self.map_size[0] * self.map_size[1], fc), nn.ReLU(inplace=True), nn.Dropout(0.5)
        )
        self.feature_dim = fc
        self.min_side = 11 + 14 * stem_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W) -> (B, fc)`."""
        if min(x.shape[-2:]) < self.min_side:
            size = tuple(x.shape[-2:])
            raise ValueError(f"signet needs images of at least {self.min_side} px a side, got {size}")
        maps = self.features(x)  # (B, 256, h, w)
        if tuple(maps.shape[-2:]) != self.map_size:
            maps = self.pool(maps)  # (B, 256, *map_size)
        return self.fc(maps.flatten(1))


def signet(
    in_channels: int = 1,
    embedding_dim: int | None = 128,
    normalize: bool = True,
    pretrained: bool = False,
    stem_stride: int = 4,
    fc: int = 1024,
) -> Encoder:
    """Build a `SigNet` encoder (its second fully connected layer is the head, 128 in the paper).

    Args:
        in_channels: Image channels.
        embedding_dim: Head output size (128 in the paper); None or 0 for no head (D = `fc`).
        normalize: L2-normalise embeddings (SigNet compares raw euclidean distances: False).
        pretrained: Must be False; there are no pretrained weights for this network.
        stem_stride: Stride of the first convolution.
        fc: Units of the first fully connected layer.

    Raises:
        ConfigError: `pretrained=True` or bad dimensions.
    """
    if pretrained:
        raise ConfigError("signet has no pretrained weights; use pretrained=False")
    check_encoder_args(in_channels, embedding_dim)
    backbone = SigNet(in_channels, stem_stride=stem_stride, fc=fc)
    spec = {"name": "signet", "in_channels": in_channels, "stem_stride": stem_stride, "fc": fc}
    return Encoder(backbone, backbone.feature_dim, embedding_dim, normalize, spec)

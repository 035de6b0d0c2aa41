"""Encoder: a backbone producing pooled features, then an embedding head (timm's split).

`forward_features` runs the backbone and returns global-pooled, flattened features `(B, F)`;
`head` maps them to the embedding `(B, D)`. A head of `nn.Identity()` turns any backbone into an
embedder whose embedding is its feature vector.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from siamese.errors import ConfigError


def check_encoder_args(in_channels: int, embedding_dim: int | None) -> None:
    """Raise `ConfigError` unless `in_channels >= 1` and `embedding_dim` is None or `>= 0`.

    Args:
        in_channels: Number of image channels the encoder takes.
        embedding_dim: Size of the projection head's output; None or 0 means no head.
    """
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ConfigError(f"in_channels must be an integer >= 1, got {in_channels!r}")
    if embedding_dim is None:
        return
    if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 0:
        raise ConfigError(f"embedding_dim must be None or an integer >= 0, got {embedding_dim!r}")


def check_positive_ints(network: str, **options: Any) -> None:
    """Raise `ConfigError` naming `network` unless every option is an integer >= 1 (not a bool)."""
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{network} {key} must be an integer >= 1, got {value!r}")


class Encoder(nn.Module):
    """Backbone + head, mapping images `(B, C, H, W)` to embeddings `(B, D)`.

    The head is a single `nn.Linear(feature_dim, embedding_dim)`, or `nn.Identity()` when
    `embedding_dim` is None or 0, in which case the embedding is the backbone's pooled feature
    vector and `embedding_dim == feature_dim`.

    Attributes:
        backbone: Module mapping `(B, C, H, W)` to `(B, F)` or to a feature map `(B, F, h, w)`
            (a feature map is global-average-pooled by `forward_features`).
        head: `nn.Linear(F, D)` or `nn.Identity()`.
        feature_dim: F, the backbone's pooled feature size.
        embedding_dim: D, the actual output size.
        in_channels: Number of input channels (from `spec`).
        normalize: Whether `forward` L2-normalises its output.
        autocast_dtype: When set (e.g. `torch.bfloat16`), the backbone runs under autocast to it
            in training mode only; the pooled features are cast back to float32, so the head, the
            normalisation and every loss stay in float32, and evaluation is float32. A training
            setting (`siamese.training.builders.place_method`), not saved with the weights.
        spec: JSON-serialisable dict such that `get_encoder(**spec)` rebuilds the same architecture
            (no pretrained weights). Its `embedding_dim` is None when there is no head.
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        embedding_dim: int | None,
        normalize: bool,
        spec: dict[str, Any],
    ) -> None:
        """Wrap `backbone` and build the head.

        Args:
            backbone: The feature extractor.
            feature_dim: Size F of the backbone's pooled features.
            embedding_dim: Output size of the linear head; None or 0 for no head.
            normalize: L2-normalise the output of `forward`.
            spec: At least `{"name", "in_channels"}` plus any builder kwargs; `embedding_dim` and
                `normalize` are (over)written from the arguments.

        Raises:
            ConfigError: Bad dimensions or a spec without `name`/`in_channels`.
        """
        super().__init__()
        missing = [key for key in ("name", "in_channels") if key not in spec]
        if missing:
            raise ConfigError(f"encoder spec is missing {missing}: {spec!r}")
        check_encoder_args(spec["in_channels"], embedding_dim)
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
            raise ConfigError(f"feature_dim must be an integer >= 1, got {feature_dim!r}")
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.head: nn.Module = nn.Linear(feature_dim, embedding_dim) if embedding_dim else nn.Identity()
        self.embedding_dim = embedding_dim if embedding_dim else feature_dim
        self.in_channels = int(spec["in_channels"])
        self.normalize = bool(normalize)
        self.spec = {**spec, "embedding_dim": embedding_dim or None, "normalize": self.normalize}
        self.autocast_dtype: torch.dtype | None = None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Run the backbone: `(B, C, H, W) -> (B, F)` (global-average-pooled, flattened, float32)."""
        dtype = self.autocast_dtype if self.training else None
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            feats = self.backbone(x)
            if feats.ndim == 4:  # (B, F, h, w)
                feats = F.adaptive_avg_pool2d(feats, 1)
        return feats.flatten(1).float()  # (B, F)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        """Project features `(B, F)` to embeddings `(B, D)`, L2-normalised when `normalize`."""
        emb = self.head(feats)  # (B, D)
        return F.normalize(emb, p=2.0, dim=1) if self.normalize else emb

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed a batch of images: `(B, C, H, W) -> (B, D)`."""
        return self.forward_head(self.forward_features(x))

"""TwinNetwork: one shared encoder applied to both images of a pair."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from siamese.errors import DataError
from siamese.names import DISTANCES, check_choice


class TwinOutput(NamedTuple):
    """Result of `TwinNetwork.forward`."""

    emb1: torch.Tensor  # (B, D)
    emb2: torch.Tensor  # (B, D)
    distance: torch.Tensor  # (B,)


def pair_distance(e1: torch.Tensor, e2: torch.Tensor, kind: str) -> torch.Tensor:
    """Distance between matching rows of two embedding batches.

    Args:
        e1: Embeddings `(B, D)`.
        e2: Embeddings `(B, D)`, row i paired with row i of `e1`.
        kind: "euclidean" (L2 norm of the difference; zero gradient at zero distance) or
            "cosine" (`1 - cos`, in [0, 2]).

    Returns:
        Distances `(B,)`.

    Raises:
        ConfigError: Unknown `kind`.
        ValueError: `e1` and `e2` are not 2-D tensors of the same shape.

    Example:
        >>> a = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
        >>> b = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
        >>> pair_distance(a, b, "euclidean")
        tensor([5.0000, 1.4142])
        >>> pair_distance(a[1:], b[1:], "cosine")
        tensor([1.])
    """
    check_choice(kind, DISTANCES, "distance")
    if e1.ndim != 2 or e1.shape != e2.shape:
        raise ValueError(f"embeddings must both be (B, D), got {tuple(e1.shape)} and {tuple(e2.shape)}")
    if kind == "euclidean":
        return torch.linalg.vector_norm(e1 - e2, ord=2, dim=1)  # (B,)
    return 1.0 - F.cosine_similarity(e1, e2, dim=1)  # (B,)


class TwinNetwork(nn.Module):
    """A Siamese network: ONE encoder (weights shared by construction) and a pair distance.

    Attributes:
        encoder: Maps images `(B, C, H, W)` to embeddings `(B, D)`.
        distance: "euclidean" or "cosine".
    """

    def __init__(self, encoder: nn.Module, distance: str = "euclidean") -> None:
        """Wrap `encoder`.

        Args:
            encoder: Any embedding module, usually an `Encoder` from `get_encoder`.
            distance: "euclidean" or "cosine" (`1 - cos`).

        Raises:
            ConfigError: Unknown distance.
        """
        super().__init__()
        check_choice(distance, DISTANCES, "distance")
        self.encoder = encoder
        self.distance = distance

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embed a batch: `(B, C, H, W) -> (B, D)`."""
        return self.encoder(x)

    def pair_distance(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        """Configured distance between matching rows: `(B, D), (B, D) -> (B,)`."""
        return pair_distance(e1, e2, self.distance)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> TwinOutput:
        """Embed both halves of a pair batch in one encoder pass and measure their distance.

        Both halves go through the encoder as one batch of 2B, so BatchNorm sees the same statistics
        for both (as if they were one network, which they are).

        Args:
            x1: First images `(B, C, H, W)`.
            x2: Second images, same shape as `x1`.

        Returns:
            `TwinOutput(emb1 (B, D), emb2 (B, D), distance (B,))`.

        Raises:
            DataError: `x1` and `x2` have different shapes.
        """
        if x1.shape != x2.shape:
            raise DataError(
                f"pair halves must have the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}"
            )
        emb = self.encoder(torch.cat([x1, x2], dim=0))  # (2B, D)
        emb1, emb2 = emb.split(x1.shape[0], dim=0)  # (B, D) each
        return TwinOutput(emb1, emb2, self.pair_distance(emb1, emb2))

"""Projection, prediction and prototype heads for the self-supervised methods.

SimCLR and MoCo v2 put a 2-layer MLP projector on the backbone; BYOL adds a predictor of the same
shape on the online branch (SimSiam a bottleneck one, behind a 3-layer projector); Barlow Twins and
VICReg use a 3-layer projector ("expander") alone; SwAV scores L2-normalised projections against
learnable prototypes.
"""

from __future__ import annotations

import torch
from torch import nn

from siamese.errors import ConfigError


def _check_dims(**dims: int) -> None:
    for name, value in dims.items():
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value!r}")


class ProjectionHead(nn.Sequential):
    """An MLP ``(Linear-BN-ReLU) x (num_layers - 1)`` then a final ``Linear``.

    With the defaults this is the SimCLR / MoCo v2 projector and BYOL's projector and predictor
    (Linear-BN-ReLU-Linear). A Linear followed by batch norm has no bias (the norm's shift makes it
    redundant); the final Linear has one and no norm or activation after it.

    Args:
        in_dim: input features (the backbone's output).
        hidden_dim: width of every hidden layer.
        out_dim: output features.
        num_layers: number of Linear layers; 1 is a single ``Linear(in_dim, out_dim)``.
        batch_norm: put a ``BatchNorm1d`` after each hidden Linear.

    Raises:
        ConfigError: if a dimension or ``num_layers`` is below 1.
    """

    def __init__(
        self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, batch_norm: bool = True
    ) -> None:
        _check_dims(in_dim=in_dim, hidden_dim=hidden_dim, out_dim=out_dim, num_layers=num_layers)
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(width, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        super().__init__(*layers)
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim


class PredictionHead(ProjectionHead):
    """BYOL's predictor: Linear-BN-ReLU-Linear mapping a projection back to its own size.

    Args:
        in_dim: the projector's output size.
        hidden_dim: hidden width (4096 in BYOL).
        out_dim: output size; defaults to ``in_dim``, as the prediction regresses a projection.

    Raises:
        ConfigError: if a dimension is below 1.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int | None = None) -> None:
        super().__init__(in_dim, hidden_dim, in_dim if out_dim is None else out_dim, num_layers=2)


class Prototypes(nn.Linear):
    """SwAV's prototypes: a bias-free Linear whose ``K`` weight rows are the prototype vectors.

    ``forward(x)`` returns the scores ``x @ W.T``, ``(B, K)``; feed it L2-normalised features and
    call :meth:`normalize_` so the scores are cosine similarities. In a training step, as in the
    SwAV reference code::

        prototypes.normalize_()          # before the forward pass
        loss.backward()
        prototypes.freeze_grad(step, freeze_steps)
        optimizer.step()

    Args:
        dim: feature size.
        num_prototypes: ``K``.

    Raises:
        ConfigError: if a dimension is below 1.
    """

    def __init__(self, dim: int, num_prototypes: int) -> None:
        _check_dims(dim=dim, num_prototypes=num_prototypes)
        super().__init__(dim, num_prototypes, bias=False)

    @torch.no_grad()
    def normalize_(self) -> None:
        """Scale each prototype (weight row) to unit L2 norm, in place and outside autograd."""
        self.weight.div_(self.weight.norm(dim=1, keepdim=True))  # (K, D)

    def freeze_grad(self, step: int, freeze_steps: int) -> bool:
        """Drop the prototypes' gradient while ``step < freeze_steps``; call after ``backward``.

        A parameter whose ``grad`` is ``None`` is skipped by PyTorch's optimisers, weight decay and
        momentum included, so the prototypes stay fixed during the first ``freeze_steps`` steps.

        Args:
            step: the current optimisation step, counted from 0.
            freeze_steps: how many initial steps keep the prototypes fixed (SwAV: one epoch).

        Returns:
            Whether the gradient was dropped.

        Raises:
            ConfigError: if ``freeze_steps`` is negative.
        """
        if freeze_steps < 0:
            raise ConfigError(f"freeze_steps must be >= 0, got {freeze_steps!r}")
        frozen = step < freeze_steps
        if frozen:
            self.weight.grad = None
        return frozen

"""Loss registry: `LOSSES` keyed by `siamese.names.LOSSES`, the `get_loss` factory, and what each
loss takes: its options (from its constructor, defaults included) and its samplers (its class's
`samplers`, the natural one first)."""

from __future__ import annotations

from typing import Any

from torch import nn

from siamese.errors import ConfigError
from siamese.losses.margin import MarginContrastiveLoss
from siamese.losses.margin_softmax import ArcFaceLoss, CosFaceLoss, SubCenterArcFaceLoss
from siamese.losses.supcon import SupConLoss
from siamese.losses.triplet import TripletLoss
from siamese.names import DISTANCES, option_names

LOSSES: dict[str, type[nn.Module]] = {
    "margin": MarginContrastiveLoss,
    "supcon": SupConLoss,
    "triplet": TripletLoss,
    "arcface": ArcFaceLoss,
    "cosface": CosFaceLoss,
    "subcenter": SubCenterArcFaceLoss,
}


def loss_class(name: str) -> type[nn.Module]:
    """The class of loss `name`.

    Raises:
        ConfigError: unknown loss.
    """
    if not isinstance(name, str) or name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
    return LOSSES[name]


def loss_options(name: str) -> list[str]:
    """The options loss `name` takes, e.g. `["margin", "distance"]` for "margin".

    Raises:
        ConfigError: unknown loss.
    """
    return option_names(loss_class(name))


def loss_samplers(name: str) -> tuple[str, ...]:
    """The samplers loss `name` trains with, its natural one first.

    >>> loss_samplers("triplet")
    ('triplets', 'mperclass')
    """
    return tuple(getattr(loss_class(name), "samplers", ("pairs", "triplets", "mperclass")))


def loss_needs_classes(name: str) -> bool:
    """Whether loss `name` holds class weights: it is built with `num_classes` (the training
    identities) and `embedding_size` (the encoder's), which its callers supply, not the user.

    >>> loss_needs_classes("arcface"), loss_needs_classes("supcon")
    (True, False)
    """
    return bool(getattr(loss_class(name), "needs_classes", False))


def loss_distances(name: str) -> tuple[str, ...]:
    """The distances loss `name` trains with; the first is verification's when none is given.

    >>> loss_distances("margin"), loss_distances("cosface")
    (('euclidean', 'cosine'), ('cosine',))
    """
    return tuple(getattr(loss_class(name), "distances", DISTANCES))


def get_loss(name: str | nn.Module, **kwargs: Any) -> nn.Module:
    """Build a loss by registry name, or pass an existing loss module through.

    Every loss is called ``loss(embeddings, labels, indices_tuple=None)`` and returns a scalar.

    Args:
        name: a key of `LOSSES`, or an ``nn.Module`` (returned unchanged).
        **kwargs: options of that loss, e.g. ``margin=0.5`` or ``temperature=0.07``.

    Raises:
        ConfigError: for an unknown name, an option the loss does not take, or a bad option value.

    Example:
        >>> get_loss("margin", margin=2.0).margin
        2.0
    """
    if isinstance(name, nn.Module):
        if kwargs:
            raise ConfigError(f"options {sorted(kwargs)} cannot be applied to a loss instance")
        return name
    loss_cls = loss_class(name)
    valid = option_names(loss_cls)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for loss {name!r}; valid: {', '.join(valid)}")
    return loss_cls(**kwargs)

"""Miner registry and the distance names shared by losses and miners.

Miners are pytorch-metric-learning's own; this module only names them. A miner is called
``miner(embeddings, labels)`` and returns an index tuple: pairs ``(a1, p, a2, n)`` or triplets
``(a, p, n)`` into the batch, never embeddings. Pass the tuple to a loss as ``indices_tuple``.
"""

from __future__ import annotations

from typing import Any

import torch
from pytorch_metric_learning.distances import BaseDistance, CosineSimilarity, LpDistance
from pytorch_metric_learning.miners import (
    BaseMiner,
    BatchHardMiner,
    MultiSimilarityMiner,
    PairMarginMiner,
)

from siamese.errors import ConfigError
from siamese.names import DISTANCES

IndicesTuple = tuple[torch.Tensor, ...]  # pml pairs (a1, p, a2, n) or triplets (a, p, n)

# "none" maps to None: the loss then uses every pair its labels form. Defaults are pml's:
# multisimilarity epsilon=0.1 on cosine similarity; batchhard (hardest positive, hardest negative
# per anchor) and pairmargin (pos_margin=0.2, neg_margin=0.8) on Euclidean distance of
# L2-normalised embeddings.
MINERS: dict[str, type[BaseMiner] | None] = {
    "none": None,
    "multisimilarity": MultiSimilarityMiner,
    "batchhard": BatchHardMiner,
    "pairmargin": PairMarginMiner,
}


def make_distance(name: str, *, normalize: bool = True) -> BaseDistance:
    """Build the pml distance for a name in `siamese.names.DISTANCES`.

    Args:
        name: ``"euclidean"`` (an `LpDistance`, p=2) or ``"cosine"`` (a `CosineSimilarity`, which
            pml treats as an inverted distance: larger means closer).
        normalize: L2-normalise embeddings before a Euclidean distance. Cosine always normalises.

    Raises:
        ConfigError: for an unknown name.
    """
    if name == "euclidean":
        return LpDistance(p=2, normalize_embeddings=normalize)
    if name == "cosine":
        return CosineSimilarity()
    raise ConfigError(f"unknown distance {name!r}; choose one of: {', '.join(DISTANCES)}")


def get_miner(name: str | BaseMiner | None, **kwargs: Any) -> BaseMiner | None:
    """Build a miner by registry name, or pass an existing miner through.

    Args:
        name: a key of `MINERS`, ``None`` (same as ``"none"``), or a miner instance (returned as is).
        **kwargs: options for the pml miner, e.g. ``epsilon`` or ``pos_margin``; ``distance`` may be
            a name from `siamese.names.DISTANCES`.

    Returns:
        The miner, or ``None`` for ``"none"``.

    Raises:
        ConfigError: for an unknown name or options the miner does not take.
    """
    if name is not None and not isinstance(name, str):
        if kwargs:
            raise ConfigError(f"options {sorted(kwargs)} cannot be applied to a miner instance")
        return name
    key = "none" if name is None else name
    if key not in MINERS:
        raise ConfigError(f"unknown miner {key!r}; choose one of: {', '.join(MINERS)}")
    miner_cls = MINERS[key]
    if miner_cls is None:
        if kwargs:
            raise ConfigError(f"miner 'none' takes no options, got {sorted(kwargs)}")
        return None
    if isinstance(kwargs.get("distance"), str):
        kwargs["distance"] = make_distance(kwargs["distance"])
    try:
        return miner_cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"bad options for miner {key!r}: {err}") from err

"""Metric-learning losses and miners, built on pytorch-metric-learning."""

from siamese.losses.margin import MarginContrastiveLoss
from siamese.losses.miners import MINERS, get_miner, make_distance
from siamese.losses.registry import LOSSES, get_loss
from siamese.losses.supcon import SupConLoss
from siamese.losses.triplet import TripletLoss

__all__ = [
    "LOSSES",
    "MINERS",
    "MarginContrastiveLoss",
    "SupConLoss",
    "TripletLoss",
    "get_loss",
    "get_miner",
    "make_distance",
]

"""Metric-learning losses and miners, built on pytorch-metric-learning."""

from siamese.losses.margin import MarginContrastiveLoss
from siamese.losses.miners import MINERS, get_miner, make_distance
from siamese.losses.pair_loss import PairLoss
from siamese.losses.registry import LOSSES, get_loss, loss_options, loss_samplers, split_loss_options
from siamese.losses.supcon import SupConLoss
from siamese.losses.triplet import TripletLoss

__all__ = [
    "LOSSES",
    "MINERS",
    "MarginContrastiveLoss",
    "PairLoss",
    "SupConLoss",
    "TripletLoss",
    "get_loss",
    "get_miner",
    "loss_options",
    "loss_samplers",
    "make_distance",
    "split_loss_options",
]

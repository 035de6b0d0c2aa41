"""Metric-learning losses and miners, built on pytorch-metric-learning."""

from siamese.losses.margin import MarginContrastiveLoss
from siamese.losses.margin_softmax import ArcFaceLoss, CosFaceLoss, SubCenterArcFaceLoss
from siamese.losses.miners import MINERS, get_miner, make_distance
from siamese.losses.pair_loss import PairLoss
from siamese.losses.registry import (
    LOSSES,
    get_loss,
    loss_class,
    loss_distances,
    loss_needs_classes,
    loss_options,
    loss_samplers,
)
from siamese.losses.supcon import SupConLoss
from siamese.losses.triplet import TripletLoss

__all__ = [
    "LOSSES",
    "MINERS",
    "ArcFaceLoss",
    "CosFaceLoss",
    "MarginContrastiveLoss",
    "PairLoss",
    "SubCenterArcFaceLoss",
    "SupConLoss",
    "TripletLoss",
    "get_loss",
    "get_miner",
    "loss_class",
    "loss_distances",
    "loss_needs_classes",
    "loss_options",
    "loss_samplers",
    "make_distance",
]

"""Encoders (backbone + head) and the twin network. Importing this does not import torchvision."""

from siamese.models.encoder import Encoder, check_encoder_args
from siamese.models.registry import ENCODERS, get_encoder
from siamese.models.signet import SigNet, signet
from siamese.models.small_cnn import SmallCNN, smallcnn
from siamese.models.torchvision_backbones import (
    adapt_first_conv,
    mobilenet_v3_small,
    resnet18,
    resnet34,
    resnet50,
)
from siamese.models.tta import check_tta, tta_embed
from siamese.models.twin import TwinNetwork, TwinOutput, pair_distance

__all__ = [
    "ENCODERS",
    "Encoder",
    "SigNet",
    "SmallCNN",
    "TwinNetwork",
    "TwinOutput",
    "adapt_first_conv",
    "check_tta",
    "check_encoder_args",
    "get_encoder",
    "mobilenet_v3_small",
    "pair_distance",
    "resnet18",
    "resnet34",
    "resnet50",
    "signet",
    "smallcnn",
    "tta_embed",
]

"""Training methods, one file each, and their registry.

Adding a method means writing its file (a `Method` subclass with a `from_config` builder) and
adding one entry to `METHODS`.
"""

from siamese.training.methods.base import Batch, IndicesTuple, Method, StepOutput
from siamese.training.methods.byol import BYOLMethod
from siamese.training.methods.moco import MoCoMethod
from siamese.training.methods.momentum_method import MomentumMethod
from siamese.training.methods.registry import METHODS, get_method, method_options
from siamese.training.methods.simclr import SimCLRMethod
from siamese.training.methods.supervised import SupervisedMethod
from siamese.training.methods.swav import SwAVMethod

__all__ = [
    "METHODS",
    "BYOLMethod",
    "Batch",
    "IndicesTuple",
    "Method",
    "MoCoMethod",
    "MomentumMethod",
    "SimCLRMethod",
    "StepOutput",
    "SupervisedMethod",
    "SwAVMethod",
    "get_method",
    "method_options",
]

"""Training methods, one file each, and their registry.

Adding a method means writing its file, `<name>.py` (a `Method` subclass taking the encoder, the
loss and the distance, then its keyword options, and naming its `loss_class`), and adding its name
to `siamese.names.SslMethodName`, the one registry line (`registry.METHODS` finds the class).
"""

from siamese.training.methods.barlow import BarlowTwinsMethod
from siamese.training.methods.base import Batch, IndicesTuple, Method, StepOutput
from siamese.training.methods.byol import BYOLMethod
from siamese.training.methods.moco import MoCoMethod
from siamese.training.methods.momentum_method import MomentumMethod
from siamese.training.methods.registry import METHODS, get_method, method_class, method_options
from siamese.training.methods.simclr import SimCLRMethod
from siamese.training.methods.simsiam import SimSiamMethod
from siamese.training.methods.supervised import SupervisedMethod
from siamese.training.methods.swav import SwAVMethod
from siamese.training.methods.two_view import TwoViewMethod
from siamese.training.methods.vicreg import VICRegMethod

__all__ = [
    "METHODS",
    "BYOLMethod",
    "BarlowTwinsMethod",
    "Batch",
    "IndicesTuple",
    "Method",
    "MoCoMethod",
    "MomentumMethod",
    "SimCLRMethod",
    "SimSiamMethod",
    "StepOutput",
    "SupervisedMethod",
    "SwAVMethod",
    "TwoViewMethod",
    "VICRegMethod",
    "get_method",
    "method_class",
    "method_options",
]

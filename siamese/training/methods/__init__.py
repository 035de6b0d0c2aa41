"""Training methods, one file each, and their registry.

Adding a method means writing its file (a `Method` subclass with a `from_config` builder) and
adding one entry to `METHODS`.
"""

from siamese.training.methods.base import Batch, IndicesTuple, Method, StepOutput
from siamese.training.methods.registry import METHODS, get_method
from siamese.training.methods.supervised import SupervisedMethod

__all__ = ["METHODS", "Batch", "IndicesTuple", "Method", "StepOutput", "SupervisedMethod", "get_method"]

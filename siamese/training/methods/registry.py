"""The method registry: name -> `Method` subclass, with a factory that fails clearly."""

from __future__ import annotations

from typing import Any

from siamese.errors import ConfigError
from siamese.names import option_names
from siamese.training.methods.barlow import BarlowTwinsMethod
from siamese.training.methods.base import Method
from siamese.training.methods.byol import BYOLMethod
from siamese.training.methods.moco import MoCoMethod
from siamese.training.methods.simclr import SimCLRMethod
from siamese.training.methods.simsiam import SimSiamMethod
from siamese.training.methods.supervised import SupervisedMethod
from siamese.training.methods.swav import SwAVMethod
from siamese.training.methods.vicreg import VICRegMethod

METHODS: dict[str, type[Method]] = {
    "supervised": SupervisedMethod,
    "simclr": SimCLRMethod,
    "moco": MoCoMethod,
    "byol": BYOLMethod,
    "swav": SwAVMethod,
    "simsiam": SimSiamMethod,
    "barlow": BarlowTwinsMethod,
    "vicreg": VICRegMethod,
}
"""Keyed by `siamese.names.METHODS`; each class takes the encoder first, then keyword options."""


def method_options(name: str) -> list[str]:
    """The options method `name` takes besides the encoder (its constructor's keywords)."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return option_names(METHODS[name], skip=("encoder",))


def get_method(name: str | Method, encoder: Any = None, **kwargs: Any) -> Method:
    """Build a registered method around `encoder`, or pass a `Method` instance through unchanged.

    Raises:
        ConfigError: unknown name, or an option the method does not take.
    """
    if isinstance(name, Method):
        return name
    unknown = sorted(set(kwargs) - set(method_options(name)))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for method {name!r}; valid: {method_options(name)}")
    return METHODS[name](encoder, **kwargs)

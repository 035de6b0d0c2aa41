"""The method registry: name -> `Method` subclass, with a factory that fails clearly."""

from __future__ import annotations

from typing import Any

from siamese.errors import ConfigError
from siamese.training.methods.base import Method
from siamese.training.methods.supervised import SupervisedMethod

METHODS: dict[str, type[Method]] = {
    "supervised": SupervisedMethod,
}


def get_method(name: str | Method, **kwargs: Any) -> Method:
    """Build a registered method by name, or pass a `Method` instance through unchanged.

    Raises:
        ConfigError: unknown name.
    """
    if isinstance(name, Method):
        return name
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name](**kwargs)

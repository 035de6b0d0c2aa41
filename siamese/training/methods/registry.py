"""The method registry: each name of `siamese.names.METHODS` is the `Method` subclass defined in
the module of that name, `siamese/training/methods/<name>.py`; plus a factory that fails clearly.

A new method is its own file here, its loss's file in `siamese/losses/`, its name in
`siamese.names.SslMethodName` (the one registry line) and its test.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from torch import nn

from siamese import names
from siamese.errors import ConfigError
from siamese.training.methods.base import Method
from siamese.training.options import Option, declared_options

SUPPLIED = ("encoder", "loss", "distance", "miner", "tta")
"""Constructor keywords the run supplies (the encoder, the built loss, `--distance`, `--miner`,
`--tta`), never method options."""


def _method_class(name: str) -> type[Method]:
    """The one `Method` subclass defined in `siamese.training.methods.<name>`."""
    module = importlib.import_module(f"{__package__}.{name}")
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Method) and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise TypeError(f"{module.__name__} must define exactly one Method subclass, found {found}")
    return found[0]


METHODS: dict[str, type[Method]] = {name: _method_class(name) for name in names.METHODS}
"""Keyed by `siamese.names.METHODS`; each class takes the encoder, a loss and a distance, then its
own keyword options."""


def method_class(name: str) -> type[Method]:
    """The class of method `name`.

    Raises:
        ConfigError: unknown method.
    """
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def method_options(name: str) -> dict[str, Option]:
    """The options method `name` declares (its constructor's keywords besides `SUPPLIED`)."""
    return declared_options(method_class(name), skip=SUPPLIED)


def method_loss_options(name: str) -> dict[str, Option]:
    """The options of the loss that method `name` trains with (empty when chosen by `--loss`)."""
    loss = method_class(name).loss_class
    return {} if loss is None else declared_options(loss)


def get_method(
    name: str | Method, encoder: Any = None, loss: nn.Module | None = None, **options: Any
) -> Method:
    """Build a registered method around `encoder`, or pass a `Method` instance through unchanged.

    Options the method declares go to it, the others to its loss (built here when `loss` is None),
    e.g. `get_method("moco", encoder, queue_size=16, temperature=0.3)`.

    Raises:
        ConfigError: unknown name, or an option neither the method nor its loss takes.
    """
    if isinstance(name, Method):
        return name
    cls = method_class(name)
    own = set(method_options(name)) | {"distance", "miner", "tta"}
    loss_own = set(method_loss_options(name)) if loss is None else set()
    unknown = sorted(set(options) - own - loss_own)
    if unknown:
        valid = sorted((own | loss_own) - {"miner", "tta"})
        raise ConfigError(f"unknown option(s) {unknown} for method {name!r}; valid: {valid}")
    if loss is None and cls.loss_class is not None:
        loss = cls.loss_class(**{k: v for k, v in options.items() if k in loss_own and k not in own})
    return cls(encoder, loss=loss, **{k: v for k, v in options.items() if k in own})


class _StubEncoder(nn.Module):
    """A 1-dimensional stand-in encoder: enough to build a method's heads and check its options."""

    embedding_dim = 1


def check_method_options(
    name: str, loss_cls: type[nn.Module], options: dict[str, Any], loss_options: dict[str, Any]
) -> None:
    """Raise the `ConfigError` method `name` (around a stub encoder) or its loss would raise for
    these options, before any data is read (a loss with class weights is tried with 2 classes of
    1-dimensional embeddings).

    >>> check_method_options("simclr", METHODS["simclr"].loss_class, {"projection_dim": 8}, {})
    """
    classes = {"num_classes": 2, "embedding_size": 1} if getattr(loss_cls, "needs_classes", False) else {}
    try:
        loss = loss_cls(**loss_options, **classes)
        method_class(name)(_StubEncoder(), loss=loss, **options)
    except ConfigError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"--method {name}: {exc}") from None

"""Names of every registered component, importable without torch.

The registries in `siamese.losses`, `siamese.models` and `siamese.data` are keyed by exactly
these names (a test checks it), so the CLI can list choices and validate options without
paying for `import torch`.
"""

import inspect
from collections.abc import Callable
from typing import Any

from siamese.errors import ConfigError

LOSSES = ("margin", "supcon", "triplet")
METHODS = ("supervised", "simclr", "moco", "byol", "swav")
SSL_METHODS = METHODS[1:]
MINERS = ("none", "multisimilarity", "batchhard", "pairmargin")
ENCODERS = ("smallcnn", "resnet18", "resnet34", "resnet50", "mobilenet_v3_small")
PRESETS = ("face", "signature", "digits", "omniglot")
SAMPLERS = ("pairs", "triplets", "mperclass", "views")
DISTANCES = ("euclidean", "cosine")
OPTIMIZERS = ("adamw", "sgd")
DEVICES = ("auto", "cpu", "cuda")


def check_choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    """Return `value` if it is one of `allowed`, else raise a `ConfigError` naming the choices.

    >>> check_choice("cosine", DISTANCES, "distance")
    'cosine'
    """
    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(allowed)}")
    return value


def option_names(factory: Callable[..., Any], skip: tuple[str, ...] = ()) -> list[str]:
    """The keyword options a class or function accepts (its constructor's, for a class).

    >>> option_names(lambda a, b=1, *, c=2: None)
    ['a', 'b', 'c']
    """
    params = inspect.signature(factory).parameters.values()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.kind in kinds and p.name not in skip]


def split_options(
    factory: Callable[..., Any], options: dict[str, Any], skip: tuple[str, ...] = ()
) -> tuple[dict[str, Any], list[str]]:
    """Route options to `factory`: those it takes, and the names of those it would ignore.

    Options whose value is None (not given) are dropped, so the factory's own defaults apply.

    >>> split_options(lambda margin=1.0: None, {"margin": 0.5, "temperature": 0.2, "beta": None})
    ({'margin': 0.5}, ['temperature'])
    """
    valid = set(option_names(factory, skip))
    given = {k: v for k, v in options.items() if v is not None}
    return {k: v for k, v in given.items() if k in valid}, sorted(set(given) - valid)

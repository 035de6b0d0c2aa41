"""Names of every registered component, importable without torch.

The registries in `siamese.losses`, `siamese.models` and `siamese.data` are keyed by exactly
these names (a test checks it), so the CLI can list choices and validate options without
paying for `import torch`.
"""

import inspect
from collections.abc import Callable
from typing import Any, Literal, get_args

from siamese.errors import ConfigError

# Each set of names is written once, as a `Literal` type (what the CLI's signatures annotate, so typer
# offers and checks the choices and a type checker reads them); the tuple of strings is derived from it.
LossName = Literal["margin", "supcon", "triplet", "arcface", "cosface", "subcenter"]
SslMethodName = Literal["simclr", "moco", "byol", "swav", "simsiam", "barlow", "vicreg"]
MethodName = Literal["supervised", SslMethodName]
MinerName = Literal["none", "multisimilarity", "batchhard", "pairmargin"]
EncoderName = Literal["smallcnn", "signet", "resnet18", "resnet34", "resnet50", "mobilenet_v3_small"]
PresetName = Literal["face", "face-wild", "signature", "digits", "glyphs", "omniglot"]
SamplerName = Literal["pairs", "triplets", "mperclass", "views"]
DistanceName = Literal["euclidean", "cosine"]
OptimizerName = Literal["adamw", "sgd", "rmsprop"]
DeviceName = Literal["auto", "cpu", "cuda"]
PrecisionName = Literal["auto", "fp32", "bf16"]
TtaName = Literal["none", "flip"]
FusionName = Literal["mean", "min", "template", "adaptive", "svm"]

LOSSES: tuple[str, ...] = get_args(LossName)
METHODS: tuple[str, ...] = get_args(MethodName)
SSL_METHODS: tuple[str, ...] = get_args(SslMethodName)
MINERS: tuple[str, ...] = get_args(MinerName)
ENCODERS: tuple[str, ...] = get_args(EncoderName)
PRESETS: tuple[str, ...] = get_args(PresetName)
SAMPLERS: tuple[str, ...] = get_args(SamplerName)
DISTANCES: tuple[str, ...] = get_args(DistanceName)
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
DEVICES: tuple[str, ...] = get_args(DeviceName)
PRECISIONS: tuple[str, ...] = get_args(PrecisionName)
TTAS: tuple[str, ...] = get_args(TtaName)
FUSIONS: tuple[str, ...] = get_args(FusionName)


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

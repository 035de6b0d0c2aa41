"""Names of every registered component, importable without torch.

The registries in `siamese.losses`, `siamese.models` and `siamese.data` are keyed by exactly
these names (a test checks it), so the CLI can list choices and validate options without
paying for `import torch`.
"""

LOSSES = ("margin", "supcon", "triplet")
MINERS = ("none", "multisimilarity", "batchhard", "pairmargin")
ENCODERS = ("smallcnn", "resnet18", "resnet34", "resnet50", "mobilenet_v3_small")
PRESETS = ("face", "signature", "digits", "omniglot")
SAMPLERS = ("pairs", "triplets", "mperclass")
DISTANCES = ("euclidean", "cosine")
OPTIMIZERS = ("adamw", "sgd")
DEVICES = ("auto", "cpu", "cuda")


def check_choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    """Return `value` if it is one of `allowed`, else raise a `ConfigError` naming the choices.

    >>> check_choice("cosine", DISTANCES, "distance")
    'cosine'
    """
    from siamese.errors import ConfigError

    if value not in allowed:
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(allowed)}")
    return value

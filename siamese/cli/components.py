"""How `train` and `pretrain` name a method or a loss and pass its options: `--loss-arg KEY=VALUE`
and `--method-arg KEY=VALUE` (repeatable, parsed like `--encoder-arg`), `--list-loss-args NAME` and
`--list-method-args NAME` (the options, defaults and help read from the component's constructor,
which owns them), and the per-option flags of earlier versions, which still work with a warning.

Importing this module stays cheap (typer, never torch); listing the options imports the registries.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

from siamese import names
from siamese.cli.common import console, user_errors
from siamese.cli.options import LOSS_PANEL, METHOD_PANEL, MODEL_PANEL, option

logger = logging.getLogger(__name__)

DEPRECATED = (
    "margin",
    "temperature",
    "beta",
    "scale",
    "sub_centers",
    "loss_lr_multiplier",
    "projection_dim",
    "hidden_dim",
    "predictor_dim",
    "momentum",
    "momentum_end",
    "queue_size",
    "prototypes",
    "freeze_prototypes",
    "barlow_lambda",
    "vicreg_invariance",
    "vicreg_variance",
    "vicreg_covariance",
)
"""Per-option flags of earlier versions (`--margin 0.5`): each still works, as the bare option name
it was (routed to the method or the loss by `siamese.training.config.route_options`), with a
warning naming its replacement."""


def _list_loss_args(value: str | None) -> None:
    if value:
        with user_errors():
            from siamese.training.describe import describe_loss

            console.print(describe_loss(value), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit()


def _list_method_args(value: str | None) -> None:
    if value:
        with user_errors():
            from siamese.training.describe import describe_method

            console.print(describe_method(value), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit()


LossArgOpt = Annotated[
    list[str] | None,
    option(
        "Option of the loss, KEY=VALUE, repeatable (e.g. margin=0.5, temperature=0.2); "
        "--list-loss-args NAME shows each loss's options and defaults.",
        LOSS_PANEL,
        metavar="KEY=VALUE",
    ),
]
MethodArgOpt = Annotated[
    list[str] | None,
    option(
        "Option of the method, KEY=VALUE, repeatable (e.g. queue_size=1024, momentum=0.92); "
        "--list-method-args NAME shows each method's options (and its loss's) with their defaults.",
        METHOD_PANEL,
        metavar="KEY=VALUE",
    ),
]
ListLossArgsOpt = Annotated[
    str | None,
    option(
        f"Print the options of a loss ({', '.join(names.LOSSES)}) with their defaults, and exit.",
        LOSS_PANEL,
        "--list-loss-args",
        metavar="NAME",
        is_eager=True,
        expose_value=False,
        callback=_list_loss_args,
    ),
]
ListMethodArgsOpt = Annotated[
    str | None,
    option(
        f"Print the options of a method ({', '.join(names.METHODS)}) and its loss, with their "
        "defaults, and exit.",
        METHOD_PANEL,
        "--list-method-args",
        metavar="NAME",
        is_eager=True,
        expose_value=False,
        callback=_list_method_args,
    ),
]
DistanceOpt = Annotated[
    names.DistanceName | None,
    option(
        "Pair distance of verification, and of the loss when it measures one \\[default: for "
        "verification cosine with the self-supervised methods and arcface, cosface, subcenter "
        "(which refuse euclidean), else euclidean; each loss its own].",
        MODEL_PANEL,
        show_default=False,
    ),
]


def _deprecated_flag() -> Any:
    return typer.Option(hidden=True, show_default=False)


DeprecatedFloat = Annotated[float | None, _deprecated_flag()]
"""A per-option flag of earlier versions taking a number (see `DEPRECATED`)."""
DeprecatedInt = Annotated[int | None, _deprecated_flag()]
"""A per-option flag of earlier versions taking a count (see `DEPRECATED`)."""


def parse_args(values: list[str] | None, flag: str) -> dict[str, int | float | str]:
    """Parse repeated `KEY=VALUE` options; numbers become int or float, anything else stays a
    string (the option's declared type decides, e.g. "true" for a bool).

    >>> parse_args(["margin=0.5", "sub_centers=2", "name=x"], "--loss-arg")
    {'margin': 0.5, 'sub_centers': 2, 'name': 'x'}

    Raises:
        ConfigError: an item without `=` or without a key.
    """
    from siamese.errors import ConfigError

    out: dict[str, int | float | str] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} must look like KEY=VALUE, got {item!r}")
        for cast in (int, float, str):
            try:
                out[key.strip()] = cast(raw)
                break
            except ValueError:
                continue
    return out


def component_options(params: dict[str, Any]) -> dict[str, Any]:
    """Pop `--loss-arg`, `--method-arg` and the deprecated per-option flags out of a command's
    parameters, as `build_train_config` options (`loss_options`, `method_options`, bare names);
    each deprecated flag given is warned about once."""
    out: dict[str, Any] = {
        "loss_options": parse_args(params.pop("loss_arg", None), "--loss-arg") or None,
        "method_options": parse_args(params.pop("method_arg", None), "--method-arg") or None,
    }
    from siamese.training.config import LEGACY_NAMES, declared_anywhere

    for name in DEPRECATED:
        value = params.pop(name, None)
        if value is None:
            continue
        key = LEGACY_NAMES.get(name, "lr_multiplier" if name == "loss_lr_multiplier" else name)
        flag = "--method-arg" if key in declared_anywhere("method") else "--loss-arg"
        logger.warning("--%s is deprecated: use %s %s=%s", name.replace("_", "-"), flag, key, value)
        out[key] = value
    return out

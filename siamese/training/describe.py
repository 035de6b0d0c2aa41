"""The options of a method or a loss as text, read from its constructor (`--list-method-args`,
`--list-loss-args`): the defaults shown are the ones the code uses, written nowhere else."""

from __future__ import annotations

from siamese.losses.registry import loss_class
from siamese.training.config import LOSS_SUPPLIED, METHOD_SUPPLIED
from siamese.training.methods.registry import method_class
from siamese.training.options import Option, declared_options


def _block(title: str, options: dict[str, Option]) -> list[str]:
    lines = [title]
    lines += [f"  {o.describe()}" for o in options.values()] or ["  (none)"]
    return lines


def describe_loss(name: str) -> str:
    """Loss `name`'s options (`--loss-arg KEY=VALUE`), one per line with type, default and help.

    Raises:
        ConfigError: unknown loss.
    """
    cls = loss_class(name)
    title = f"--loss {name} ({cls.__name__}): --loss-arg KEY=VALUE"
    return "\n".join(_block(title, declared_options(cls, skip=LOSS_SUPPLIED)))


def describe_method(name: str) -> str:
    """Method `name`'s options (`--method-arg KEY=VALUE`), and its loss's (`--loss-arg`).

    Raises:
        ConfigError: unknown method.
    """
    cls = method_class(name)
    lines = _block(
        f"--method {name} ({cls.__name__}): --method-arg KEY=VALUE",
        declared_options(cls, skip=METHOD_SUPPLIED),
    )
    if cls.loss_class is None:
        lines.append("its loss: --loss NAME (see --list-loss-args NAME)")
    else:
        title = f"its loss ({cls.loss_class.__name__}): --loss-arg KEY=VALUE"
        lines += _block(title, declared_options(cls.loss_class, skip=LOSS_SUPPLIED))
    return "\n".join(lines)

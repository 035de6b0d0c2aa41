"""A component's options as its constructor declares them: names, defaults, types and help.

Methods and losses are configured by name plus options (`--method-arg KEY=VALUE`,
`--loss-arg KEY=VALUE`). What each option is, and its default, is read from the component's own
signature and the `Args:` section of its docstring, so a default is written once, where it is used.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from siamese.errors import ConfigError

_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class Option:
    """One constructor option.

    Attributes:
        name: the keyword.
        default: its default value (`inspect.Parameter.empty` when it has none).
        annotation: the type as written in the signature, e.g. `"int | None"`.
        help: its line(s) in the docstring's `Args:` section, joined ("" when undocumented).
    """

    name: str
    default: Any
    annotation: str
    help: str

    @property
    def required(self) -> bool:
        """Whether the option has no default."""
        return self.default is inspect.Parameter.empty

    def describe(self) -> str:
        """`name (type, default X): help`, one line.

        >>> Option("margin", 1.0, "float", "negatives closer than this are pushed apart.").describe()
        'margin (float, default 1.0): negatives closer than this are pushed apart.'
        """
        default = "required" if self.required else f"default {self.default!r}"
        return f"{self.name} ({self.annotation}, {default}): {self.help}".rstrip(": ")

    def coerce(self, value: Any, flag: str) -> Any:
        """`value` as the option's type: "true"/"false" for a bool, an int for a float, ...

        Raises:
            ConfigError: a value of another type (e.g. 0.5 for an int option).
        """
        types = {t.strip() for t in self.annotation.split("|")}
        if value is None and "None" in types:
            return None
        if "bool" in types:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in _TRUE + _FALSE:
                return text in _TRUE
        if "int" in types and isinstance(value, int) and not isinstance(value, bool):
            return value
        if "float" in types and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if "str" in types and isinstance(value, str):
            return value
        if types & {"bool", "int", "float", "str"}:
            raise ConfigError(f"{flag} {self.name} takes {self.annotation}, got {value!r}")
        return value  # a type this check does not know: the constructor decides


def docstring_args(obj: Any) -> dict[str, str]:
    """The `Args:` section of a Google-style docstring as `{name: help}` (continuation lines joined).

    >>> docstring_args(Option)
    {}
    """
    doc = inspect.getdoc(obj) or ""
    found: dict[str, str] = {}
    section, indent, current = False, None, None
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Arguments:"):
            section, indent, current = True, None, None
            continue
        if not section:
            continue
        if not line.strip():
            current = None
            continue
        width = len(line) - len(line.lstrip())
        if width == 0:  # the next section (Raises:, Example:, ...)
            section = False
            continue
        match = re.match(r"^(\*{0,2}\w+)(?: \(.*?\))?: ?(.*)$", line.strip())
        if match and (indent is None or width == indent):
            indent, current = width, match.group(1).lstrip("*")
            found[current] = match.group(2).strip()
        elif current is not None:
            found[current] = f"{found[current]} {line.strip()}".strip()
    return found


def declared_options(factory: Callable[..., Any], skip: Iterable[str] = ()) -> dict[str, Option]:
    """The keyword options `factory` (a class: its constructor) declares, in signature order.

    Help comes from the class docstring's `Args:` (else the constructor's).
    """
    skipped = set(skip)
    params = inspect.signature(factory).parameters.values()
    docs = {**docstring_args(getattr(factory, "__init__", factory)), **docstring_args(factory)}
    return {
        p.name: Option(p.name, p.default, _annotation(p), docs.get(p.name, ""))
        for p in params
        if p.kind in _KINDS and p.name not in skipped
    }


def _annotation(param: inspect.Parameter) -> str:
    if param.annotation is inspect.Parameter.empty:
        return type(param.default).__name__ if param.default not in (None, inspect.Parameter.empty) else "any"
    ann = param.annotation
    return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))


def unknown_option(
    flag: str, name: str, owner: str, valid: Iterable[str], elsewhere: str = ""
) -> ConfigError:
    """The error for an option no component declares (a typo), with the closest valid names.

    >>> print(unknown_option("--loss-arg", "margn", "--loss margin", ["margin"]))
    --loss-arg margn: no such option of --loss margin (did you mean margin?); its options: margin
    """
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=2)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    listed = ", ".join(valid) or "none"
    return ConfigError(f"{flag} {name}: no such option of {owner}{hint}; its options: {listed}{elsewhere}")

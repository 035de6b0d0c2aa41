"""Write docs/cli.md, the command reference, from the `siamese` Typer app itself.

    python docs/gen_cli.py            # rewrite docs/cli.md
    python docs/gen_cli.py --check    # exit 1 when docs/cli.md differs from the app

Each command gets a section with its help text, its usage line, its arguments and its options
grouped by help panel, with the help and default the app shows in `siamese COMMAND --help`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from typer.main import get_command

from siamese.cli.app import app

OUT = Path(__file__).resolve().parent / "cli.md"

HEADER = """# Command reference

Generated from the `siamese` app by `python docs/gen_cli.py`; `siamese COMMAND --help` shows the
same. Shared flags: `siamese --debug COMMAND ...` shows tracebacks instead of one-line errors,
`siamese -v COMMAND ...` logs details, `siamese --version` prints the version. Guides:
[training](training.md), [methods](methods.md), [presets](presets.md), [evaluation](evaluation.md),
[enrolment](enrolment.md), [identification](identification.md)."""


def clean(text: str | None) -> str:
    """Help text on one line, without rich's escapes."""
    return re.sub(r"\s+", " ", (text or "").replace("\\[", "[")).strip()


def param_line(param: Any, ctx: Any) -> str:
    """`* `--flag <type>`: help [default: ...]` for an option; the name and help for an argument."""
    if param.param_type_name == "argument":
        name = param.name
        optional = "" if param.required else " (optional)"
        return f"* `{name}`{optional}: {clean(getattr(param, 'help', ''))}"
    record = param.get_help_record(ctx)
    if record is None:
        return ""
    flags, help_text = record
    required = " **(required)**" if param.required else ""
    return f"* `{flags}`{required}: {clean(help_text)}"


def command_section(name: str, command: Any) -> str:
    """The markdown section of one command."""
    ctx = command.make_context(name, [], resilient_parsing=True)
    usage = clean(command.get_usage(ctx)).replace("Usage: ", "siamese ", 1)
    lines = [f"## `siamese {name}`", "", clean(command.help), "", "```console", f"$ {usage}", "```"]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    if arguments:
        lines += ["", "**Arguments**", ""] + [param_line(p, ctx) for p in arguments]
    panels: dict[str, list[str]] = {}
    for param in command.params:
        if param.param_type_name != "option" or getattr(param, "hidden", False):
            continue
        line = param_line(param, ctx)
        if line and not line.startswith("* `--help"):
            panels.setdefault(getattr(param, "rich_help_panel", None) or "Options", []).append(line)
    for panel, entries in panels.items():
        lines += ["", f"**{panel}**", "", *entries]
    return "\n".join(lines)


def commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(name, command) of every command, a group's subcommands after the group (`gallery show`)."""
    out = []
    for name, command in group.commands.items():
        out.append((prefix + name, command))
        if hasattr(command, "commands"):
            out += commands(command, f"{prefix}{name} ")
    return out


def render() -> str:
    """docs/cli.md for the app as it is now."""
    every = commands(get_command(app))
    table = ["| command | what it does |", "|---|---|"]
    table += [f"| [`{n}`](#siamese-{n.replace(' ', '-')}) | {clean(c.help)} |" for n, c in every]
    sections = [command_section(n, c) for n, c in every]
    return "\n\n".join([HEADER, "\n".join(table), *sections]) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only compare, exit 1 when out of date")
    args = p.parse_args()
    text = render()
    if args.check:
        if OUT.read_text(encoding="utf-8") != text:
            sys.exit(f"{OUT} is out of date: run python docs/gen_cli.py")
        return
    OUT.write_text(text, encoding="utf-8")
    sys.stdout.write(f"{OUT}\n")


if __name__ == "__main__":
    main()

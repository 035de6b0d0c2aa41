"""The `siamese` Typer app. Importing this module must stay cheap: no torch at import time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

import typer

from siamese import __version__
from siamese.cli.common import CLIState, Command, console, is_main_process, setup_logging
from siamese.cli.embed import embed_command
from siamese.cli.enroll import enroll_command
from siamese.cli.evaluate import evaluate_command
from siamese.cli.export import export_command
from siamese.cli.gallery import gallery_app
from siamese.cli.identify import identify_command
from siamese.cli.pairs import pairs_command
from siamese.cli.pretrain import pretrain_command
from siamese.cli.probe import probe_command
from siamese.cli.serve import keys_app, serve_command
from siamese.cli.train import train_command
from siamese.cli.verify import verify_command

COMMANDS: dict[str, Callable[..., Any]] = {
    "train": train_command,
    "pretrain": pretrain_command,
    "evaluate": evaluate_command,
    "pairs": pairs_command,
    "verify": verify_command,
    "enroll": enroll_command,
    "identify": identify_command,
    "embed": embed_command,
    "export": export_command,
    "probe": probe_command,
    "serve": serve_command,
}
"""Every command, in the order `siamese --help` lists them."""
GROUPS: dict[str, typer.Typer] = {"gallery": gallery_app, "keys": keys_app}
"""Command groups (`siamese gallery show|remove|index`, `siamese keys add|list|remove`), listed after the
commands."""

app = typer.Typer(
    name="siamese",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"siamese {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Set the options every command shares (the app's help is `root_help`)."""
    CLIState.debug = debug
    CLIState.verbose = verbose
    setup_logging(verbose)
    if not is_main_process():  # a data-parallel rank other than 0: rank 0 talks for the run
        console.quiet = True
        logging.getLogger().setLevel(logging.WARNING)


for _name, _function in COMMANDS.items():
    app.command(_name, cls=Command)(_function)
for _name, _group in GROUPS.items():
    app.add_typer(_group, name=_name)


def root_help(command_names: list[str]) -> str:
    """The first line of `siamese --help`, naming every registered command.

    >>> root_help(["train", "verify"])
    'Siamese networks for verification: train, verify.'
    """
    return f"Siamese networks for verification: {', '.join(command_names)}."


app.info.help = root_help(
    [info.name or "" for info in app.registered_commands]
    + [info.name or "" for info in app.registered_groups]
)


def main() -> None:
    """Console-script entry point."""
    app()

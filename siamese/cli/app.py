"""The `siamese` Typer app. Importing this module must stay cheap: no torch at import time."""

from __future__ import annotations

from typing import Annotated

import typer

from siamese import __version__
from siamese.cli.common import CLIState, setup_logging
from siamese.cli.embed import embed_command
from siamese.cli.enroll import enroll_command
from siamese.cli.evaluate import evaluate_command
from siamese.cli.export import export_command
from siamese.cli.pairs import pairs_command
from siamese.cli.pretrain import pretrain_command
from siamese.cli.probe import probe_command
from siamese.cli.train import train_command
from siamese.cli.verify import verify_command

app = typer.Typer(
    name="siamese",
    help="Siamese networks for verification: train, pretrain, evaluate, verify, embed, export.",
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
    """Siamese networks for verification: train, evaluate, verify, embed, export."""
    CLIState.debug = debug
    CLIState.verbose = verbose
    setup_logging(verbose)


app.command("train")(train_command)
app.command("pretrain")(pretrain_command)
app.command("evaluate")(evaluate_command)
app.command("pairs")(pairs_command)
app.command("verify")(verify_command)
app.command("enroll")(enroll_command)
app.command("embed")(embed_command)
app.command("export")(export_command)
app.command("probe")(probe_command)


def main() -> None:
    """Console-script entry point."""
    app()

"""What every command shares: the console, logging set-up, turning errors into one line, and the
embedding progress bar. Options shared by several commands are in `siamese.cli.options`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.logging import RichHandler

from siamese.errors import SiameseError

if TYPE_CHECKING:
    from rich.progress import Progress

console = Console()
err_console = Console(stderr=True)


class CLIState:
    """Global flags set by the app callback."""

    debug = False
    verbose = False


def setup_logging(verbose: bool) -> None:
    """Route library logging through rich: warnings by default, info with --verbose."""
    level = logging.INFO if verbose else logging.WARNING
    root = logging.getLogger("siamese")
    root.handlers[:] = [RichHandler(console=err_console, show_path=False, show_time=False)]
    root.setLevel(level)
    root.propagate = False


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a `SiameseError` (or a bad file) into `error: <message>` and exit code 1.

    With `siamese --debug` the full traceback is shown instead.
    """
    try:
        yield
    except (SiameseError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        if CLIState.debug:
            raise
        err_console.print("[bold red]error:[/]", end=" ", highlight=False)
        err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None


def embedding_progress(on: Console, **options: Any) -> Progress:
    """A transient "embedding [bar] done/total time-left" progress bar on console `on`.

    Args:
        on: the console it draws on.
        **options: more `rich.progress.Progress` options (e.g. `disable`).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=on, transient=True, **options)

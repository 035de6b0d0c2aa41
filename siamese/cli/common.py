"""What every command shares: the console, logging set-up, turning errors into one line, the
default model, renamed flags, and the embedding progress bar. Options shared by several commands are
in `siamese.cli.options`."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from typer.core import TyperArgument, TyperCommand

from siamese.cli.options import PANELS, RENAMED
from siamese.errors import ConfigError, SiameseError

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


def model_or_latest(model: Path | None, quiet: bool = False) -> Path:
    """`--model`, else the most recent run under ./runs, named on stderr unless `quiet` (--json).

    Raises:
        CheckpointError: no --model and no trained run under ./runs.
    """
    if model is not None:
        return model
    from siamese.inference import latest_run  # the run directory's owner, re-exported

    model = latest_run("runs")
    if not quiet:
        err_console.print(f"using the most recent run: {model}", highlight=False, markup=False)
    return model


def renamed_flags(command: str, args: list[str]) -> list[str]:
    """`args` with each renamed flag of `command` (`siamese.cli.options.RENAMED`) in its new
    spelling, warning once on stderr per old spelling used; everything after `--` is left alone.

    >>> renamed_flags("probe", ["DATA", "--neighbours", "3"])
    ['DATA', '--neighbours', '3']
    """
    renames = RENAMED.get(command, {})
    out: list[str] = []
    warned: set[str] = set()
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        flag, sep, value = arg.partition("=")
        if flag in renames:
            if flag not in warned:
                warned.add(flag)
                typer.echo(f"warning: {flag} is deprecated, use {renames[flag]}", err=True)
            arg = renames[flag] + sep + value
        out.append(arg)
    return out


class Command(TyperCommand):
    """A `siamese` command: accepts the old spellings of its renamed flags, with a warning, and
    lists its options panel by panel in the order of `PANELS`, whatever its signature's order."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, renamed_flags(self.name or "", args))

    def get_params(self, ctx: Any) -> list[Any]:
        return sorted(super().get_params(ctx), key=_panel_rank)  # stable: arguments keep their order


def _panel_rank(param: Any) -> int:
    """Arguments first, then options by their panel's place in `PANELS` (others last)."""
    if isinstance(param, TyperArgument):
        return 0
    panel = getattr(param, "rich_help_panel", None)
    return 1 + (PANELS.index(panel) if panel in PANELS else len(PANELS))


def given_flags(ctx: typer.Context) -> set[str]:
    """The options typed on the command line (not left at their defaults), as `--flag` names."""
    return {
        "--" + name.replace("_", "-")
        for name in ctx.params
        if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"
    }


def is_main_process() -> bool:
    """Whether this process talks to the terminal: the only one, or rank 0 of a `torchrun` job."""
    return int(os.environ.get("RANK", "0")) == 0


def relaunch(nproc: int) -> None:
    """Run this command line again as `nproc` data-parallel processes on this machine (`torchrun
    --standalone --nproc-per-node N -m siamese ...`, without `--nproc`) and exit with its status.
    Inside a `torchrun` job (a rank already) it does nothing.

    Raises:
        ConfigError: `nproc` below 1.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return
    if nproc == 1:
        err_console.print("--nproc 1 has no effect: training in this process", highlight=False)
        return
    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip or arg == "--nproc" or arg.startswith("--nproc="):
            skip = arg == "--nproc"
            continue
        argv.append(arg)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    code = subprocess.call([*command, "-m", "siamese", *argv], env=env)
    raise typer.Exit(code)

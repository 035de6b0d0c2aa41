"""A rich progress bar for training, as a trainer callback (only the CLI talks to the terminal)."""

from __future__ import annotations

import signal
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from siamese.training.trainer import Callback, Trainer


class RichProgress(Callback):
    """One bar per epoch with the running loss, and one summary line per finished epoch."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None
        self.running = 0.0

    def on_epoch_start(self, trainer: Trainer, epoch: int, num_steps: int) -> None:
        self.progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{trainer.epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=num_steps, loss=float("nan"))
        self.running = float("nan")

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        self.running = loss if self.running != self.running else 0.9 * self.running + 0.1 * loss
        if self.progress is not None:
            self.progress.update(self.task, advance=1, loss=self.running)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.progress is not None:
            self.progress.stop()


class EpochLine(Callback):
    """Prints one line per epoch after validation ran."""

    def __init__(self, console: Console) -> None:
        self.console = console

    SHOWN = (
        ("val_loss", "val loss", ".4f"),
        ("val_eer", "val EER", ".2%"),
        ("knn_acc", "k-NN", ".2%"),
        ("spread", "spread", ".3f"),
    )
    """The metrics an epoch line shows when the epoch measured them: (key, label, format)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        parts = [f"epoch {epoch + 1}/{trainer.epochs}", f"train loss {metrics['train_loss']:.4f}"]
        for key, label, spec in self.SHOWN:
            value = metrics.get(key)
            if value is not None and value == value:  # measured this epoch (not NaN)
                parts.append(f"{label} {value:{spec}}")
        self.console.print("  ".join(parts), highlight=False)


class StopOnSigint(Callback):
    """First Ctrl-C: finish the current step, save a resumable state and stop. Second: abort."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.previous: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        def handler(signum: int, frame: Any) -> None:
            if trainer.stop_requested:
                raise KeyboardInterrupt
            trainer.stop_requested = True
            self.console.print("[yellow]stopping after this step and saving (Ctrl-C again to abort)[/]")

        try:
            self.previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self.previous = None

    def _restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None

    def on_interrupt(self, trainer: Trainer) -> None:
        self._restore()

    def on_fit_end(self, trainer: Trainer) -> None:
        self._restore()


def run_with_progress(run: Any, config: Any, resume: bool) -> dict:
    """Call `run(config, callbacks=..., resume=...)` with a progress bar, an epoch line and Ctrl-C
    handling; an interrupted run prints the resume command and exits with code 130."""
    import typer

    from siamese.cli.common import console
    from siamese.training.run import TrainingInterrupted

    callbacks = [RichProgress(console), EpochLine(console), StopOnSigint(console)]
    try:
        return run(config, callbacks=callbacks, resume=resume)
    except TrainingInterrupted as exc:
        console.print(f"[yellow]{exc}[/]", highlight=False)
        raise typer.Exit(130) from None


def summary_table(title: str, rows: list[tuple[str, str]]) -> Any:
    """A two-column rich table of `(what, value)` rows."""
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table

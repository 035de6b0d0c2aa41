"""The training entry point: a `TrainConfig` in, a run directory and a summary out."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader

from siamese.data import Split
from siamese.devices import resolve_device
from siamese.errors import CheckpointError, SiameseError
from siamese.evaluation import metrics_at_threshold
from siamese.runs import STATE, RunDir, new_run_dir
from siamese.training.builders import build_trainer
from siamese.training.callbacks import CheckpointCallback, ValidationCallback, rank_states
from siamese.training.config import TrainConfig
from siamese.training.distributed import Distributed
from siamese.training.evaluation import score_pairs
from siamese.training.loaders import Prepared, prepare_data
from siamese.training.state import load_rng_state, load_training_state
from siamese.training.trainer import Callback, Trainer

logger = logging.getLogger(__name__)


class _Prepared(Protocol):
    config: TrainConfig  # the run's config as the data fitted it (its training batch)


T = TypeVar("T", bound=_Prepared)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (weights, augmentation)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def evaluate_split(trainer: Trainer, loader: DataLoader, threshold: float) -> dict[str, float]:
    """EER, AUC and accuracy/FAR/FRR at a fixed distance threshold on one split's pairs."""
    scores = score_pairs(trainer, loader)
    return metrics_at_threshold(scores.distances, scores.is_same, threshold)


class TrainingInterrupted(SiameseError):
    """Training stopped on request (Ctrl-C); a resumable state was saved."""

    def __init__(self, run_dir: Path, epoch: int, step: int, command: str = "train") -> None:
        super().__init__(
            f"training interrupted at epoch {epoch + 1}, step {step}; state saved. "
            f"Resume with: siamese {command} --resume {run_dir}"
        )
        self.run_dir = run_dir


def resume_config(run_dir: str | Path) -> TrainConfig:
    """The configuration a run was started with, to continue it in place."""
    run = RunDir(run_dir)
    try:
        recorded = run.read_config()
    except CheckpointError as exc:
        raise CheckpointError(f"cannot resume: {exc}") from None
    try:
        return TrainConfig.from_dict({**recorded, "out": str(run_dir)})
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"cannot resume {run_dir}: unreadable {run.config_file.name} ({exc})") from None


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop metric rows of epochs that will be re-run after resuming."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= epochs_done]
    path.write_text("".join(kept))


@dataclass
class Started(Generic[T]):
    """A run about to train: its directory, device, prepared data and data-parallel place."""

    run_dir: Path
    device: torch.device
    data: T
    distributed: Distributed | None

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run's files (the only one, or rank 0 under torchrun)."""
        return self.distributed is None or self.distributed.is_main


def start_run(config: TrainConfig, resume: bool, prepare: Callable[[Path], T]) -> Started[T]:
    """Seed, pick the device and the run directory, `prepare(run_dir)` the data, then (unless
    resuming) create the directory and write the prepared data's `config` (the batch fitted to the
    data) as `config.json`; a data error leaves no empty run directory behind.

    Under `torchrun` (`WORLD_SIZE` > 1) the process joins the run's process group first: rank 0
    names the run directory and writes it, every rank trains on its slice of each global batch.
    """
    seed_everything(config.seed)
    device = resolve_device(config.device)
    distributed = Distributed.from_env(device)
    if distributed is not None:
        distributed.start()
        device = distributed.device(device)
    name = config.method.name if config.method.self_supervised else config.loss.name
    path = Path(config.out) if config.out else new_run_dir(name).path
    run = RunDir(path if distributed is None else distributed.share(path))
    data = prepare(run.path)
    if distributed is not None:
        fitted = data.config.optim.batch_size  # the batch the data can fill
        distributed.shard(data.train_loader, fitted, config.seed)  # type: ignore[attr-defined]
        if not distributed.is_main:  # augmentation of its own; DDP gives every rank rank 0's weights
            seed_everything(config.seed + 7919 * distributed.rank)
    if distributed is None or distributed.is_main:
        run.path.mkdir(parents=True, exist_ok=True)
        if not resume:
            run.write_config(data.config.to_dict())
    return Started(run.path, device, data, distributed)


@contextmanager
def finishing(distributed: Distributed | None) -> Iterator[None]:
    """Leave the process group when training ends, however it ends (rank 0 then tests and writes
    the summary alone)."""
    try:
        yield
    except BaseException:
        if distributed is not None:
            distributed.stop(together=False)
        raise
    if distributed is not None:
        distributed.stop()


def fit_run(
    trainer: Trainer,
    checkpoints: CheckpointCallback,
    loader: DataLoader,
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
) -> dict[str, float]:
    """Fit (or, with `resume`, continue from the saved state) and return the last epoch's metrics.

    Raises:
        TrainingInterrupted: `stop_requested` was set (Ctrl-C); the state was saved first.
    """
    start_epoch = start_step = 0
    if resume:
        state = load_training_state(RunDir(run_dir).checkpoint(STATE), trainer)
        ranked = trainer.distributed
        if ranked is not None and not ranked.is_main:  # this rank's own augmentation randomness
            load_rng_state(list(rank_states(RunDir(run_dir), ranked.rank)), state["global_step"])
        start_epoch, start_step = state["epoch"], state["step_in_epoch"]
        checkpoints.restore(state["extra"])
        _truncate_metrics(RunDir(run_dir).metrics_file, start_epoch)
        logger.info("resuming %s at epoch %d, step %d", run_dir, start_epoch + 1, start_step)
    trainer.fit(loader, config.optim.epochs, start_epoch, start_step)
    if trainer.interrupted:
        command = "pretrain" if config.method.self_supervised else "train"
        raise TrainingInterrupted(run_dir, trainer.epoch, trainer.step_in_epoch, command)
    return trainer.last_metrics


def train(
    config: TrainConfig,
    callbacks: list[Callback] | None = None,
    resume: bool = False,
    split: Split | None = None,
) -> dict[str, Any]:
    """Train a verification model as configured and evaluate it on the held-out test identities.

    Writes `config.json`, `split.json`, `metrics.csv`, `checkpoints/{best,last,state}.*` and
    `summary.json` to the run directory.

    Args:
        config: the run's configuration.
        callbacks: extra trainer callbacks (progress display, ...).
        resume: continue the run in `config.out` from its saved training state (see `resume_config`).
        split: use this identity split instead of drawing one from the config's fractions
            (benchmarks' k-fold protocols); ignored when resuming.

    Returns:
        The summary: run directory, best epoch, validation threshold, test metrics, wall time.

    Raises:
        TrainingInterrupted: `stop_requested` was set (Ctrl-C); the state was saved first.
    """
    start = time.perf_counter()

    def prepare(run_dir: Path) -> Prepared:
        return prepare_data(config, Split.from_json(RunDir(run_dir).split_file) if resume else split)

    started = start_run(config, resume, prepare)
    run_dir, device, data = started.run_dir, started.device, started.data
    run, config = RunDir(run_dir), data.config
    if not resume and started.is_main:
        data.split.to_json(run.split_file)
    logger.info("data: %s", data.index.summary())

    validation = ValidationCallback(
        data.val_loader, config.threshold_rule, config.target_far, identities=len(data.split.val)
    )
    trainer, checkpoints = build_trainer(
        config, data, run_dir, device, validation, callbacks or [], started.distributed
    )
    with finishing(started.distributed):
        fit_run(trainer, checkpoints, data.train_loader, config, run_dir, resume)
    if not started.is_main:
        return {"run_dir": str(run_dir), "rank": started.distributed.rank}  # type: ignore[union-attr]
    kept = checkpoints.kept  # the trainer now holds the kept epoch's weights
    if kept is None:
        raise SiameseError(f"{run_dir}: training ended without a validated epoch")
    summary = {
        "run_dir": str(run_dir),
        "best_epoch": kept.epoch,
        "val_eer": kept.val_eer,
        "threshold": kept.threshold,
        "test": evaluate_split(trainer, data.test_loader, kept.threshold),
        "wall_time_s": round(time.perf_counter() - start, 2),
        "device": str(device),
        "identities": {k: len(v) for k, v in data.split.to_dict().items()},
    }
    run.write_summary(summary)
    return summary

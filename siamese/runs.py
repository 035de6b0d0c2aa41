"""The run directory: the one owner of its layout and of reading what training wrote there.

A run directory, as `siamese train` and `siamese pretrain` write it::

    <run>/config.json           the resolved training configuration
    <run>/split.json            the identity split (train / val / test), supervised runs
    <run>/metrics.csv           one row of metrics per epoch
    <run>/summary.json          the final figures
    <run>/checkpoints/best.*    the run's model (safetensors weights + JSON metadata)
    <run>/checkpoints/last.*    the last epoch's model
    <run>/checkpoints/state.*   the resumable training state

Nobody else spells these names or parses these files: training writes through `RunDir`, and
inference, evaluation and the benchmarks read through it. This module sits on the lowest floor
(the standard library and `siamese.errors` only), so any layer may import it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from siamese.errors import CheckpointError, ConfigError

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
SPLIT_FILE = "split.json"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
BEST, LAST, STATE = "best", "last", "state"


@dataclass(frozen=True)
class TrainingData:
    """What a run was trained on, as its `config.json` records it.

    Attributes:
        root: the identity-folder root; None = the preset's embedded data.
        forgeries: the skilled-forgery root, if any.
        preset: the data preset (None in a config written without one).
    """

    root: str | None
    forgeries: str | None
    preset: str | None


@dataclass(frozen=True, init=False)
class RunDir:
    """A run directory and the paths of its files.

    Attributes:
        path: the directory.
    """

    path: Path

    def __init__(self, path: str | os.PathLike) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def config_file(self) -> Path:
        """`config.json`: the resolved training configuration."""
        return self.path / CONFIG_FILE

    @property
    def split_file(self) -> Path:
        """`split.json`: the identity split."""
        return self.path / SPLIT_FILE

    @property
    def metrics_file(self) -> Path:
        """`metrics.csv`: one row per epoch."""
        return self.path / METRICS_FILE

    @property
    def summary_file(self) -> Path:
        """`summary.json`: the run's final figures."""
        return self.path / SUMMARY_FILE

    @property
    def checkpoints(self) -> Path:
        """The folder of the checkpoints and the training state."""
        return self.path / CHECKPOINT_DIR

    def checkpoint(self, which: str = BEST) -> Path:
        """The stem of a checkpoint ("best", "last") or of the training state ("state")."""
        return self.checkpoints / which

    def is_trained(self) -> bool:
        """Whether the run holds a model (`checkpoints/best.json`)."""
        return self.checkpoint(BEST).with_suffix(".json").is_file()

    def read_config(self) -> dict[str, Any]:
        """The training configuration as written (a nested dict; `TrainConfig.from_dict` rebuilds it).

        Raises:
            CheckpointError: no readable `config.json` (not a siamese run directory).
        """
        try:
            config = json.loads(self.config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            message = f"{self.path} has no {CONFIG_FILE} (is it a siamese run directory?)"
            raise CheckpointError(message) from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CheckpointError(f"unreadable {self.config_file}: {exc}") from None
        if not isinstance(config, dict):
            raise CheckpointError(f"unreadable {self.config_file}: not a JSON object")
        return config

    def write_config(self, config: dict[str, Any]) -> None:
        """Write the resolved configuration."""
        _write_json(self.config_file, config)

    def training_data(self) -> TrainingData:
        """The data the run was trained on.

        Raises:
            CheckpointError: no readable `config.json`, or one without a data section.
        """
        data = self.read_config().get("data")
        if not isinstance(data, dict):
            raise CheckpointError(f"{self.config_file} records no training data")
        return TrainingData(data.get("root"), data.get("forgeries"), data.get("preset"))

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write the run's final figures."""
        _write_json(self.summary_file, summary)

    def read_summary(self) -> dict[str, Any]:
        """The run's final figures.

        Raises:
            CheckpointError: no readable `summary.json` (the run has not finished).
        """
        try:
            return dict(json.loads(self.summary_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise CheckpointError(f"{self.path} has no readable {SUMMARY_FILE}: {exc}") from None


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def new_run_dir(name: str, runs_dir: str | os.PathLike = "runs") -> RunDir:
    """`<runs_dir>/<YYYYmmdd-HHMMSS>-<name>` (not created)."""
    return RunDir(Path(runs_dir) / f"{datetime.now():%Y%m%d-%H%M%S}-{name}")


def latest_run(runs_dir: str | os.PathLike = "runs") -> Path:
    """The most recently trained run directory under `runs_dir`.

    A run directory is a direct sub-folder holding `checkpoints/best.json`; "most recent" means the
    newest `best.json` (ties broken by name).

    Raises:
        CheckpointError: `runs_dir` is missing or holds no trained run.
    """
    root = Path(runs_dir)
    candidates = []
    if root.is_dir():
        for child in root.iterdir():
            meta = RunDir(child).checkpoint(BEST).with_suffix(".json")
            if meta.is_file():
                candidates.append((meta.stat().st_mtime, child.name, child))
    if not candidates:
        raise CheckpointError(
            f"no trained model found under {root}/ (train one with `siamese train`, or pass --model RUN)"
        )
    return max(candidates)[2]


def run_of_checkpoint(stem: str | os.PathLike) -> RunDir:
    """The run directory a checkpoint stem belongs to: `<run>/checkpoints/best` -> `<run>`; a
    checkpoint kept outside a run (`<dir>/best`) -> `<dir>`."""
    stem = Path(stem)
    return RunDir(stem.parent.parent if stem.parent.name == CHECKPOINT_DIR else stem.parent)


def validation_split_of(run: RunDir, hint: str) -> TrainingData:
    """The training data of a run whose validation identities are to be used, checked.

    Args:
        hint: what the user can do instead, appended to every message.

    Raises:
        ConfigError: the run records no data or no split.
    """
    try:
        data = run.training_data()
    except CheckpointError:
        raise ConfigError(f"{run.path} records no training data ({CONFIG_FILE}); {hint}") from None
    if not run.split_file.is_file():
        raise ConfigError(f"{run.path} records no identity split ({SPLIT_FILE}); {hint}")
    return data

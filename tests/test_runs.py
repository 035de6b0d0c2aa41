"""siamese.runs: the run directory's one owner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from siamese.errors import CheckpointError, ConfigError
from siamese.runs import RunDir, latest_run, new_run_dir, run_of_checkpoint, validation_split_of


def test_paths_of_a_run(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert run.config_file == tmp_path / "config.json" and run.split_file == tmp_path / "split.json"
    assert run.checkpoint() == tmp_path / "checkpoints" / "best"
    assert run.checkpoint("state") == tmp_path / "checkpoints" / "state"
    assert not run.is_trained()
    assert RunDir(str(tmp_path)) == run


def test_config_and_summary_round_trip(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.write_config({"data": {"root": "ids", "forgeries": None, "preset": "face"}})
    data = run.training_data()
    assert (data.root, data.forgeries, data.preset) == ("ids", None, "face")
    run.write_summary({"val_eer": 0.1})
    assert run.read_summary() == {"val_eer": 0.1}


def test_unreadable_configs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no config.json"):
        RunDir(tmp_path).read_config()
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        RunDir(tmp_path).read_config()
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="unreadable"):
        RunDir(tmp_path).read_config()
    with pytest.raises(ConfigError, match="records no training data.*--calibration"):
        validation_split_of(RunDir(tmp_path), "pass --calibration DIR")
    (tmp_path / "config.json").write_text(json.dumps({"data": {"root": None}}))
    with pytest.raises(ConfigError, match="no identity split"):
        validation_split_of(RunDir(tmp_path), "hint")


def test_latest_run_and_run_of_checkpoint(tmp_path: Path) -> None:
    for name, mtime in (("b-old", 100), ("a-new", 200), ("c-untrained", 300)):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        if name != "c-untrained":
            meta = tmp_path / name / "checkpoints" / "best.json"
            meta.write_text("{}")
            os.utime(meta, (mtime, mtime))
    assert latest_run(tmp_path) == tmp_path / "a-new"
    assert run_of_checkpoint(tmp_path / "a-new" / "checkpoints" / "best") == RunDir(tmp_path / "a-new")
    assert run_of_checkpoint(tmp_path / "exported" / "best") == RunDir(tmp_path / "exported")
    with pytest.raises(CheckpointError, match="no trained model"):
        latest_run(tmp_path / "missing")


def test_new_run_dirs_are_named_by_time_and_objective(tmp_path: Path) -> None:
    run = new_run_dir("supcon", tmp_path)
    assert run.path.parent == tmp_path and run.path.name.endswith("-supcon") and not run.path.exists()

"""Tests for siamese/training/batching.py: a batch the data cannot fill becomes one it can, with one
warning, for every preset's defaults, every sampler and `pretrain`."""

from __future__ import annotations

import doctest
import itertools
import json
import logging

import pytest
from typer.testing import CliRunner

from siamese import names
from siamese.errors import DataError
from siamese.training import batching
from siamese.training.batching import fit_drawn_batch, fit_identity_batch
from siamese.training.config import build_train_config
from siamese.training.pretrain import pretrain
from siamese.training.run import train
from siamese.training.trainer import Callback
from tests.conftest import write_identity_folder

TINY = {"image_size": (16, 16), "epochs": 1, "eval_pairs": 8}


def test_doctests():
    assert doctest.testmod(batching, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0


def _fits(b: int, m: int, identities: int, samples: int) -> bool:
    return b % m == 0 and b >= 2 * m and b // m <= identities and b <= samples


def test_identity_batch_is_the_largest_that_fits():
    grid = itertools.product([8, 16, 32, 64], [2, 4, 16], [2, 3, 5, 8, 20], [4, 8, 12, 40, 1000])
    for b, m, identities, samples in ((b, m, k, n) for b, m, k, n in grid if b % m == 0 and b >= 2 * m):
        fit = fit_identity_batch(b, m, identities, samples)
        case = (b, m, identities, samples, fit)
        assert _fits(fit.batch_size, fit.m_per_class, identities, samples) and fit.batch_size <= b, case
        if _fits(b, m, identities, samples):
            assert (fit.batch_size, fit.m_per_class, fit.reason) == (b, m, None), case
            continue
        m_note = f" with m={fit.m_per_class}" if fit.m_changed else ""
        assert fit.reason and fit.message().endswith(f": using batch {fit.batch_size}{m_note}"), case
        # naive search: the largest batch with the configured m; m is lowered only when none exists
        same_m = [c for c in range(2, b + 1) if _fits(c, m, identities, samples)]
        if same_m:
            assert (fit.batch_size, fit.m_per_class, fit.m_changed) == (max(same_m), m, False), case
        else:
            assert fit.m_changed and fit.m_per_class < m and fit.batch_size == 2 * fit.m_per_class, case
            assert 2 * (fit.m_per_class + 1) > samples, case  # the largest m two identities fit


def test_identity_batch_message_names_the_constraint():
    assert fit_identity_batch(32, 4, 2, 100).message() == (
        "batch 32 needs 8 identities with m=4; the training split has 2: using batch 8"
    )
    assert fit_identity_batch(32, 4, 20, 12).message() == (
        "batch 32 exceeds the 12 images an epoch draws: using batch 12"
    )


def test_identity_batch_without_two_usable_identities_is_a_clear_error():
    with pytest.raises(DataError, match="2 training identities with 2 or more images"):
        fit_identity_batch(8, 4, identities=1, samples=100)


def test_drawn_batch():
    assert fit_drawn_batch(64, 8, "pairs").batch_size == 8
    assert fit_drawn_batch(8, 8, "pairs").reason is None
    with pytest.raises(DataError):
        fit_drawn_batch(8, 1, "triplets")


class StepCounter(Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, trainer, step, loss) -> None:
        self.steps += 1


def _batch_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "siamese.training.batching"]


@pytest.fixture
def smallest(tmp_path):
    """The smallest folder the default split (20% validation, 20% test, at least 2 identities in
    each part) accepts and can score: 6 identities of 2 images (a part needs a genuine pair)."""
    return write_identity_folder(tmp_path / "ids", n_identities=6, n_images=2, size=(16, 16))


@pytest.mark.parametrize("preset", names.PRESETS)
def test_every_preset_trains_on_the_smallest_folder_with_one_warning(tmp_path, smallest, preset, caplog):
    steps = StepCounter()
    with caplog.at_level(logging.WARNING, logger="siamese"):
        summary = train(
            build_train_config(preset, root=str(smallest), out=str(tmp_path / "r"), **TINY), [steps]
        )
    warnings = _batch_warnings(caplog)
    assert len(warnings) == 1, warnings
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    batch = saved["optim"]["batch_size"]
    assert (
        warnings[0].endswith(f"using batch {batch}") and batch < build_train_config(preset).optim.batch_size
    )
    # 2 training identities x 2 images: an epoch draws 8 samples (x 4 with omniglot's rotations)
    samples = 8 * saved["data"]["rotations"]
    assert steps.steps == samples // batch >= 1
    assert summary["identities"] == {"train": 2, "val": 2, "test": 2} and 0 <= summary["test"]["eer"] <= 1


@pytest.mark.parametrize("preset", names.PRESETS)
def test_a_large_enough_folder_keeps_the_preset_batch_without_warning(tmp_path, preset, caplog):
    # 26 identities -> 16 training identities of 3 images: batches of 64 = 16 x m=4, 96 drawn per epoch
    data = write_identity_folder(tmp_path / "ids", n_identities=26, n_images=3, size=(16, 16))
    with caplog.at_level(logging.WARNING, logger="siamese"):
        train(build_train_config(preset, root=str(data), out=str(tmp_path / "r"), **TINY))
    assert _batch_warnings(caplog) == []
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["optim"]["batch_size"] == build_train_config(preset).optim.batch_size


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"loss": "margin"}, "batch 32 exceeds the 8 pairs an epoch draws: using batch 8"),
        ({"loss": "triplet"}, "batch 32 exceeds the 8 triplets an epoch draws: using batch 8"),
        ({"sampler": "views"}, "batch 32 exceeds the 4 images an epoch draws: using batch 4"),
        (
            {"batch_size": 16, "samples_per_epoch": 16},
            "batch 16 needs 4 identities with m=4; the training split has 2: using batch 8",
        ),
    ],
)
def test_every_sampler_and_an_explicit_batch_size_adapt(tmp_path, smallest, options, expected, caplog):
    steps = StepCounter()
    cfg = build_train_config("face", root=str(smallest), out=str(tmp_path / "r"), **TINY, **options)
    with caplog.at_level(logging.WARNING, logger="siamese"):
        train(cfg, [steps])
    assert _batch_warnings(caplog) == [expected] and steps.steps >= 1


@pytest.mark.parametrize("preset", names.PRESETS)
def test_pretrain_adapts_its_batch_to_the_images(tmp_path, smallest, preset, caplog):
    cfg = build_train_config(preset, root=str(smallest), method="simclr", out=str(tmp_path / "p"), **TINY)
    with caplog.at_level(logging.WARNING, logger="siamese"):
        summary = pretrain(cfg)
    batch = build_train_config(preset, method="simclr").optim.batch_size
    assert _batch_warnings(caplog) == [f"batch {batch} exceeds the 12 images an epoch draws: using batch 12"]
    assert summary["images"] == 12
    assert json.loads((tmp_path / "p" / "config.json").read_text())["optim"]["batch_size"] == 12


def test_cli_shows_the_adaptation_once_and_trains(tmp_path, smallest):
    from siamese.cli.app import app

    out = tmp_path / "run"
    args = ["train", str(smallest), "--preset", "face", "--image-size", "16", "--epochs", "1"]
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, [*args, "--eval-pairs", "8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if "using batch" in ln]
    assert len(lines) == 1 and "needs 8 identities with m=4; the training split has 2" in lines[0]
    assert "test EER" in result.stdout and (out / "checkpoints" / "best.safetensors").is_file()

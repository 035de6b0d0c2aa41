"""CheckpointCallback: which epoch a run keeps, the weights it leaves in the trainer, and the
calibration it writes once, at the end of the fit, from the kept epoch's validation pairs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from siamese.evaluation import fit_confidence
from siamese.losses import get_loss
from siamese.models import get_encoder
from siamese.training.callbacks import CheckpointCallback, Validation, ValidationCallback
from siamese.training.evaluation import PairScores
from siamese.training.methods import SupervisedMethod


class ScriptedValidation(ValidationCallback):
    """Validation results of a script: epoch e has EER `eers[e - 1]` and its own pair distances."""

    def __init__(self, eers: list[float]) -> None:
        super().__init__(loader=None)
        self.eers = eers
        self.rescored: list[int] = []

    def result(self, epoch: int) -> Validation:
        rng = np.random.default_rng(epoch)
        is_same = np.arange(200) % 2 == 0
        distances = rng.normal(0.5, 0.2, 200) - 0.1 * epoch * is_same  # (200,)
        return Validation(epoch, PairScores(0.0, distances, is_same), self.eers[epoch - 1], 0.1 * epoch)

    def score(self, trainer, epoch: int) -> Validation:  # noqa: ANN001
        self.rescored.append(epoch)
        return self.result(epoch)


def _fit(
    run_dir: Path,
    eers: list[float],
    select: str,
    resume_after: int | None = None,
    identities: int | None = None,
):
    """Drive the callback through `len(eers)` epochs; epoch e's encoder weights are all e."""
    encoder = get_encoder("smallcnn", in_channels=1, embedding_dim=4, width=4)
    method = SupervisedMethod(encoder, get_loss("margin"), None, "euclidean")
    trainer = SimpleNamespace(method=method, epoch=0, step_in_epoch=0)
    validation = ScriptedValidation(eers)
    validation.identities = identities
    callback = CheckpointCallback(run_dir, {"preset": "digits"}, select=select, validation=validation)
    callback.save_state = lambda *args: None  # the training state is another test's subject
    for epoch in range(len(eers)):
        if resume_after is not None and epoch == resume_after:  # a new process resumes the run
            extra = {"history": callback.history, "best_epoch": callback.best_epoch}
            callback = CheckpointCallback(run_dir, {"preset": "digits"}, select=select, validation=validation)
            callback.save_state = lambda *args: None
            callback.restore(extra)
        with torch.no_grad():
            for p in encoder.parameters():
                p.fill_(epoch + 1)
        validation.last = validation.result(epoch + 1)
        callback.on_epoch_end(trainer, epoch, {})
    callback.on_fit_end(trainer)
    return callback, encoder, validation


def _weight(encoder) -> float:  # noqa: ANN001
    return float(next(encoder.parameters()).flatten()[0])


@pytest.mark.parametrize(
    ("eers", "select", "kept"),
    [
        ([0.30, 0.10, 0.20, 0.25], "best", 2),
        ([0.30, 0.10, 0.20, 0.25], "last", 4),
        ([0.30, 0.10, 0.20, 0.25], "stable", 2),  # 15 points on 200 pairs: beyond the noise
        ([0.30, 0.10, 0.20, 0.11], "stable", 4),  # 1 point: inside the noise
    ],
)
def test_the_kept_epoch_is_in_the_trainer_and_calibrated_on_its_own_pairs(tmp_path, eers, select, kept):
    callback, encoder, validation = _fit(tmp_path, eers, select)
    assert callback.kept is not None and callback.kept.epoch == kept
    assert _weight(encoder) == kept  # the trainer holds the kept epoch's weights
    meta = json.loads((tmp_path / "checkpoints/best.json").read_text())
    expected = validation.result(kept)
    assert meta["epoch"] == kept and meta["val_eer"] == eers[kept - 1]
    assert meta["threshold"] == pytest.approx(expected.threshold)
    cal = fit_confidence(expected.scores.distances, expected.scores.is_same)
    assert meta["calibration"] == pytest.approx(cal)
    assert validation.rescored == []  # the kept epoch's pairs were kept, not scored again
    last = json.loads((tmp_path / "checkpoints/last.json").read_text())
    assert last["epoch"] == len(eers) and "calibration" not in last


def test_the_stable_rule_counts_the_validation_identities(tmp_path):
    # 5 points on 200 independent pairs is two standard errors; on pairs of 6 people, 0.6 of one
    eers = [0.30, 0.10, 0.20, 0.15]
    assert _fit(tmp_path / "pairs", eers, "stable")[0].kept.epoch == 2
    assert _fit(tmp_path / "people", eers, "stable", identities=6)[0].kept.epoch == 4


def test_a_resumed_run_scores_an_earlier_kept_epoch_again_with_its_saved_weights(tmp_path):
    callback, encoder, validation = _fit(tmp_path, [0.30, 0.05, 0.20, 0.25], "best", resume_after=3)
    assert callback.kept is not None and callback.kept.epoch == 2
    assert _weight(encoder) == 2  # read back from checkpoints/best.safetensors
    assert validation.rescored == [2]


def test_states_written_before_the_history_was_kept_resume(tmp_path):
    callback = CheckpointCallback(tmp_path, {}, select="best", validation=ScriptedValidation([0.1] * 4))
    callback.restore({"best_eer": 0.2, "best_epoch": 3})
    assert callback.history == [None, None, 0.2] and callback.best_epoch == 3


def test_without_validation_nothing_is_calibrated(tmp_path):
    encoder = get_encoder("smallcnn", in_channels=1, embedding_dim=4, width=4)
    trainer = SimpleNamespace(method=SupervisedMethod(encoder, get_loss("margin"), None, "euclidean"))
    callback = CheckpointCallback(tmp_path, {"preset": "digits"}, select="last")
    callback.save_state = lambda *args: None
    for epoch in range(2):
        callback.on_epoch_end(trainer, epoch, {})
    callback.on_fit_end(trainer)
    meta = json.loads((tmp_path / "checkpoints/best.json").read_text())
    assert callback.kept is None and meta["epoch"] == 2 and "calibration" not in meta

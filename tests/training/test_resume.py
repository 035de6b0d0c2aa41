"""Interrupted training loses at most the current step and resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from siamese.training.config import build_train_config
from siamese.training.run import TrainingInterrupted, resume_config, train
from siamese.training.trainer import Callback
from tests.conftest import write_identity_folder

OPTIONS = dict(
    loss="margin",
    epochs=2,
    batch_size=8,
    samples_per_epoch=32,
    eval_pairs=16,
    val_fraction=0.25,
    test_fraction=0.25,
    embedding_dim=8,
    seed=5,
)


class StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, step, loss):
        if step == self.step:
            trainer.stop_requested = True


def _weights(run: Path, which: str = "last"):
    return load_file(str(run / "checkpoints" / f"{which}.safetensors"))


def _assert_same_metrics(a: Path, b: Path) -> None:
    """The same metrics rows, the numbers equal up to float rounding (a process that ran other
    models with other thread counts may reuse kernels that sum in another order)."""
    rows_a = [line.split(",") for line in (a / "metrics.csv").read_text().splitlines()]
    rows_b = [line.split(",") for line in (b / "metrics.csv").read_text().splitlines()]
    assert rows_a[0] == rows_b[0] and len(rows_a) == len(rows_b)
    for row_a, row_b in zip(rows_a[1:], rows_b[1:], strict=True):
        assert [float(x) for x in row_a] == pytest.approx([float(x) for x in row_b], rel=1e-5, abs=1e-7)


def _assert_same_weights(a: Path, b: Path):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert (wa[k] - wb[k]).abs().max().item() <= 1e-6, k


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_identity_folder(tmp_path_factory.mktemp("resume") / "ids", n_identities=8, n_images=5)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    train(build_train_config("digits", root=str(data), out=str(out), **OPTIONS))
    return out


@pytest.mark.parametrize("sampler", ["pairs", "mperclass"])
def test_stop_mid_epoch_then_resume_matches_uninterrupted(data, tmp_path, sampler):
    opts = {**OPTIONS, "sampler": sampler, "m_per_class": 2}
    ref = tmp_path / "ref"
    train(build_train_config("digits", root=str(data), out=str(ref), **opts))
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="--resume"):
        train(build_train_config("digits", root=str(data), out=str(run), **opts), callbacks=[StopAt(6)])
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert (state["epoch"], state["step_in_epoch"]) == (1, 2)  # 4 steps per epoch: inside epoch 2
    train(resume_config(run), resume=True)
    _assert_same_weights(run, ref)
    _assert_same_metrics(run, ref)


def test_same_seed_gives_bit_identical_metrics(data, tmp_path, reference):
    again = tmp_path / "again"
    train(build_train_config("digits", root=str(data), out=str(again), **OPTIONS))
    _assert_same_metrics(again, reference)
    assert (again / "summary.json").read_text().split('"wall_time_s"')[0].replace(str(again), "") == (
        reference / "summary.json"
    ).read_text().split('"wall_time_s"')[0].replace(str(reference), "")


def test_sigkill_after_first_checkpoint_then_resume(data, tmp_path, reference):
    exe = Path(sys.executable).with_name("siamese")
    run = tmp_path / "killed"
    args = [
        str(exe),
        "train",
        str(data),
        "--preset",
        "digits",
        "--out",
        str(run),
        "--save-every",
        "1",
        "--loss",
        "margin",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--samples-per-epoch",
        "32",
        "--eval-pairs",
        "16",
        "--val-fraction",
        "0.25",
        "--test-fraction",
        "0.25",
        "--embedding-dim",
        "8",
        "--seed",
        "5",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run / "checkpoints" / "state.json"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("training finished before it could be killed")
    result = subprocess.run([str(exe), "train", "--resume", str(run)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    _assert_same_weights(run, reference)
    _assert_same_metrics(run, reference)


@pytest.mark.parametrize("method", ["moco", "byol"])
def test_pretraining_resumed_mid_epoch_matches_an_uninterrupted_run(data, tmp_path, method):
    from siamese.training.pretrain import pretrain

    opts = dict(method=method, epochs=2, batch_size=8, embedding_dim=8, seed=3, queue_size=16)
    if method == "byol":
        opts.pop("queue_size")
    ref, run = tmp_path / "ref", tmp_path / "run"
    pretrain(build_train_config("digits", root=str(data), out=str(ref), **opts))
    with pytest.raises(TrainingInterrupted, match="siamese pretrain --resume"):
        pretrain(build_train_config("digits", root=str(data), out=str(run), **opts), callbacks=[StopAt(3)])
    pretrain(resume_config(run), resume=True)
    _assert_same_weights(ref, run)
    _assert_same_metrics(ref, run)
    state_ref, state_run = _weights(ref, "state"), _weights(run, "state")
    for key in [k for k in state_ref if k.startswith(("model.target", "model.queue"))]:
        assert torch.equal(state_ref[key], state_run[key]), key


def test_resume_keeps_the_margin_softmax_class_weights(data, tmp_path):
    opts = {**OPTIONS, "loss": "arcface", "m_per_class": 2}
    ref = tmp_path / "ref"
    train(build_train_config("digits", root=str(data), out=str(ref), **opts))
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(build_train_config("digits", root=str(data), out=str(run), **opts), callbacks=[StopAt(6)])
    interrupted = load_file(str(run / "checkpoints" / "state.safetensors"))["model.loss.W"]
    train(resume_config(run), resume=True)
    weights = load_file(str(run / "checkpoints" / "state.safetensors"))["model.loss.W"]
    reference = load_file(str(ref / "checkpoints" / "state.safetensors"))["model.loss.W"]
    assert (weights - interrupted).abs().max() > 0  # trained on after the resume ...
    torch.testing.assert_close(weights, reference, rtol=0, atol=1e-6)  # ... exactly as without the stop
    _assert_same_weights(run, ref)


def _in_the_old_layout(config: dict) -> dict:
    """A `config.json` as the version with flat option fields wrote it: every field of that
    version's method and loss sections (read from its own output, `old_configs.json`), the given
    options under their names of then, None for the others."""
    from siamese.training.config import LEGACY_NAMES

    old = json.loads((Path(__file__).with_name("old_configs.json")).read_text())["swav"]
    renamed = {new: name for name, new in LEGACY_NAMES.items()}
    flat = {renamed.get(k, k): v for s in ("method", "loss") for k, v in config[s].pop("options").items()}
    for section in ("method", "loss"):
        config[section].update(
            {key: flat.pop(key, None) for key in old[section] if key not in config[section]}
        )
    assert not flat, flat  # every option had a field then
    return config


def test_a_run_saved_with_the_flat_option_fields_of_earlier_versions_resumes_exactly(data, tmp_path):
    from siamese.training.pretrain import pretrain

    opts = dict(method="swav", epochs=2, batch_size=8, embedding_dim=8, seed=3, small_crops=2)
    opts.update(method_options={"prototypes": 8, "queue_size": 16}, loss_options={"epsilon": 0.1})
    ref, run = tmp_path / "ref", tmp_path / "run"
    pretrain(build_train_config("digits", root=str(data), out=str(ref), **opts))
    with pytest.raises(TrainingInterrupted):
        pretrain(build_train_config("digits", root=str(data), out=str(run), **opts), callbacks=[StopAt(3)])
    saved = json.loads((run / "config.json").read_text())
    old = _in_the_old_layout(saved)
    assert (old["method"]["prototypes"], old["method"]["epsilon"], old["method"]["momentum"]) == (
        8,
        0.1,
        None,
    )
    (run / "config.json").write_text(json.dumps(old))
    config = resume_config(run)
    assert (config.method.options, config.loss.options) == (
        {"prototypes": 8, "queue_size": 16},
        {"epsilon": 0.1},
    )
    pretrain(config, resume=True)
    _assert_same_weights(ref, run)
    _assert_same_metrics(ref, run)

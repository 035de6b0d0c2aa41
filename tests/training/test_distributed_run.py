"""`siamese train --nproc 2`: a real 2-process run (torchrun, gloo) writes one normal run directory
whose model every command uses; killed with SIGKILL and resumed, it ends with the weights of an
uninterrupted 2-process run; a rank that dies ends the run (no hang) with a resumable state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siamese.cli.app import app
from tests.conftest import write_identity_folder
from tests.training.test_resume import _assert_same_weights

runner = CliRunner()
ARGS = [
    "--preset", "digits", "--loss", "margin", "--epochs", "2", "--batch-size", "8", "--samples-per-epoch",
    "32", "--eval-pairs", "16", "--val-fraction", "0.25", "--test-fraction", "0.25", "--embedding-dim", "8",
    "--seed", "5", "--device", "cpu", "--nproc", "2",
]  # fmt: skip


def _train(*args: str) -> list[str]:
    return [sys.executable, "-m", "siamese", "train", *args]


@pytest.fixture(scope="module")
def ids(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_identity_folder(tmp_path_factory.mktemp("ddp") / "ids", n_identities=8, n_images=5)


@pytest.fixture(scope="module")
def reference(ids: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An uninterrupted 2-process run and what it printed."""
    run = tmp_path_factory.mktemp("ddp-ref") / "run"
    done = subprocess.run(
        _train(str(ids), *ARGS, "--out", str(run)), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return run, done.stdout


def test_a_two_process_run_is_a_normal_run(reference, ids: Path, tmp_path: Path) -> None:
    run, printed = reference
    assert printed.count("siamese train") == 1 and printed.count("epoch 2/2") == 1  # rank 0 alone talks
    for name in ("best", "last", "state"):
        assert (run / "checkpoints" / f"{name}.json").is_file()
    assert list((run / "checkpoints").glob("state-rank1-*.json"))  # rank 1's own randomness
    assert (run / "summary.json").is_file() and (run / "metrics.csv").read_text().count("\n") == 3
    a, b = sorted((ids / "id00").glob("*.png"))[:2]
    assert runner.invoke(app, ["verify", str(a), str(b), "--model", str(run), "--json"]).exit_code == 0
    assert (
        runner.invoke(
            app, ["embed", str(ids), "--model", str(run), "--out", str(tmp_path / "e.npy")]
        ).exit_code
        == 0
    )
    exported = runner.invoke(
        app, ["export", "--model", str(run), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]
    )
    assert exported.exit_code == 0, exported.output


def test_killed_and_resumed_equals_uninterrupted(reference, ids: Path, tmp_path: Path) -> None:
    ref, _ = reference
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        _train(str(ids), *ARGS, "--out", str(run), "--save-every", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    state = run / "checkpoints" / "state.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and len(list(run.glob("checkpoints/state-rank1-*.json"))) == 2:
            break
        time.sleep(0.01)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("training finished before it could be killed")
    resumed = subprocess.run(
        _train("--resume", str(run), "--nproc", "2"), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    _assert_same_weights(run, ref)


def _rank_pid(rank: int, under: Path) -> int | None:
    """The pid of the training process of `rank` whose command line names `under`."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if (
            f"RANK={rank}".encode() in env
            and str(under).encode() in cmd
            and b"torch.distributed.run" not in cmd
        ):
            return int(proc.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find a rank's process")
def test_a_rank_that_dies_ends_the_run_resumably(ids: Path, tmp_path: Path) -> None:
    run = tmp_path / "dies"
    args = list(ARGS)
    args[args.index("--epochs") + 1] = "20"  # long enough to be killed mid-run
    proc = subprocess.Popen(
        _train(str(ids), *args, "--out", str(run), "--save-every", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline, victim = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None and victim is None:
            if (run / "checkpoints" / "state.json").exists():
                victim = _rank_pid(1, run)
            time.sleep(0.05)
        if victim is None:
            pytest.skip("the run ended before a rank could be killed")
        os.kill(victim, signal.SIGKILL)
        started = time.time()
        _, err = proc.communicate(timeout=120)  # ends, never hangs
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0 and time.time() - started < 120
    assert "ChildFailedError" in err or "SIGKILL" in err or "exitcode" in err, err[-2000:]
    assert (run / "checkpoints" / "state.json").is_file()  # resumable from the last saved step


def test_pretraining_runs_in_two_processes(ids: Path, tmp_path: Path) -> None:
    run = tmp_path / "pre"
    command = [
        sys.executable,
        "-m",
        "siamese",
        "pretrain",
        str(ids),
        "--preset",
        "digits",
        "--method",
        "moco",
    ]
    command += ["--epochs", "2", "--batch-size", "8", "--device", "cpu", "--nproc", "2", "--out", str(run)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count("siamese pretrain") == 1 and (run / "checkpoints" / "best.json").is_file()
    out = tmp_path / "e.npy"
    assert runner.invoke(app, ["embed", str(ids), "--model", str(run), "--out", str(out)]).exit_code == 0


def test_accumulate_through_the_cli(ids: Path, tmp_path: Path) -> None:
    import json

    args = ARGS[: ARGS.index("--nproc")]  # one process
    result = runner.invoke(app, ["train", str(ids), *args, "--accumulate", "2", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r" / "config.json").read_text())["optim"]["accumulate"] == 2
    bad = runner.invoke(app, ["train", str(ids), "--accumulate", "0", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "accumulate" in bad.output
    cpu_sync = runner.invoke(app, ["train", str(ids), *args, "--sync-bn", "--out", str(tmp_path / "s")])
    assert cpu_sync.exit_code == 1 and "--sync-bn needs" in cpu_sync.output

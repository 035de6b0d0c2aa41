"""Data-parallel training with real processes (2 ranks, gloo, started by torchrun): one step of each
loss family on a split global batch equals one process's step on the whole batch — loss and every
gradient — and the MoCo queue and the SwAV prototypes stay identical across ranks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.training.ddp_step import METHODS, run

WORKER = Path(__file__).with_name("ddp_step.py")


def _torchrun(method: str, out: Path, steps: int = 1, nproc: int = 2) -> list[dict]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
        "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", "--max-restarts", "0",
        str(WORKER), method, str(out), "--steps", str(steps),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt") for r in range(nproc)]


@pytest.mark.parametrize("method", METHODS)
def test_two_ranks_take_the_step_one_process_takes_on_the_global_batch(method: str, tmp_path: Path) -> None:
    ranks = _torchrun(method, tmp_path, steps=2)
    alone = run(method, 2, None)
    for got in ranks:
        assert got["losses"] == pytest.approx(alone["losses"], rel=1e-5, abs=1e-6)
        assert got["grads"].keys() == alone["grads"].keys() and alone["grads"]
        for name, grad in alone["grads"].items():
            torch.testing.assert_close(got["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
        for name, value in alone["state"].items():  # after two steps: weights, queues, prototypes
            torch.testing.assert_close(got["state"][name], value, rtol=1e-4, atol=1e-6, msg=name)
    for name, value in ranks[0]["state"].items():  # the ranks agree exactly on every buffer
        assert torch.equal(ranks[1]["state"][name], value), name

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


def test_validation_scored_by_two_ranks_equals_one_process(tmp_path: Path) -> None:
    from tests.training.ddp_step import validate

    ranks = _torchrun("validate", tmp_path)
    alone = validate(None)
    assert len(alone["distances"]) == 20  # 5 batches x 2 triplets x (genuine, impostor)
    assert [got["batches"] for got in ranks] == [3, 2]  # each rank scored its share of the batches
    for got in ranks:  # every rank holds every pair's score, in batch order
        torch.testing.assert_close(got["distances"], alone["distances"], rtol=1e-6, atol=1e-7)
        assert torch.equal(got["is_same"], alone["is_same"]) and got["loss"] == pytest.approx(alone["loss"])


def test_accumulating_two_half_batches_equals_the_whole_batch() -> None:
    """ArcFace's loss is a mean over samples: two half batches with `accumulate=2` take the step one
    batch of both takes (the same gradients, the same weights after it)."""
    from siamese.training.trainer import Trainer
    from tests.training.ddp_step import batches, build

    ((images, labels, _),) = batches("arcface", 1)
    results = []
    for accumulate, parts in ((1, [slice(0, 8)]), (2, [slice(0, 4), slice(4, 8)])):
        model = build("arcface")
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), accumulate=accumulate)
        for part in parts:
            trainer.step((images[part], labels[part], None), train=True)
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results.append((grads, {k: v.clone() for k, v in model.state_dict().items()}))
    (whole_grads, whole_state), (acc_grads, acc_state) = results
    for name, grad in whole_grads.items():
        torch.testing.assert_close(acc_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    for name, value in whole_state.items():
        torch.testing.assert_close(acc_state[name], value, rtol=1e-5, atol=1e-7, msg=name)


def test_each_rank_takes_its_contiguous_slice_of_every_global_batch() -> None:
    from siamese.errors import ConfigError
    from siamese.training.distributed import Distributed, ShardedBatchSampler

    batches = [list(range(i, i + 6)) for i in range(0, 18, 6)]
    slices = [list(ShardedBatchSampler(batches, rank, 3)) for rank in range(3)]  # type: ignore[arg-type]
    assert slices[1] == [[2, 3], [8, 9], [14, 15]]
    assert [sum((s[b] for s in slices), []) for b in range(3)] == batches  # together: the global batches
    with pytest.raises(ConfigError, match="split evenly"):
        Distributed(0, 3, 0, "gloo").local_batch(8)
    assert Distributed.from_env(torch.device("cpu")) is None  # outside torchrun: a plain run

"""A few training steps of one method on a fixed global batch, run in one process or in each rank of
a `torchrun` job: what tests/training/test_distributed.py compares.

    python -m torch.distributed.run --nproc-per-node 2 tests/training/ddp_step.py METHOD OUT [--steps N]

Each rank takes its contiguous slice of the same global batches (as `ShardedBatchSampler` does)
and writes `OUT/rank<r>.pt`: the losses, every parameter's gradient after the first step, and the
method's state after the last one. The model has no BatchNorm (on a CPU, batch statistics are the
rank's own unless SyncBatchNorm runs, which needs CUDA), so one process on the global batch and
N processes on its slices compute the same step.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for `siamese`

from siamese.losses import get_loss  # noqa: E402
from siamese.training.distributed import Distributed  # noqa: E402
from siamese.training.methods import SupervisedMethod, get_method  # noqa: E402
from siamese.training.trainer import Trainer  # noqa: E402

GLOBAL_BATCH = 8
CLASSES = 4
SUPERVISED = {"margin": {}, "supcon": {}, "arcface": {"num_classes": CLASSES, "embedding_size": 6}}
SELF_SUPERVISED = {
    "simclr": {"projection_dim": 5, "hidden_dim": 7},
    "moco": {"projection_dim": 5, "hidden_dim": 7, "queue_size": 12, "momentum": 0.9, "momentum_end": 0.9},
    "swav": {"projection_dim": 5, "hidden_dim": 7, "prototypes": 6, "freeze_prototypes": 0, "queue_size": 0},
}
METHODS = [*SUPERVISED, *SELF_SUPERVISED]


class TinyEncoder(nn.Module):
    """(B, 1, 4, 4) -> (B, 6): an MLP with no BatchNorm, L2-normalised output."""

    embedding_dim = 6
    in_channels = 1
    normalize = True

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.body(x), dim=1)


def _no_batchnorm(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _no_batchnorm(child)
    return module


def build(method: str) -> nn.Module:
    """The method, its weights drawn from seed 0 (the same in every process)."""
    torch.manual_seed(0)
    encoder = TinyEncoder()
    if method in SUPERVISED:
        return SupervisedMethod(encoder, loss=get_loss(method, **SUPERVISED[method]))
    return _no_batchnorm(get_method(method, encoder, **SELF_SUPERVISED[method]))


def batches(method: str, steps: int) -> list[tuple[Any, ...]]:
    """`steps` global batches: labelled images (supervised: 2 per class, contiguous) or two views."""
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(steps):
        if method in SUPERVISED:
            labels = torch.arange(CLASSES).repeat_interleave(GLOBAL_BATCH // CLASSES)
            out.append((torch.randn(GLOBAL_BATCH, 1, 4, 4, generator=g), labels, None))
        else:
            out.append((torch.randn(GLOBAL_BATCH, 2, 1, 4, 4, generator=g), None, None))
    return out


def run(method: str, steps: int, distributed: Distributed | None) -> dict[str, Any]:
    """Train `steps` steps (SGD) on this process's share of each global batch."""
    model = build(method)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), distributed=distributed)
    trainer.total_steps = steps
    rank, world = (0, 1) if distributed is None else (distributed.rank, distributed.world_size)
    share = GLOBAL_BATCH // world
    losses, grads = [], {}
    for step, (images, labels, indices) in enumerate(batches(method, steps)):
        part = slice(rank * share, (rank + 1) * share)
        local = (images[part], None if labels is None else labels[part], indices)
        losses.append(float(trainer.step(local, train=True).loss))
        trainer.global_step += 1
        if step == 0:
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    del trainer  # its DistributedDataParallel goes before the process group does
    return {"losses": losses, "grads": grads, "state": state}


def pair_batches(count: int = 5) -> list[tuple[Any, ...]]:
    """Validation-like batches: 6 images, labels, and two (anchor, positive, negative) triplets each."""
    g = torch.Generator().manual_seed(2)
    out = []
    for _ in range(count):
        images, labels = torch.randn(6, 1, 4, 4, generator=g), torch.tensor([0, 0, 1, 1, 2, 2])
        out.append((images, labels, (torch.tensor([0, 2]), torch.tensor([1, 3]), torch.tensor([4, 5]))))
    return out


def validate(distributed: Distributed | None) -> dict[str, Any]:
    """Score `pair_batches` as validation does (every rank a share of the batches)."""
    from siamese.training.evaluation import score_pairs

    model = build("margin")
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), distributed=distributed)
    step, scored = trainer.step, []

    def counted(batch: Any, train: bool) -> Any:
        scored.append(1)
        return step(batch, train)

    trainer.step = counted  # type: ignore[method-assign]
    scores = score_pairs(trainer, pair_batches(), shared=True)
    return {
        "batches": len(scored),
        "loss": scores.loss,
        "distances": torch.from_numpy(scores.distances),
        "is_same": torch.from_numpy(scores.is_same),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("method", choices=[*METHODS, "validate"])
    p.add_argument("out", type=Path)
    p.add_argument("--steps", type=int, default=1)
    args = p.parse_args()
    distributed = Distributed.from_env(torch.device("cpu"))
    assert distributed is not None, "run me with torchrun"
    distributed.start(timeout_s=120)
    torch.manual_seed(100 + distributed.rank)  # ranks' own randomness must not matter
    result = validate(distributed) if args.method == "validate" else run(args.method, args.steps, distributed)
    torch.save(result, args.out / f"rank{distributed.rank}.pt")
    distributed.stop()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()

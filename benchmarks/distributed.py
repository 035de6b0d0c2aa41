"""Data-parallel training on this machine: images/s of one process against N processes started by
`torchrun`, and the share of each step spent communicating.

Every configuration trains the preset's model (the `face` preset by default: its encoder, loss and
input size) on random tensors of that size for `--steps` timed steps of the same global batch
(`--batch`), after warm-up steps; speed does not depend on the data or the weights.

- `1 process, T threads`: one process, torch intra-op threads T (`--threads`, default 1 and 2: on
  2 cores, one process with two threads against two processes with one each);
- `N processes`: `torchrun --nproc-per-node N` (gloo on the CPU, NCCL with `--device cuda`), one
  thread each, each on its slice of the global batch, gradients averaged by
  DistributedDataParallel, the loss over the gathered global batch;
- communication share: each rank also times its own slice without DDP and without gathers (the
  same arithmetic, no messages); `1 - alone / together` is the share of a step spent
  communicating or waiting for the other ranks.

    python benchmarks/distributed.py [--preset face] [--nproc 2] [--batch 64] [--steps 40] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import RESULTS_DIR, markdown_table, run_main, setup_logging, write_results

from siamese import names
from siamese.data import PRESETS
from siamese.training.builders import build_method, place_method
from siamese.training.config import build_train_config
from siamese.training.distributed import Distributed
from siamese.training.trainer import Trainer

NAME = "distributed"
SMOKE = {"steps": 3, "warmup": 1, "batch": 8}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="face", choices=names.PRESETS, help="the model and input size")
    p.add_argument("--batch", type=int, default=64, help="global batch (split over the processes)")
    p.add_argument("--steps", type=int, default=40, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--nproc", type=int, default=2, help="processes of the data-parallel configuration")
    p.add_argument("--threads", default="1,2", help="comma-separated threads of the 1-process runs")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--smoke", action="store_true", help="a tiny run: 3 steps of 8 images")
    p.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)  # a rank writes here
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="where <name>.json/.md go")
    return p


def make_trainer(args: argparse.Namespace, distributed: Distributed | None, device: torch.device) -> Trainer:
    torch.manual_seed(0)
    config = build_train_config(args.preset, root=".", batch_size=args.batch, device=str(device))
    preset = PRESETS[args.preset]
    method = place_method(build_method(config, preset.channels, num_classes=args.batch), config, device)
    return Trainer(
        method, torch.optim.AdamW(method.parameters(), lr=1e-4), device=device, distributed=distributed
    )


def batch_of(args: argparse.Namespace, share: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, None]:
    """`share` random images of the preset's size, labelled in pairs (every loss has positives)."""
    preset = PRESETS[args.preset]
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(share, preset.channels, *preset.image_size, generator=g)
    return images, torch.arange(share) // 2 + seed * share, None


def timed(trainer: Trainer, args: argparse.Namespace, share: int) -> list[float]:
    """Seconds per step, after the warm-up steps."""
    out = []
    for step in range(args.warmup + args.steps):
        batch = batch_of(args, share, step)
        start = time.perf_counter()
        trainer.step(batch, train=True)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            out.append(time.perf_counter() - start)
    return out


def worker(args: argparse.Namespace) -> None:
    """One process of a configuration (under torchrun, a rank): time its steps, rank 0 writes them."""
    device = torch.device(args.device)
    distributed = Distributed.from_env(device)
    if distributed is not None:
        distributed.start()
        device = distributed.device(device)
    world = 1 if distributed is None else distributed.world_size
    share = args.batch // world
    together = timed(make_trainer(args, distributed, device), args, share)
    alone = timed(make_trainer(args, None, device), args, share) if distributed is not None else together
    if distributed is not None:
        distributed.stop()
    if distributed is None or distributed.is_main:
        args.worker.write_text(
            json.dumps({"step_s": together, "alone_step_s": alone, "threads": torch.get_num_threads()})
        )


def launch(args: argparse.Namespace, nproc: int, threads: int, work: Path) -> dict[str, Any]:
    out = work / f"{nproc}x{threads}.json"
    script = [str(Path(__file__).resolve()), *sys.argv[1:], "--worker", str(out)]
    if nproc > 1:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(nproc),
            *script,
        ]
    else:
        command = [sys.executable, *script]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{nproc} x {threads} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    got = json.loads(out.read_text())
    step = statistics.median(got["step_s"])
    alone = statistics.median(got["alone_step_s"])
    return {
        "processes": nproc,
        "threads_per_process": threads,
        "step_ms": 1000 * step,
        "images_per_s": args.batch / step,
        "alone_step_ms": 1000 * alone,
        "communication_share": max(0.0, 1 - alone / step) if nproc > 1 else 0.0,
    }


def table_row(row: dict[str, Any], batch: int, base: float) -> list[Any]:
    share = f"{100 * row['communication_share']:.0f}%" if row["processes"] > 1 else "—"
    return [
        f"{row['processes']} x {row['threads_per_process']}",
        batch,
        f"{row['step_ms']:.1f}",
        f"{row['images_per_s']:.0f}",
        f"{row['images_per_s'] / base:.2f}x",
        share,
    ]


def main() -> None:
    args = parser().parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    if args.worker is not None:
        worker(args)
        return
    setup_logging()
    configs = [(1, int(t)) for t in args.threads.split(",") if t.strip()] + [(args.nproc, 1)]
    with tempfile.TemporaryDirectory(prefix="distributed_") as tmp:
        rows = [launch(args, n, t, Path(tmp)) for n, t in configs]
    base = rows[0]["images_per_s"]
    headers = [
        "processes x threads",
        "global batch",
        "step ms (median)",
        "images/s",
        "vs 1 x 1",
        "communicating",
    ]
    table = markdown_table(headers, [table_row(r, args.batch, base) for r in rows])
    title = f"### Data-parallel training: {args.preset} preset, {args.device}, global batch {args.batch}"
    protocol = {
        k: getattr(args, k) for k in ("preset", "batch", "steps", "warmup", "nproc", "threads", "device")
    }
    write_results(args.out, NAME, {"protocol": protocol, "rows": rows}, f"{title}\n\n{table}", args.smoke)


if __name__ == "__main__":
    run_main(main)

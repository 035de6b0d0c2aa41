"""Where `siamese embed`'s time goes: bare inference against the full path, over batch sizes, decoding
workers and torch threads.

- bare: the encoder's forward passes on images decoded and preprocessed beforehand, `(B, C, H, W)`
  tensors in memory (what the model alone costs);
- decode: decoding + the eval preprocessing alone, one image after another in one thread;
- full: `siamese.inference.write_embeddings` into a `.npy` (what `siamese embed` runs after loading the
  model): listing, decoding in a background thread (`--workers 0`) or DataLoader worker processes,
  preprocessing, forward passes, writing, the manifest. Its images/s is the one `siamese embed` prints.

The model is the preset's encoder (or `--encoder`) untrained: its speed does not depend on its
weights. It is saved as a checkpoint and loaded as `siamese embed` loads one. The images of DATA
(folders or lists, as `siamese embed` takes them) are cycled up to `--images`. Measurements take
turns for `--rounds` rounds and the median of each is kept.

    python benchmarks/embed_throughput.py ../shared/data/att_faces [--encoder resnet18] [--images 2000]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from common import RESULTS_DIR, markdown_table, run_main, setup_logging, write_results

from siamese import names
from siamese.data import PRESETS
from siamese.data.inputs import EmbeddingInput, list_inputs
from siamese.inference import EmbeddingModel, write_embeddings
from siamese.inference.embedding import load_image
from siamese.models.checkpoint import save_checkpoint
from siamese.models.twin import TwinNetwork
from siamese.training.builders import build_encoder, checkpoint_metadata
from siamese.training.config import build_train_config

logger = logging.getLogger("benchmarks.embed_throughput")

NAME = "embed_throughput"
SMOKE = {"images": 64, "rounds": 1}


def ints(text: str) -> list[int]:
    """`"64,256"` -> `[64, 256]`."""
    return [int(v) for v in text.split(",") if v.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", nargs="+", type=Path, help="image folders or lists of image paths (read-only)")
    p.add_argument("--preset", default="face", choices=names.PRESETS, help="preprocessing and encoder")
    p.add_argument("--encoder", default=None, help="another encoder than the preset's, e.g. resnet18")
    p.add_argument("--images", type=int, default=2000, help="images per measurement (cycled if fewer)")
    p.add_argument("--batch-sizes", type=ints, default=[64, 256], help="comma-separated")
    p.add_argument("--workers", type=ints, default=[0, 1, 2], help="comma-separated decoding workers")
    p.add_argument("--threads", type=ints, default=[1, 2], help="comma-separated torch intra-op threads")
    p.add_argument("--rounds", type=int, default=3, help="rounds of measurements (the median is kept)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0, help="seed of the untrained weights")
    p.add_argument("--smoke", action="store_true", help="a tiny run: 64 images, one round")
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR,
        help="where <name>.json/.md go (default: benchmarks/results/experiments/embed_throughput/)",
    )
    return p


def untrained_model(preset: str, encoder: str | None, folder: Path, device: str, seed: int) -> EmbeddingModel:
    """The preset's model with fresh weights, saved under `folder` and loaded like `siamese embed` does."""
    torch.manual_seed(seed)
    options = {} if encoder is None else {"encoder": encoder, "pretrained": False}
    config = build_train_config(preset, root=".", **options)
    data = argparse.Namespace(image_size=PRESETS[preset].image_size, channels=PRESETS[preset].channels)
    twin = TwinNetwork(build_encoder(config, data.channels), distance=config.verification_distance)
    stem = save_checkpoint(folder / "best", twin, checkpoint_metadata(config, data))
    return EmbeddingModel.from_checkpoint(stem, device=device)


def cycled_inputs(data: Sequence[Path], n: int) -> list[EmbeddingInput]:
    items = [item for root in data for item in list_inputs(root)]
    return (items * -(-n // len(items)))[:n]


class Rate(NamedTuple):
    """One measurement: wall-clock images/s, and CPU milliseconds per image (every thread, and the
    DataLoader worker processes), which other work on the machine disturbs much less."""

    images_per_s: float
    cpu_ms: float


def cpu_seconds() -> float:
    """CPU time of this process's threads and of its finished child processes."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def decode_all(model: EmbeddingModel, items: Sequence[EmbeddingInput]) -> tuple[torch.Tensor, Rate]:
    """The preprocessed images `(N, C, H, W)`, decoded one after another, and how fast that went."""
    start, cpu = time.perf_counter(), cpu_seconds()
    tensors = [model.transform(load_image(item.path, model.channels)) for item in items]
    rate = Rate(len(items) / (time.perf_counter() - start), 1e3 * (cpu_seconds() - cpu) / len(items))
    return torch.stack(tensors), rate


def bare_rate(model: EmbeddingModel, images: torch.Tensor, batch_size: int) -> Rate:
    """Forward passes alone over `images`."""
    encoder = model.encoder.eval()
    batches = [images[i : i + batch_size].to(model.device) for i in range(0, len(images), batch_size)]
    with torch.no_grad():
        encoder(batches[0])  # warm-up (allocator, kernels)
        start, cpu = time.perf_counter(), cpu_seconds()
        for batch in batches:
            encoder(batch).cpu()  # (B, D)
        wall = time.perf_counter() - start
    return Rate(len(images) / wall, 1e3 * (cpu_seconds() - cpu) / len(images))


def full_rate(
    model: EmbeddingModel, items: Sequence[EmbeddingInput], batch_size: int, workers: int, out: Path
) -> Rate:
    """`write_embeddings` into a fresh `.npy`; its images/s is the one `siamese embed` reports."""
    cpu = cpu_seconds()
    summary = write_embeddings(model, items, out, batch_size=batch_size, workers=workers, overwrite=True)
    assert summary.images_per_s is not None
    return Rate(summary.images_per_s, 1e3 * (cpu_seconds() - cpu) / len(items))


def with_threads(threads: int, measure: Callable[[], Rate]) -> Callable[[], Rate]:
    """`measure` run with `threads` torch intra-op threads."""

    def run() -> Rate:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return measure()
        finally:
            torch.set_num_threads(before)

    return run


def medians(measures: dict[str, Callable[[], Rate]], rounds: int) -> dict[str, Rate]:
    """Median of each measurement over `rounds` rounds, taking turns within a round."""
    rates: dict[str, list[Rate]] = {key: [] for key in measures}
    for r in range(rounds):
        for key, measure in measures.items():
            rates[key].append(measure())
            logger.info("round %d %s: %.1f images/s, %.2f CPU ms/image", r + 1, key, *rates[key][-1])
    return {
        key: Rate(*(statistics.median(column) for column in zip(*values, strict=True)))
        for key, values in rates.items()
    }


def key(kind: str, threads: int, batch: int, workers: int | None = None) -> str:
    return f"{kind} t{threads} b{batch}" + ("" if workers is None else f" w{workers}")


def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    model = untrained_model(args.preset, args.encoder, folder, args.device, args.seed)
    items = cycled_inputs(args.data, args.images)
    images, decode = decode_all(model, items)
    measures: dict[str, Callable[[], Rate]] = {}
    for t in args.threads:
        for b in args.batch_sizes:
            measures[key("bare", t, b)] = with_threads(t, lambda b=b: bare_rate(model, images, b))
            for w in args.workers:
                full = lambda b=b, w=w: full_rate(model, items, b, w, folder / "e.npy")  # noqa: E731
                measures[key("full", t, b, w)] = with_threads(t, full)
    full_rate(model, items, args.batch_sizes[0], 0, folder / "e.npy")  # warm-up: page cache, allocator
    rates = medians(measures, args.rounds)
    return {
        "encoder": model.info.encoder.get("name"),
        "image_size": list(images.shape[2:]),
        "channels": int(images.shape[1]),
        "parameters": sum(p.numel() for p in model.encoder.parameters()),
        "images": len(items),
        "decode_images_per_s": decode.images_per_s,
        "decode_cpu_ms_per_image": decode.cpu_ms,
        "embed_images_per_s": {k: r.images_per_s for k, r in rates.items()},
        "embed_cpu_ms_per_image": {k: r.cpu_ms for k, r in rates.items()},
    }


def table(args: argparse.Namespace, result: dict[str, Any]) -> str:
    rates, cpu = result["embed_images_per_s"], result["embed_cpu_ms_per_image"]

    def cell(k: str) -> str:
        return f"{rates[k]:.0f} / {cpu[k]:.2f}"

    rows = []
    for t in args.threads:
        for b in args.batch_sizes:
            rows.append([t, b, cell(key("bare", t, b)), *(cell(key("full", t, b, w)) for w in args.workers)])
    heads = ["torch threads", "batch", "bare inference", *(f"full, workers {w}" for w in args.workers)]
    encoder = args.encoder or f"{args.preset} preset's {result['encoder']}"
    size = "x".join(str(s) for s in result["image_size"])
    title = (
        f"### Embedding images/s, {encoder} ({result['parameters'] / 1e6:.2f} M parameters, "
        f"{result['channels']}x{size} input), {args.device}, {result['images']} images"
    )
    load = result["load_average_1min"]
    note = (
        "Each cell: wall-clock images/s / CPU ms per image (all threads and worker processes). "
        f"Decode + preprocessing alone, one thread: {result['decode_images_per_s']:.0f} images/s, "
        f"{result['decode_cpu_ms_per_image']:.2f} CPU ms per image. "
        "Full = `write_embeddings`, whose images/s `siamese embed` reports. "
        f"Median of {args.rounds} rounds; 1-minute load average {load['before']:.2f} before, "
        f"{load['after']:.2f} after, on {os.cpu_count()} CPUs."
    )
    return f"{title}\n\n{markdown_table(heads, rows)}\n\n{note}"


def main() -> None:
    args = parser().parse_args()
    setup_logging()
    if args.smoke:
        args.images, args.rounds = SMOKE["images"], SMOKE["rounds"]
    load_before = os.getloadavg()  # other work on the machine slows every measurement
    with tempfile.TemporaryDirectory(prefix="embed-throughput-") as tmp:
        result = measure(args, Path(tmp))
    result["load_average_1min"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    best = max(
        (k for k in result["embed_images_per_s"] if k.startswith("full")),
        key=result["embed_images_per_s"].__getitem__,
    )
    payload = {
        "protocol": {
            "data": [str(d) for d in args.data],
            "preset": args.preset,
            "encoder": args.encoder,
            "device": args.device,
            "batch_sizes": args.batch_sizes,
            "workers": args.workers,
            "threads": args.threads,
            "rounds": args.rounds,
            "seed": args.seed,
        },
        **result,
        "best_full": {"setting": best, "images_per_s": result["embed_images_per_s"][best]},
    }
    write_results(args.out, NAME, payload, table(args, result), args.smoke)


if __name__ == "__main__":
    run_main(main)

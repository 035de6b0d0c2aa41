"""Training and embedding throughput: our full pipeline against the bare encoder and recipe (a).

Training images/s are measured over `--steps` steps after `--warmup` steps, wall clock, for:

- our pipeline: the library's `Trainer.step` on batches from the real preset's training DataLoader
  (image decoding cache, sampling, augmentation, collation, mining, loss, backward, optimiser and
  learning-rate schedule), exactly as `siamese train` builds them (`prepare_data`, `build_method`);
- the bare encoder: the same encoder doing forward + backward + AdamW step on random tensors of the
  same batch shape (no data, no sampling, no loss beyond a mean of squares);
- recipe (a) (peers.py, pytorch/examples `siamese_network`): its own pair loader and BCE step on the
  same images, same batch size in pairs.

Embedding images/s: `siamese.inference.embed_files` (which collects `embed_all`; the results keep
that row name) over the dataset's image files (decoding and eval transform included) against bare
`encoder(x)` inference on random tensors of the same batch shape. Overhead % = how much longer an
image takes through the pipeline than through the bare encoder; the measurements take turns for
`--folds` rounds and the median of each is kept.

    python benchmarks/throughput.py ../shared/data/att_faces [--preset face] [--steps 60]
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from common import (
    EMBED_BATCH,
    base_parser,
    embed_paths,
    input_shape,
    markdown_table,
    parse_args,
    parse_overrides,
    run_main,
    write_results,
)
from peers import PairClassifier, PeerSetup, pair_loader, pair_step

from siamese import names
from siamese.data import get_transform
from siamese.training import (
    build_encoder,
    build_method,
    build_optimizer,
    place_method,
    prepare_data,
    seed_everything,
)
from siamese.training.config import build_train_config
from siamese.training.trainer import Trainer

logger = logging.getLogger("benchmarks.throughput")

NAME = "throughput"
SMOKE = {"steps": 2, "warmup": 1, "embed_images": 64}
ROUNDS_HELP = "rounds of measurements, taking turns (the median is reported); default 5"
BUDGET_HELP = "cap in seconds on each timed training measurement (fewer steps if reached)"


def batches_forever(loader: Any) -> Iterator[Any]:
    """Batches of successive epochs (calling `set_epoch` like `Trainer.fit` does)."""
    epoch = 0
    while True:
        for obj in (loader.dataset, getattr(loader, "batch_sampler", None)):
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)
        yield from loader
        epoch += 1


def images_per_second(step: Callable[[], int], steps: int, warmup: int, budget_s: float | None) -> float:
    """Run `warmup` untimed steps, then time up to `steps` steps (or `budget_s` seconds); images/s."""
    for _ in range(warmup):
        step()
    images, start = 0, time.perf_counter()
    for _ in range(steps):
        images += step()
        if budget_s and time.perf_counter() - start >= budget_s:
            break
    return images / (time.perf_counter() - start)


def interleaved_medians(measures: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Median rate of each measurement over `repeats` rounds, the measurements taking turns in each
    round so that a slow spell of the machine hits all of them, not one."""
    rates: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(repeats):
        for name, make in measures.items():
            rates[name].append(make())
    for name, values in rates.items():
        logger.info("%s: %s images/s", name, ", ".join(f"{r:.1f}" for r in values))
    return {name: statistics.median(values) for name, values in rates.items()}


def our_training_step(config: Any, device: str) -> tuple[Callable[[], int], Any, Any]:
    """A step closure over our real pipeline; also returns the prepared data and the model."""
    data = prepare_data(config)
    model = build_method(config, data.channels, data.num_classes)
    model = place_method(model, config, torch.device(device))
    optimizer, scheduler = build_optimizer(config, model, len(data.train_loader))
    trainer = Trainer(model, optimizer, scheduler, device=device)
    batches = batches_forever(data.train_loader)
    model.train()

    def step() -> int:
        batch = next(batches)
        trainer.step(batch, train=True)
        return batch[0].shape[0]

    return step, data, model


def bare_training_step(config: Any, channels: int, shape: tuple[int, ...], device: str) -> Callable[[], int]:
    """Forward + backward + AdamW step of a fresh copy of our encoder on random tensors of `shape`,
    placed as training places it (`place_method`: layout and precision)."""
    encoder = place_method(build_encoder(config, channels), config, torch.device(device)).train()
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=config.optim.lr)
    x = torch.randn(shape, device=device)  # (N, C, H, W)

    def step() -> int:
        loss = encoder(x).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return shape[0]

    return step


def recipe_a_step(config: Any, data: Any, device: str, seed: int) -> Callable[[], int]:
    """Recipe (a)'s BCE step on its own pair loader over our training identities."""
    size, channels = input_shape(config)
    setup = PeerSetup(
        data.index.subset(data.split.train),
        config.data.preset,
        size,
        channels,
        config.optim.batch_size,
        seed,
        device,
        config.data.forgery_fraction,
    )
    torch.manual_seed(seed)
    model = PairClassifier().to(device).train()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    batches = batches_forever(pair_loader(setup))
    return lambda: pair_step(model, optimizer, next(batches), device)


def embedding_rates(args: Any, config: Any, data: Any, model: Any, n_images: int) -> dict[str, float]:
    """embed_all over real files vs bare inference on random tensors, images/s."""
    size, channels = input_shape(config)
    files = [r.path for r in data.index.records]
    paths = (files * -(-n_images // len(files)))[:n_images]  # cycled when the dataset is smaller
    transform = get_transform(config.data.preset, False, size, channels)
    encoder = model.encoder.eval()

    def pipeline() -> float:
        start = time.perf_counter()
        embed_paths(encoder, paths, transform, channels, args.device)
        return len(paths) / (time.perf_counter() - start)

    x = torch.randn((EMBED_BATCH, channels, *size), device=args.device)  # (B, C, H, W)

    @torch.no_grad()
    def bare() -> float:
        start, done = time.perf_counter(), 0
        while done < len(paths):
            encoder(x)
            done += EMBED_BATCH
        return done / (time.perf_counter() - start)

    pipeline()  # warm-up (page cache, allocator)
    rates: dict[str, float] = interleaved_medians({"embed_all": pipeline, "bare_inference": bare}, args.folds)
    return {**rates, "images": len(paths)}


def overhead(pipeline: float, bare: float) -> float:
    """Extra time per image of the pipeline over the bare encoder, as a fraction (0.25 = 25% slower)."""
    return bare / pipeline - 1.0


def measure(args: Any) -> dict[str, Any]:
    """All rates of one configuration."""
    opts = SMOKE if args.smoke else {}
    steps, warmup = opts.get("steps", args.steps), opts.get("warmup", args.warmup)
    overrides = {"seed": args.seed, "device": args.device, **parse_overrides(args.overrides)}
    config = build_train_config(args.preset, root=str(args.data_root), **overrides)
    seed_everything(args.seed)
    ours, data, model = our_training_step(config, args.device)
    images, _, _ = next(iter(data.train_loader))
    shape = tuple(images.shape)
    train = interleaved_medians(
        {
            "ours": lambda: images_per_second(ours, steps, warmup, args.budget),
            "bare_encoder": lambda: images_per_second(
                bare_training_step(config, data.channels, shape, args.device), steps, warmup, args.budget
            ),
            "recipe_a": lambda: images_per_second(
                recipe_a_step(config, data, args.device, args.seed), steps, warmup, args.budget
            ),
        },
        args.folds,
    )
    embed = embedding_rates(args, config, data, model, opts.get("embed_images", args.embed_images))
    return {
        "config": config.to_dict(),
        "batch_shape": list(shape),
        "steps": steps,
        "warmup": warmup,
        "train_images_per_s": train,
        "embed_images_per_s": embed,
        "train_overhead_vs_bare": overhead(train["ours"], train["bare_encoder"]),
        "train_ratio_vs_recipe_a": train["ours"] / train["recipe_a"],
        "embed_overhead_vs_bare": overhead(embed["embed_all"], embed["bare_inference"]),
    }


def table(r: dict[str, Any], preset: str) -> str:
    """Markdown table of the rates, overheads and ratio."""
    t, e = r["train_images_per_s"], r["embed_images_per_s"]
    rows = [
        [
            "train",
            "siamese pipeline (Trainer + DataLoader)",
            f"{t['ours']:.1f}",
            f"{100 * r['train_overhead_vs_bare']:+.1f}% vs bare",
        ],
        ["train", "bare encoder fwd+bwd+step (random tensors)", f"{t['bare_encoder']:.1f}", "reference"],
        [
            "train",
            "recipe (a) pytorch/examples (resnet18 pairs, BCE)",
            f"{t['recipe_a']:.1f}",
            f"ours = {r['train_ratio_vs_recipe_a']:.2f}x",
        ],
        [
            "embed",
            "embed_all (files, decode, eval transform)",
            f"{e['embed_all']:.1f}",
            f"{100 * r['embed_overhead_vs_bare']:+.1f}% vs bare",
        ],
        ["embed", "bare encoder inference (random tensors)", f"{e['bare_inference']:.1f}", "reference"],
    ]
    title = f"Throughput, preset {preset}, batch shape {tuple(r['batch_shape'])}, CPU"
    return f"### {title}\n\n" + markdown_table(["phase", "what", "images/s", "overhead / ratio"], rows)


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], 5, ROUNDS_HELP, BUDGET_HELP, peers=False, work_dir=False)
    parser.add_argument("--preset", default="face", choices=names.PRESETS, help="preset of the data root")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each measurement")
    parser.add_argument(
        "--embed-images",
        type=int,
        default=2000,
        help="images embedded per measurement (files cycled if fewer)",
    )
    args = parse_args(parser, root="")
    if args.smoke:
        args.folds = 1
    result = measure(args)
    payload = {"preset": args.preset, "data_root": Path(args.data_root), "repeats": args.folds, **result}
    write_results(args.out, NAME, payload, table(result, args.preset), args.smoke)


if __name__ == "__main__":
    run_main(main)

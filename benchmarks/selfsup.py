"""Self-supervised pretraining on Omniglot without labels: ours vs lightly's same method, equal wall time.

Every method (simclr, moco, byol, swav) pretrains on the images of `omniglot/background` (labels
never read) for each wall-clock budget, twice: with `siamese pretrain` (the `omniglot` preset's
pretraining defaults, the budget as `max_minutes`) and with lightly's implementation of the same
method (`benchmarks/selfsup_peers.py`: same encoder, views, optimiser and hyper-parameters; the budget
checked after every step). Each encoder is then scored, frozen:

- 20-way one-shot accuracy on the 20 official runs (`omniglot/one_shot_runs`, evaluation
  alphabets never seen): 1-NN with cosine distance, as `siamese probe --oneshot-runs`;
- weighted k-NN accuracy on the background characters (labels used only for scoring: per
  character half the drawers are the memory, half the queries), as `siamese probe`.

Beside them: the supervised `omniglot` preset trained for the same budget (the ceiling), raw
pixels and a randomly initialised encoder (the floors), and the images per second of each run.
The default methods are the four classic ones; simsiam, barlow and vicreg (and their lightly
peers) run with `--methods`.

`--step-rates STEPS` measures per-image speed like for like instead: ours (`Trainer.step`, at its
default precision and at `--precision fp32`) and lightly's same method time STEPS training steps
each on the same pre-loaded batches of views (data loading, per-epoch monitoring and setup out of
all), taking turns for 3 rounds (median kept): `results/canonical/selfsup_omniglot_steps.{json,md}`.

    python benchmarks/selfsup.py ../shared/data/omniglot --budget 180 [--methods simclr,byol] [--smoke]
    python benchmarks/selfsup.py ../shared/data/omniglot --step-rates 20
"""

from __future__ import annotations

import functools
import itertools
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import (
    ModelScorer,
    base_parser,
    checked_overrides,
    embed_paths,
    markdown_table,
    parse_args,
    run_main,
    train_ours,
    write_protocol_results,
)
from omniglot import character_split
from selfsup_peers import lightly_step, lightly_trainer, pretrain_lightly
from throughput import batches_forever, images_per_second, interleaved_medians

from siamese import names
from siamese.data import get_transform, list_inputs, list_oneshot_runs
from siamese.data.images import open_image
from siamese.evaluation import knn_accuracy
from siamese.evaluation.probe import stratified_split
from siamese.inference import EmbeddingModel
from siamese.inference.probe import labelled_images, one_shot_runs
from siamese.training.builders import build_encoder, build_method, build_optimizer, place_method
from siamese.training.config import TrainConfig, build_train_config
from siamese.training.loaders import input_geometry
from siamese.training.pretrain import prepare_views, pretrain
from siamese.training.trainer import Trainer

logger = logging.getLogger("benchmarks.selfsup")

NAME = "selfsup_omniglot"
PRESET = "omniglot"
SMOKE_EVERY_CHARACTER = 60  # 5 characters, 100 images
SMOKE_RUNS = 2
SMOKE_BUDGET_S = 4.0
DEFAULT_BUDGET_S = 180.0
# Seconds per epoch of the 4,840 background images at the preset's 28x28 (batch 256; byol 64), the
# per-epoch monitoring included, measured on this machine (2-core CPU) at the default precision with
# the batched view augmentation (`siamese pretrain --epochs 4` minus `--epochs 1`, over 3): the
# budget's nominal epochs (lr and momentum schedules) follow from it; `max_minutes` still caps the
# run. With the per-image Pillow views (`--set batched_views=false`) they were simclr 7.5, moco 7.2,
# byol 11 and swav 9 s.
SECONDS_PER_EPOCH = {"simclr": 5.1, "moco": 3.9, "byol": 9.4, "swav": 6.1}  # others: 8 s assumed
STEP_WARMUP, STEP_ROUNDS, SMOKE_STEPS = 3, 3, 2
CLASSIC = ("simclr", "moco", "byol", "swav")  # the default --methods; simsiam, barlow, vicreg on request


class Frozen:
    """Scores a frozen feature extractor: one-shot runs and background k-NN."""

    def __init__(self, features: Any, runs: list[Path], paths: list[str], labels: np.ndarray) -> None:
        self.features, self.runs, self.paths, self.labels = features, runs, paths, labels

    def scores(self) -> dict[str, Any]:
        per_run = [r["accuracy"] for r in one_shot_runs(self.features, self.runs, "cosine")]
        emb = self.features(self.paths)
        memory, queries = stratified_split(self.labels, 0.5, seed=0)
        knn = knn_accuracy(emb[memory], self.labels[memory], emb[queries], self.labels[queries])
        return {"one_shot": float(np.mean(per_run)), "one_shot_runs": per_run, "knn": knn}


def encoder_features(encoder: torch.nn.Module, config: TrainConfig, device: str) -> Any:
    """Embeddings of the encoder with the evaluation transform of the config's input geometry."""
    channels, size = input_geometry(config)
    transform = get_transform(config.data.preset, False, size, channels)
    return lambda paths: embed_paths(encoder, paths, transform, channels, device)


def pixel_features(config: TrainConfig) -> Any:
    """Raw pixels after the evaluation transform, flattened."""
    channels, size = input_geometry(config)
    transform = get_transform(config.data.preset, False, size, channels)
    return lambda paths: np.stack([transform(open_image(p, channels)).flatten().numpy() for p in paths])


def pretrain_config(args: Any, method: str, budget_s: float, out: Path) -> TrainConfig:
    """Our pretraining config of `method` for a budget: the preset's, nominal epochs from the budget."""
    epochs = max(1, round(budget_s / SECONDS_PER_EPOCH.get(method, 8.0)))
    options = {"epochs": epochs, "max_minutes": budget_s / 60, "seed": args.seed, "device": args.device}
    options.update(args.checked)
    if args.smoke:
        options.update({"epochs": 1, "batch_size": 16})
    return build_train_config(PRESET, root=str(args.pretrain_root), method=method, out=str(out), **options)


def run_ours(args: Any, method: str, budget_s: float, frozen_data: dict[str, Any]) -> dict[str, Any]:
    out = args.work_dir / NAME / f"{method}-{int(budget_s)}s"
    shutil.rmtree(out, ignore_errors=True)
    config = pretrain_config(args, method, budget_s, out)
    start = time.perf_counter()
    summary = pretrain(config)
    seconds = time.perf_counter() - start
    model = ModelScorer(EmbeddingModel.from_checkpoint(out, device=args.device))
    scores = Frozen(model.features, **frozen_data).scores()
    images = summary["images"] * summary["epochs"]
    return {"seconds": seconds, "epochs": summary["epochs"], "images_per_s": images / seconds, **scores}


def run_peer(args: Any, method: str, budget_s: float, frozen_data: dict[str, Any]) -> dict[str, Any]:
    config = pretrain_config(args, method, budget_s, args.work_dir / NAME / "peer")
    torch.manual_seed(config.seed)
    loader = prepare_views(config).train_loader
    encoder = build_encoder(config, config.data.channels or 1).to(args.device)
    stats = pretrain_lightly(config, encoder, loader, budget_s, args.device)
    scores = Frozen(encoder_features(encoder, config, args.device), **frozen_data).scores()
    return {**stats, **scores}


def run_ceiling(args: Any, budget_s: float, frozen_data: dict[str, Any]) -> dict[str, Any]:
    """The supervised preset (labels used) for the same budget."""
    characters = sorted({x.identity for x in list_inputs(args.data_root / "background")})
    split = character_split(characters, args.seed)
    overrides = {"max_minutes": budget_s / 60, "seed": args.seed}
    if args.smoke:
        overrides.update({"epochs": 1, "samples_per_epoch": 64, "eval_pairs": 16})
    run_dir = args.work_dir / NAME / f"supervised-{int(budget_s)}s"
    ours = train_ours(PRESET, split, run_dir, overrides, args.device, root=str(args.data_root / "background"))
    features = lambda paths: ours.scorer.features(paths)  # noqa: E731
    return {"seconds": ours.train_time_s, **Frozen(features, **frozen_data).scores()}


def background_sample(args: Any) -> tuple[list[str], np.ndarray]:
    """The background images (a spread-out few with `--smoke`) and their character labels.

    Sets `args.pretrain_root`: the background folder, or with `--smoke` a list file of the few.
    """
    paths, labels = labelled_images(args.data_root / "background")
    args.pretrain_root = args.data_root / "background"
    if args.smoke:
        keep = np.isin(labels, np.unique(labels)[::SMOKE_EVERY_CHARACTER])
        paths, labels = [p for p, k in zip(paths, keep, strict=True) if k], labels[keep]
        args.pretrain_root = args.work_dir / NAME / "smoke_images.txt"
        args.pretrain_root.parent.mkdir(parents=True, exist_ok=True)
        args.pretrain_root.write_text("".join(f"{p}\n" for p in paths))
    return paths, labels


def step_rates(args: Any, method: str, steps: int) -> dict[str, float]:
    """Training-step images/s of ours (`Trainer.step`: loss, backward, optimiser, schedule and the
    method's after-step updates; placed as `siamese pretrain` places it, at the config's precision
    and again at fp32) and lightly's same method on the SAME pre-loaded batches of views, so data
    loading, monitoring and setup are out of all; they take turns for `STEP_ROUNDS` rounds and the
    median of each is kept (`throughput.interleaved_medians`)."""
    config = pretrain_config(args, method, DEFAULT_BUDGET_S, args.work_dir / NAME / "steps")
    torch.manual_seed(config.seed)
    loader = prepare_views(config).train_loader
    batches = list(itertools.islice(batches_forever(loader), STEP_WARMUP + steps))
    channels = config.data.channels or 1
    device = torch.device(args.device)
    feed = {name: itertools.cycle(batches) for name in ("ours", "ours_fp32", "lightly")}

    def our_step(config: TrainConfig, name: str) -> Callable[[], int]:
        method = place_method(build_method(config, channels), config, device).train()
        optimizer, scheduler = build_optimizer(config, method, len(loader))
        trainer = Trainer(method, optimizer, scheduler, device=device)

        def step() -> int:
            batch = next(feed[name])
            trainer.step(batch, train=True)
            views = batch[0]
            return len(views[0]) if isinstance(views, list) else views.shape[0]

        return step

    peer, peer_opt = lightly_trainer(config, build_encoder(config, channels).to(args.device), args.device)
    total = config.optim.epochs * len(loader)
    done = {"lightly": 0}

    def peer_step() -> int:
        n, _ = lightly_step(peer, peer_opt, next(feed["lightly"]), done["lightly"], total, args.device)
        done["lightly"] += 1
        return n

    steppers = {
        "ours": our_step(config, "ours"),
        "ours_fp32": our_step(replace(config, precision="fp32"), "ours_fp32"),
        "lightly": peer_step,
    }
    measures = {
        name: functools.partial(images_per_second, step, steps, STEP_WARMUP, None)
        for name, step in steppers.items()
    }
    return interleaved_medians(measures, STEP_ROUNDS)


def steps_table(rates: dict[str, dict[str, float]], steps: int) -> str:
    """Markdown: training-step images/s per method, ours and lightly's."""
    rows = [
        [
            m,
            f"{r['ours']:.0f}",
            f"{r['ours_fp32']:.0f}",
            f"{r['lightly']:.0f}",
            f"{r['ours'] / r['lightly']:.2f}",
            f"{r['ours_fp32'] / r['lightly']:.2f}",
        ]
        for m, r in rates.items()
    ]
    title = (
        f"### Omniglot pretraining steps: images/s on the same pre-loaded batches ({steps} steps per "
        f"measurement, median of {STEP_ROUNDS} rounds taking turns; data loading excluded from all). "
        "siamese = its default (`--precision auto`: bfloat16 backbone on this CPU, channels-last "
        "weights); fp32 = `--precision fp32` (channels-last weights only); lightly in float32"
    )
    headers = ["method", "siamese", "siamese fp32", "lightly", "ratio", "ratio fp32"]
    return "\n\n".join([title, markdown_table(headers, rows)])


def table(results: dict[str, Any], budget_s: float) -> str:
    rows = []
    for method, entry in results["methods"].items():
        for who in ("ours", "lightly"):
            r = entry.get(who)
            if r is not None:
                rows.append(
                    [
                        f"{method} ({'siamese' if who == 'ours' else 'lightly'})",
                        f"{100 * r['one_shot']:.2f}",
                        f"{100 * r['knn']:.2f}",
                        f"{r['images_per_s']:.0f}",
                        f"{r['seconds']:.0f}",
                    ]
                )
    for name, r in results["references"].items():
        rows.append(
            [name, f"{100 * r['one_shot']:.2f}", f"{100 * r['knn']:.2f}", "", f"{r.get('seconds', 0):.0f}"]
        )
    heads = ["encoder", "20-way one-shot %", "background k-NN %", "images/s", "train s"]
    title = f"### Omniglot without labels: {int(budget_s)} s of pretraining per method (2-core CPU)"
    note = (
        "lightly trains for the wall time ours took (our setup and per-epoch monitoring included); "
        "images/s: ours over that whole time, lightly over its training steps only."
    )
    return "\n\n".join([title, markdown_table(heads, rows), note])


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], 1, budget_help="pretraining seconds per method", peers=False)
    parser.add_argument(
        "--methods",
        default=",".join(CLASSIC),
        help=f"comma-separated methods of {', '.join(names.SSL_METHODS)} (default: {', '.join(CLASSIC)})",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip lightly's implementations")
    parser.add_argument(
        "--step-rates",
        type=int,
        default=0,
        metavar="STEPS",
        help="instead of pretraining: time STEPS training steps per method, ours and lightly's, "
        "on the same pre-loaded batches (results/canonical/selfsup_omniglot_steps.*)",
    )
    parser.add_argument("--no-references", action="store_true", help="skip the supervised ceiling and floors")
    args = parse_args(parser, "Omniglot", ("background", "one_shot_runs"), PRESET, root="background")
    paths, labels = background_sample(args)
    args.checked = checked_overrides(args, PRESET, root=str(args.data_root / "background"), method="simclr")
    budget = SMOKE_BUDGET_S if args.smoke else (args.budget or DEFAULT_BUDGET_S)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(names.SSL_METHODS))
    if unknown:
        sys.exit(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(names.SSL_METHODS)}")
    if args.step_rates:
        steps = SMOKE_STEPS if args.smoke else args.step_rates
        rates = {m: step_rates(args, m, steps) for m in methods}
        protocol = {"steps": steps, "warmup": STEP_WARMUP, "rounds": STEP_ROUNDS}
        name = f"{NAME}_steps"
        write_protocol_results(args, name, protocol, {}, steps_table(rates, steps), rates=rates)
        return
    runs = list_oneshot_runs(args.data_root / "one_shot_runs")[: SMOKE_RUNS if args.smoke else None]
    frozen_data = {"runs": runs, "paths": paths, "labels": labels}
    results: dict[str, Any] = {"methods": {}, "references": {}}
    for method in methods:
        entry = results["methods"][method] = {"ours": run_ours(args, method, budget, frozen_data)}
        if not args.no_peer:  # the same wall time as ours took, setup and monitoring included
            entry["lightly"] = run_peer(args, method, entry["ours"]["seconds"], frozen_data)
        logger.info("%s: %s", method, {k: v.get("one_shot") for k, v in entry.items()})
    if not args.no_references:
        config = pretrain_config(args, "simclr", budget, args.work_dir / NAME / "floor")
        torch.manual_seed(args.seed)
        random_encoder = build_encoder(config, 1).to(args.device)
        results["references"] = {
            "supervised omniglot preset (labels)": run_ceiling(args, budget, frozen_data),
            "random encoder": Frozen(
                encoder_features(random_encoder, config, args.device), **frozen_data
            ).scores(),
            "raw pixels": Frozen(pixel_features(config), **frozen_data).scores(),
        }
    protocol = {"budget_s": budget, "one_shot_runs": len(runs), "background_images": len(paths)}
    name = NAME if args.smoke else f"{NAME}_{int(budget)}s"
    write_protocol_results(args, name, protocol, {}, table(results, budget), results=results)


if __name__ == "__main__":
    run_main(main)

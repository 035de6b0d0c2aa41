"""Omniglot: train on the background characters, score the 20 official 20-way one-shot runs.

Training uses `omniglot/background/<alphabet>/<character>/` (preset "omniglot"; identity =
alphabet/character). A seeded 10% of the characters is held out as validation (best epoch and
threshold) and 5% as the library's own test split (its verification EER on unseen background
characters is reported too); the rest train. Evaluation: the 20 runs of Lake et al. (2015) in
`omniglot/one_shot_runs/runNN/` — for each of the 20 queries pick the nearest of the 20 support images
(the model's distance); `class_labels.txt` gives the truth. Reported: accuracy per run and the mean.
Note the runs' characters come from the evaluation alphabets, which are never trained on.

The peer (`--peers pml`, the default; `none` to skip) is the plain pytorch-metric-learning recipe
of `peers.py` (resnet18, ContrastiveLoss + MultiSimilarityMiner, MPerClassSampler m=4, Adam 1e-3) on
the same training characters, image size and transforms (no rotation classes: they are our recipe's),
for our measured training time, scored on the same runs by 1-NN on its normalised embeddings.

    python benchmarks/omniglot.py ../shared/data/omniglot [--set epochs=20] [--peers none] [--smoke]
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    EmbeddingScorer,
    OursResult,
    base_parser,
    fmt,
    fmt_mean_std,
    input_shape,
    markdown_table,
    mean_std,
    parse_args,
    parse_overrides,
    peer_names,
    run_main,
    smoke_sample,
    train_ours,
    write_protocol_results,
)
from peers import PEERS, PeerSetup, train_peer

from siamese.data import ImageIndex, Split, list_oneshot_runs, read_oneshot_run, scan_folder
from siamese.evaluation import n_way_one_shot_accuracy

logger = logging.getLogger("benchmarks.omniglot")

NAME = "omniglot"
PRESET = "omniglot"
VAL_FRACTION = 0.10
TEST_FRACTION = 0.05
SMOKE_CHARACTERS = 24  # 20 train, 2 validation, 2 held out (a 64-image batch of 4 per class needs 16)
SMOKE_RUNS = 2
SMOKE_OPTIONS = {"epochs": 1, "samples_per_epoch": 128, "eval_pairs": 32}
TRAININGS_HELP = "independent trainings (seed and validation characters vary); default 1"
BUDGET_HELP = "our training time budget in seconds (sets max_minutes); default: the preset's epochs"
SMOKE_PEER = {"budget": 4.0, "batch": 8}
LABELS = {"ours": "siamese (ours)", **PEERS}


def character_split(characters: list[str], seed: int) -> Split:
    """Seeded train / validation / held-out split of the background characters."""
    order = np.random.default_rng(seed).permutation(len(characters))
    n_val = max(2, round(VAL_FRACTION * len(characters)))
    n_test = max(2, round(TEST_FRACTION * len(characters)))
    pick = [characters[i] for i in order]
    return Split(train=pick[n_val + n_test :], val=pick[:n_val], test=pick[n_val : n_val + n_test])


def one_shot(scorer: EmbeddingScorer, run_dir: Path) -> dict[str, Any]:
    """20-way one-shot accuracy of one official run."""
    run = read_oneshot_run(run_dir)
    support = scorer.features(run.support_paths)  # (20, D)
    queries = scorer.features(run.query_paths)  # (20, D)
    acc = n_way_one_shot_accuracy(support, run.support_labels, queries, run.query_labels, scorer.distance)
    return {"run": run.name, "n_way": run.n_way, "queries": len(run.query_paths), "accuracy": acc}


def one_shot_runs(scorer: EmbeddingScorer, runs: list[Path]) -> dict[str, Any]:
    """Every official run's accuracy and their mean."""
    per_run = [one_shot(scorer, d) for d in runs]
    return {"runs": per_run, "mean_accuracy": float(np.mean([x["accuracy"] for x in per_run]))}


def run_peers(
    args: Any, index: ImageIndex, runs: list[Path], split: Split, ours: OursResult, r: int
) -> dict[str, Any]:
    """Each `--peers` recipe on the training characters for our measured time, on the same runs."""
    size, channels = input_shape(ours.config)
    setup = PeerSetup(
        index=index.subset(split.train),
        preset=PRESET,
        image_size=size,
        channels=channels,
        batch_size=SMOKE_PEER["batch"] if args.smoke else ours.config.optim.batch_size,
        seed=args.seed + r,
        device=args.device,
    )
    budget = SMOKE_PEER["budget"] if args.smoke else ours.train_time_s
    out = {}
    for name in peer_names(args.peers):
        result = train_peer(name, setup, budget)
        out[name] = {**result.stats(), **one_shot_runs(result.scorer, runs)}
    return out


def run_training(
    args: Any, index: ImageIndex, characters: list[str], runs: list[Path], r: int
) -> dict[str, Any]:
    """Train once (seed `args.seed + r`), then the peers, and score every one-shot run."""
    split = character_split(characters, args.seed + r)
    logger.info("training %d: %d/%d/%d characters", r + 1, len(split.train), len(split.val), len(split.test))
    overrides = {**(SMOKE_OPTIONS if args.smoke else {}), "seed": args.seed + r}
    if args.budget:
        overrides["max_minutes"] = args.budget / 60
    overrides.update(parse_overrides(args.overrides))
    run_dir = args.work_dir / NAME / f"train{r + 1}"
    ours = train_ours(PRESET, split, run_dir, overrides, args.device, root=str(args.data_root / "background"))
    return {
        "training": r + 1,
        "split_sizes": {k: len(v) for k, v in split.to_dict().items()},
        "config": ours.config.to_dict(),
        "train_time_s": ours.train_time_s,
        "best_epoch": ours.checkpoint["epoch"],
        "val_eer": ours.summary["val_eer"],
        "heldout_background": ours.summary["test"],
        **one_shot_runs(ours.scorer, runs),
        "peers": run_peers(args, index, runs, split, ours, r),
    }


def summary_row(training: dict[str, Any]) -> dict[str, float]:
    """The numbers of one training that the summary averages (a peer's as `<peer>_<key>`)."""
    row = {
        "mean_accuracy": training["mean_accuracy"],
        "heldout_eer": training["heldout_background"]["eer"],
        "train_time_s": training["train_time_s"],
    }
    for name, peer in training["peers"].items():
        row[f"{name}_mean_accuracy"] = peer["mean_accuracy"]
        row[f"{name}_train_time_s"] = peer["train_time_s"]
    return row


def method_rows(trainings: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(method, its per-training results with `runs` and `mean_accuracy`): ours, then each peer."""
    out = [("ours", trainings)]
    return out + [(name, [t["peers"][name] for t in trainings]) for name in trainings[0]["peers"]]


def tables(trainings: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The summary line per method and the per-run accuracy (one column per method and training)."""
    methods = method_rows(trainings)
    heads = ["run", *(f"{m} % (training {t['training']})" for m, _ in methods for t in trainings)]
    rows = [
        [run["run"], *(fmt(res["runs"][i]["accuracy"]) for _, results in methods for res in results)]
        for i, run in enumerate(trainings[0]["runs"])
    ]
    means = (f"**{fmt(res['mean_accuracy'])}**" for _, results in methods for res in results)
    rows.append(["**mean**", *means])
    n = len(trainings[0]["runs"])
    lines = [
        [
            "siamese (ours)",
            fmt_mean_std(summary["mean_accuracy"]),
            fmt_mean_std(summary["heldout_eer"]),
            fmt_mean_std(summary["train_time_s"], "s"),
        ]
    ]
    lines += [
        [
            LABELS[m],
            fmt_mean_std(summary[f"{m}_mean_accuracy"]),
            "-",
            fmt_mean_std(summary[f"{m}_train_time_s"], "s"),
        ]
        for m, _ in methods[1:]
    ]
    heads_summary = ["method", "20-way one-shot accuracy %", "held-out background EER %", "train s"]
    head = markdown_table(heads_summary, lines)
    title = f"Omniglot: {n} official 20-way one-shot runs, mean ± std over {len(trainings)} training(s)"
    return "\n\n".join([f"### {title}", head, markdown_table(heads, rows)])


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], 1, TRAININGS_HELP, BUDGET_HELP, peers=False)
    parser.add_argument("--peers", default="pml", help="peer recipes at our training time: pml or none")
    args = parse_args(parser, "Omniglot", ("background", "one_shot_runs"), PRESET, root="background")
    if "pairbce" in peer_names(args.peers):
        sys.exit("--peers: the pairbce peer scores pairs, not 1-NN one-shot runs; choose pml or none")
    index = scan_folder(args.data_root / "background")
    characters = smoke_sample(list(index.identities), SMOKE_CHARACTERS, args)
    runs = list_oneshot_runs(args.data_root / "one_shot_runs")[: SMOKE_RUNS if args.smoke else None]
    n = 1 if args.smoke else max(args.folds, 1)
    trainings = [run_training(args, index, characters, runs, r) for r in range(n)]
    rows = [summary_row(t) for t in trainings]
    summary = mean_std(rows, list(rows[0]))
    protocol = {
        "trainings": n,
        "one_shot_runs": len(runs),
        "characters": len(characters),
        "val_fraction": VAL_FRACTION,
        "heldout_fraction": TEST_FRACTION,
    }
    write_protocol_results(args, NAME, protocol, summary, tables(trainings, summary), trainings=trainings)


if __name__ == "__main__":
    run_main(main)

"""Omniglot: train on the background characters, score the 20 official 20-way one-shot runs.

Training uses `omniglot/background/<alphabet>/<character>/` (preset "omniglot"; identity =
alphabet/character). A seeded 10% of the characters is held out as validation (best epoch and
threshold) and 5% as the library's own test split (its verification EER on unseen background
characters is reported too); the rest train. Evaluation: the 20 runs of Lake et al. (2015) in
`omniglot/one_shot_runs/runNN/` — for each of the 20 queries pick the nearest of the 20 support images
(the model's distance); `class_labels.txt` gives the truth. Reported: accuracy per run and the mean.
Note the runs' characters come from the evaluation alphabets, which are never trained on.

    python benchmarks/omniglot.py ../shared/data/omniglot [--set epochs=20] [--smoke]
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    EmbeddingScorer,
    base_parser,
    fmt,
    fmt_mean_std,
    markdown_table,
    mean_std,
    parse_args,
    parse_overrides,
    run_main,
    smoke_sample,
    train_ours,
    write_protocol_results,
)

from siamese.data import Split, list_oneshot_runs, read_oneshot_run, scan_folder
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


def run_training(args: Any, characters: list[str], runs: list[Path], r: int) -> dict[str, Any]:
    """Train once (seed `args.seed + r`) and score every one-shot run."""
    split = character_split(characters, args.seed + r)
    logger.info("training %d: %d/%d/%d characters", r + 1, len(split.train), len(split.val), len(split.test))
    overrides = {**(SMOKE_OPTIONS if args.smoke else {}), "seed": args.seed + r}
    if args.budget:
        overrides["max_minutes"] = args.budget / 60
    overrides.update(parse_overrides(args.overrides))
    run_dir = args.work_dir / NAME / f"train{r + 1}"
    ours = train_ours(PRESET, split, run_dir, overrides, args.device, root=str(args.data_root / "background"))
    per_run = [one_shot(ours.scorer, d) for d in runs]
    return {
        "training": r + 1,
        "split_sizes": {k: len(v) for k, v in split.to_dict().items()},
        "config": ours.config.to_dict(),
        "train_time_s": ours.train_time_s,
        "best_epoch": ours.checkpoint["epoch"],
        "val_eer": ours.summary["val_eer"],
        "heldout_background": ours.summary["test"],
        "runs": per_run,
        "mean_accuracy": float(np.mean([x["accuracy"] for x in per_run])),
    }


def summary_row(training: dict[str, Any]) -> dict[str, float]:
    """The numbers of one training that the summary averages."""
    return {
        "mean_accuracy": training["mean_accuracy"],
        "heldout_eer": training["heldout_background"]["eer"],
        "train_time_s": training["train_time_s"],
    }


def tables(trainings: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Per-run accuracy (one column per training) and the summary line."""
    heads = ["run", *(f"accuracy % (training {t['training']})" for t in trainings)]
    rows = [
        [run["run"], *(fmt(t["runs"][i]["accuracy"]) for t in trainings)]
        for i, run in enumerate(trainings[0]["runs"])
    ]
    rows.append(["**mean**", *(f"**{fmt(t['mean_accuracy'])}**" for t in trainings)])
    n = len(trainings[0]["runs"])
    head = markdown_table(
        ["method", "20-way one-shot accuracy %", "held-out background EER %", "train s"],
        [
            [
                "siamese (ours)",
                fmt_mean_std(summary["mean_accuracy"]),
                fmt_mean_std(summary["heldout_eer"]),
                fmt_mean_std(summary["train_time_s"], "s"),
            ]
        ],
    )
    title = f"Omniglot: {n} official 20-way one-shot runs, mean ± std over {len(trainings)} training(s)"
    return "\n\n".join([f"### {title}", head, markdown_table(heads, rows)])


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], 1, TRAININGS_HELP, BUDGET_HELP, peers=False)
    args = parse_args(parser, "Omniglot", ("background", "one_shot_runs"), PRESET, root="background")
    characters = list(scan_folder(args.data_root / "background").identities)
    characters = smoke_sample(characters, SMOKE_CHARACTERS, args)
    runs = list_oneshot_runs(args.data_root / "one_shot_runs")[: SMOKE_RUNS if args.smoke else None]
    n = 1 if args.smoke else max(args.folds, 1)
    trainings = [run_training(args, characters, runs, r) for r in range(n)]
    summary = mean_std([summary_row(t) for t in trainings], ["mean_accuracy", "heldout_eer", "train_time_s"])
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

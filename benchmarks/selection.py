"""Which epoch should a run keep? Per-epoch validation EER against the figure the model is for.

`record` trains one preset's recipe once and, after every epoch, measures the model three ways:
the run's own validation EER (its `eval_pairs` balanced pairs: what the run selects on), the EER
on many validation pairs (every genuine pair of the validation identities and up to ten times as
many impostor pairs) and the downstream figure:

- omniglot: the command `siamese train <omniglot>/background --preset omniglot [--seed S]` (its
  own identity split), scored on the 20 official 20-way one-shot runs (`omniglot.py`'s scoring);
- face: fold `--fold` of `orl.py`'s ORL protocol (6 validation people, 10 test people), scored by
  the EER over all pairs of the test people;
- glyphs, digits: `siamese train [--preset digits] [--seed S]` on the embedded data, scored by the
  EER over many pairs of the test identities.

Each history goes to `<work-dir>/histories/<preset>-seed<S>[-fold<K>].json`, rewritten after every
epoch. `summarise` applies each candidate selection rule to the histories and reports, per rule,
the downstream figure of the epoch it keeps against the best epoch's (the regret) and the last's.

    python benchmarks/selection.py record omniglot ../shared/data/omniglot --seed 0
    python benchmarks/selection.py record face ../shared/data/att_faces --fold 0
    python benchmarks/selection.py record glyphs --seed 1
    python benchmarks/selection.py summarise runs/selection/histories/*.json
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    RESULTS_DIR,
    EmbeddingScorer,
    Pairs,
    all_pairs,
    fold_split,
    genuine_paths,
    identity_folds,
    input_shape,
    markdown_table,
    parse_overrides,
    run_main,
    setup_logging,
    write_results,
)
from omniglot import one_shot_runs

from siamese.data import (
    Split,
    get_transform,
    list_oneshot_runs,
    materialize_embedded,
    scan_folder,
    split_identities,
)
from siamese.evaluation import eer
from siamese.training import Callback, Trainer, build_train_config, train
from siamese.training.selection import select_epoch

logger = logging.getLogger("benchmarks.selection")

NAME = "selection"
IMPOSTOR_RATIO = 10  # impostor pairs per genuine pair in the "many pairs" EERs
ORL_FOLDS, ORL_VAL_PEOPLE = 4, 6
PRESETS = ("omniglot", "face", "glyphs", "digits")
HIGHER_IS_BETTER = {"one_shot": True, "test_eer": False}


# ------------------------------------------------------------------------------------------ record


def many_pairs(labels: Sequence[str], seed: int) -> Pairs:
    """Every genuine pair among images with these labels and up to `IMPOSTOR_RATIO` times as many
    impostor pairs (seeded draw)."""
    pairs = all_pairs(labels)
    genuine, impostor = np.flatnonzero(pairs.is_same), np.flatnonzero(~pairs.is_same)
    n = min(len(impostor), IMPOSTOR_RATIO * len(genuine))
    keep = np.sort(np.concatenate([genuine, np.random.default_rng(seed).choice(impostor, n, replace=False)]))
    return Pairs(pairs.i[keep], pairs.j[keep], pairs.is_same[keep])


@dataclass(frozen=True)
class PairEval:
    """Images and the pairs among them whose EER is measured each epoch."""

    paths: list[str]
    pairs: Pairs

    @staticmethod
    def of(index: Any, identities: Sequence[str], seed: int) -> PairEval:
        paths, labels = genuine_paths(index, identities)
        return PairEval(paths, many_pairs(labels, seed))

    def eer(self, scorer: EmbeddingScorer) -> float:
        return eer(scorer.score(scorer.features(self.paths), self.pairs), self.pairs.is_same)[0]

    @property
    def effective_pairs(self) -> int:
        """The balanced pair count with the same EER standard error: 4 / (1/genuine + 1/impostor)."""
        c = self.pairs.counts
        return round(4 / (1 / c["genuine"] + 1 / c["impostor"]))


class EpochRecorder(Callback):
    """After each epoch (and the run's own validation), measures the current model and rewrites the history.

    Args:
        path: the history JSON.
        record: the history so far (its "epochs" list grows).
        scorer: builds an `EmbeddingScorer` for the current encoder.
        val, test: the many-pairs sets of the validation and test identities.
        downstream: extra figures of the current model (e.g. one-shot accuracy), by name.
    """

    def __init__(
        self,
        path: Path,
        record: dict[str, Any],
        scorer: Callable[[Trainer], EmbeddingScorer],
        val: PairEval,
        test: PairEval,
        downstream: Callable[[EmbeddingScorer], dict[str, float]],
    ) -> None:
        self.path, self.record, self.scorer = path, record, scorer
        self.val, self.test, self.downstream = val, test, downstream

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        scorer = self.scorer(trainer)
        row = {"epoch": epoch + 1, "val_eer": metrics.get("val_eer"), "train_loss": metrics.get("train_loss")}
        row.update(
            val_eer_many=self.val.eer(scorer), test_eer=self.test.eer(scorer), **self.downstream(scorer)
        )
        self.record["epochs"].append(row)
        logger.info("epoch %d: %s", epoch + 1, {k: v for k, v in row.items() if k != "epoch"})
        self.path.write_text(json.dumps(self.record, indent=2) + "\n")


def protocol_of(args: argparse.Namespace) -> tuple[dict[str, Any], Split, Callable[..., dict[str, float]]]:
    """The run's data options, its identity split and its downstream scoring, per preset."""
    no_extra: Callable[[EmbeddingScorer], dict[str, float]] = lambda scorer: {}  # noqa: E731
    if args.preset == "omniglot":
        root = args.data_root / "background"
        runs = list_oneshot_runs(args.data_root / "one_shot_runs")
        data = {"root": str(root)}

        def downstream(scorer: EmbeddingScorer) -> dict[str, float]:
            return {"one_shot": one_shot_runs(scorer, runs)["mean_accuracy"]}

        return data, cli_split(data, args), downstream
    if args.preset == "face":
        people = list(scan_folder(args.data_root).identities)
        test = identity_folds(people, ORL_FOLDS, args.seed)[args.fold]
        split = fold_split(people, test, ORL_VAL_PEOPLE, args.seed + args.fold)
        return {"root": str(args.data_root)}, split, no_extra
    return {}, cli_split({}, args), no_extra


def cli_split(data: dict[str, Any], args: argparse.Namespace) -> Split:
    """The identity split `siamese train` draws for this preset and data."""
    config = build_train_config(args.preset, **data, **parse_overrides(args.overrides))
    d = config.data
    index = scan_folder(d.root or materialize_embedded(d.preset))
    return split_identities(index.identities, d.val_fraction, d.test_fraction, d.split_seed)


def record(args: argparse.Namespace) -> None:
    data, split, downstream = protocol_of(args)
    tag = f"{args.preset}-seed{args.seed}" + (f"-fold{args.fold}" if args.preset == "face" else "")
    options = {**data, "seed": args.seed, "out": str(args.work_dir / "runs" / tag), "device": args.device}
    config = build_train_config(args.preset, **options, **parse_overrides(args.overrides))
    index = scan_folder(config.data.root or materialize_embedded(config.data.preset))
    size, channels = input_shape(config)
    transform = get_transform(config.data.preset, False, size, channels)

    def scorer(trainer: Trainer) -> EmbeddingScorer:
        twin = trainer.method.twin()
        return EmbeddingScorer(twin.encoder, transform, channels, twin.distance, device=args.device)

    path = args.work_dir / "histories" / f"{tag}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    val, test = PairEval.of(index, split.val, args.seed), PairEval.of(index, split.test, args.seed + 1)
    history: dict[str, Any] = {
        "preset": args.preset,
        "seed": args.seed,
        "fold": args.fold if args.preset == "face" else None,
        "config": config.to_dict(),
        "split_sizes": {k: len(v) for k, v in split.to_dict().items()},
        "val_pairs": config.data.eval_pairs,
        "val_pairs_many": val.pairs.counts,
        "val_pairs_many_effective": val.effective_pairs,
        "test_pairs_many": test.pairs.counts,
        "epochs": [],
    }
    recorder = EpochRecorder(path, history, scorer, val, test, downstream)
    summary = train(config, callbacks=[recorder], split=split)
    history["run_summary"] = summary
    path.write_text(json.dumps(history, indent=2, default=str) + "\n")
    logger.info("history: %s", path)


# --------------------------------------------------------------------------------------- summarise


def smoothed_best(history: Sequence[float | None]) -> int:
    """The epoch with the lowest mean EER over itself and its neighbours (3-epoch window)."""
    vals = np.array([np.nan if v is None else v for v in history], dtype=np.float64)
    padded = np.concatenate([[np.nan], vals, [np.nan]])
    windows = np.stack([padded[:-2], padded[1:-1], padded[2:]])
    means = np.nanmean(windows, axis=0)
    return len(means) - 1 - int(np.nanargmin(means[::-1]))  # the latest of ties


def rules(h: dict[str, Any]) -> dict[str, int]:
    """Each candidate rule's kept epoch (0-based) for one history."""
    own = [e["val_eer"] for e in h["epochs"]]
    many = [e["val_eer_many"] for e in h["epochs"]]
    n, n_many, k = h["val_pairs"], h["val_pairs_many_effective"], h["split_sizes"]["val"]
    return {
        "last": len(own) - 1,
        "best": select_epoch(own, n, "best"),
        "stable, independent pairs (1 SE)": select_epoch(own, n, "stable"),
        "stable (1 SE)": select_epoch(own, n, "stable", identities=k),
        "stable (2 SE)": select_epoch(own, n, "stable", identities=k, margin=2.0),
        "smoothed best (3 epochs)": smoothed_best(own),
        "best, many pairs": select_epoch(many, n_many, "best"),
        "stable (1 SE), many pairs": select_epoch(many, n_many, "stable", identities=k),
        "oracle (best downstream)": oracle(h),
    }


def figure_key(h: dict[str, Any]) -> str:
    """The downstream figure of a history: one-shot accuracy for omniglot, else the test EER."""
    return "one_shot" if "one_shot" in h["epochs"][0] else "test_eer"


def oracle(h: dict[str, Any]) -> int:
    key = figure_key(h)
    vals = np.array([e[key] for e in h["epochs"]], dtype=np.float64)
    return int(np.argmax(vals) if HIGHER_IS_BETTER[key] else np.argmin(vals))


def regret(h: dict[str, Any], epoch: int) -> float:
    """How much worse the kept epoch's downstream figure is than the best epoch's (points, >= 0)."""
    key = figure_key(h)
    vals = [e[key] for e in h["epochs"]]
    best = max(vals) if HIGHER_IS_BETTER[key] else min(vals)
    return 100 * abs(best - vals[epoch])


def label(h: dict[str, Any]) -> str:
    return f"{h['preset']} seed {h['seed']}" + (f" fold {h['fold']}" if h.get("fold") is not None else "")


def summarise(args: argparse.Namespace) -> None:
    loaded = [json.loads(Path(p).read_text()) for p in sorted(args.histories)]
    histories = [h for h in loaded if h["epochs"] and "run_summary" in h]  # finished runs
    partial = [h for h in loaded if h["epochs"] and "run_summary" not in h]
    chosen = [rules(h) for h in histories]
    names = list(chosen[0])
    per_run = [
        [
            label(h),
            figure_key(h),
            *(f"{c[r] + 1} ({100 * h['epochs'][c[r]][figure_key(h)]:.2f})" for r in names),
        ]
        for h, c in zip(histories, chosen, strict=True)
    ]
    presets = sorted({h["preset"] for h in histories}, key=PRESETS.index)
    summary = {
        r: {
            **{p: mean_regret(histories, chosen, r, p) for p in presets},
            "all": mean_regret(histories, chosen, r, None),
            "worst": max(regret(h, c[r]) for h, c in zip(histories, chosen, strict=True)),
        }
        for r in names
    }
    heads = ["rule", *(f"{p} mean regret (pts)" for p in presets), "all", "worst"]
    rows = [[r, *(f"{summary[r][k]:.2f}" for k in [*presets, "all", "worst"])] for r in names]
    md = "\n\n".join(
        [
            "### Which epoch to keep: downstream regret of each selection rule",
            "Regret = the downstream figure of the best epoch minus that of the kept epoch, in points "
            "(omniglot: 20-way one-shot accuracy on the 20 official runs; face/glyphs/digits: test EER on "
            "many pairs of the test identities). Own pairs = the run's validation pairs "
            f"(eval_pairs); many pairs = every validation genuine pair and up to {IMPOSTOR_RATIO}x as many "
            "impostors.",
            markdown_table(heads, rows),
            "Per run: kept epoch (downstream figure %)",
            markdown_table(["run", "figure", *names], per_run),
            *(partial_table(h) for h in partial),
        ]
    )
    payload = {
        "rules": names,
        "summary": summary,
        "chosen": chosen,
        "histories": histories,
        "partial": partial,
    }
    write_results(args.out, NAME, payload, md, smoke=False)


def partial_table(h: dict[str, Any]) -> str:
    """The epochs of an unfinished run, in percent."""
    keys = [k for k in ("val_eer", "val_eer_many", "test_eer", "one_shot") if k in h["epochs"][0]]
    rows = [[e["epoch"], *(f"{100 * e[k]:.2f}" for k in keys)] for e in h["epochs"]]
    title = f"Unfinished: {label(h)} ({len(h['epochs'])} of {h['config']['optim']['epochs']} epochs), %"
    return title + "\n\n" + markdown_table(["epoch", *keys], rows)


def mean_regret(
    histories: list[dict[str, Any]], chosen: list[dict[str, int]], rule: str, preset: str | None
) -> float:
    vals = [
        regret(h, c[rule]) for h, c in zip(histories, chosen, strict=True) if preset in (None, h["preset"])
    ]
    return float(np.mean(vals))


# ------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="train once and record every epoch's figures")
    rec.add_argument("preset", choices=PRESETS)
    rec.add_argument("data_root", type=Path, nargs="?", default=None, help="omniglot or att_faces root")
    rec.add_argument("--seed", type=int, default=0, help="training seed (face: also the folds')")
    rec.add_argument("--fold", type=int, default=0, help=f"face: which of the {ORL_FOLDS} ORL folds")
    rec.add_argument("--work-dir", type=Path, default=Path("runs") / NAME)
    rec.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    rec.add_argument("--device", default="cpu")
    summ = sub.add_parser("summarise", help="apply the candidate rules to recorded histories")
    summ.add_argument("histories", nargs="+", type=Path)
    summ.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help="default: benchmarks/results/experiments/selection/"
    )
    args = parser.parse_args()
    setup_logging()
    if args.command == "record":
        if args.preset in ("omniglot", "face") and args.data_root is None:
            parser.error(f"{args.preset} needs DATA_ROOT")
        record(args)
    else:
        summarise(args)


if __name__ == "__main__":
    run_main(main)

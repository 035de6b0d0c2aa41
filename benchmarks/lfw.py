"""LFW (Labeled Faces in the Wild, deep-funneled): face verification, unrestricted, no outside data.

View 2 (`pairs.txt`, the reported figure): 10 folds of 300 genuine + 300 impostor pairs. For test
fold k each method trains only on the LFW people who appear in no pair of fold k (LFW's
people.txt is not in the data, so the training people are the complement of the fold's people;
every record counts them), scores all 6,000 pairs, takes the accuracy-maximising threshold of the
other nine folds' pairs and reports its accuracy on fold k; the table gives the mean accuracy ± the
standard error (sample std / sqrt(folds run)), each fold's AUC and EER, and the mean ROC.

View 1 (`--view 1`, for every choice of recipe): train on the people outside pairsDevTest.txt,
threshold from the pairsDevTrain.txt pairs, report on the 1,000 DevTest pairs.

Methods: ours (the `face-wild` preset under `--budget` seconds: `--minutes` of the library), the
pytorch-metric-learning and pytorch/examples recipes (peers.py, given our measured wall time of
the same fold), and two training-free floors: raw pixels (the preset's 64x64 colour input, cosine)
and a randomly initialised encoder of our architecture. Every (method, fold) result is stored as
it finishes under `--work-dir` and skipped when present, so runs resume and can be split
(`--folds`, `--methods`); every run then merges all stored folds of its view into the table, with
the folds of earlier results given by `--merge` (a committed result, on another checkout).

    python benchmarks/lfw.py ../shared/data/lfw [--view 2] [--folds 1,2] [--methods ours,pml] [--budget 300]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import (
    EmbeddingScorer,
    Pairs,
    base_parser,
    fmt,
    input_shape,
    markdown_table,
    parse_args,
    parse_overrides,
    run_main,
    train_ours,
    write_protocol_results,
)
from peers import PEERS, PeerSetup, train_peer
from torch import nn

from siamese.data import ImageIndex, Split, get_transform, read_pair_list, scan_folder
from siamese.evaluation import best_accuracy_threshold, eer, roc_auc, tar_at_far
from siamese.inference.evaluate import index_pairs
from siamese.training.builders import build_encoder
from siamese.training.config import build_train_config

logger = logging.getLogger("benchmarks.lfw")

NAME = "lfw"
PRESET = "face-wild"
BUDGET_S = 300.0
VAL_PEOPLE = 150  # people with 2+ images carved out of the training people: our epoch choice, calibration
LABELS = {
    "ours": "siamese (ours, face-wild)",
    **PEERS,
    "pixels": "raw pixels, cosine (training-free floor)",
    "random": "random-init encoder (training-free floor)",
}
TRAINED = ("ours", "pml", "pairbce")
ROC_FARS = tuple(float(f) for f in np.round(np.logspace(-3, 0, 13), 6))
PUBLISHED = (
    # (method, accuracy %, standard error %, setting) from the LFW results page / the papers
    ("LDML-MkNN (Guillaumin et al., ICCV 2009)", 87.50, 0.40, "unrestricted, no outside data"),
    ("Combined multishot (Taigman et al., BMVC 2009)", 89.50, 0.51, "unrestricted, no outside data"),
    ("Fisher vector faces (Simonyan et al., BMVC 2013)", 93.03, 1.05, "unrestricted, no outside data"),
    ("DeepFace-ensemble (Taigman et al., CVPR 2014)", 97.35, 0.25, "outside data (4.4M images)"),
    ("Human, cropped faces (Kumar et al., ICCV 2009)", 97.53, None, "human"),
)
SMOKE = {"pairs_per_fold": 10, "train_people": 40, "val_people": 4, "budget": 4.0}


@dataclass(frozen=True)
class Task:
    """One train/test task of a view: its test pairs, its threshold pairs and who may not be trained on."""

    name: str  # "fold3" or "devtest"
    test: np.ndarray  # (P,) bool over the view's pairs
    threshold: np.ndarray  # (P,) bool: the pairs the accuracy threshold is chosen on
    excluded: frozenset[str]  # people of the test pairs


@dataclass(frozen=True)
class View:
    """A view's pairs (every task scores all of them) and its tasks."""

    number: int
    paths: list[str]  # unique images of the pairs
    pairs: Pairs
    tasks: dict[str, Task]


def person(path: str) -> str:
    """LFW's identity of an image: its folder's name."""
    return Path(path).parent.name


def read_view(root: Path, number: int, smoke: bool) -> View:
    """View 2: the ten folds of pairs.txt; View 1: DevTrain (thresholds) and DevTest (the test).

    With `smoke`, only the first `SMOKE["pairs_per_fold"]` genuine and impostor pairs of each fold.
    """
    images = root / "images"
    if number == 2:
        listed = read_pair_list(root / "pairs.txt", images)
        n_folds = listed.folds or 10
        pairs = listed.pairs
        fold = np.repeat(np.arange(n_folds), len(pairs) // n_folds)
        names = [f"fold{k + 1}" for k in range(n_folds)]
    else:
        train, test = (
            read_pair_list(root / f, images).pairs for f in ("pairsDevTrain.txt", "pairsDevTest.txt")
        )
        pairs = train + test
        fold = np.repeat([0, 1], [len(train), len(test)])
        names = ["devtrain", "devtest"]
    if smoke:
        keep = _smoke_pairs(pairs, fold)
        pairs, fold = [pairs[i] for i in keep], fold[keep]
    paths, first, second, is_same = index_pairs(pairs)
    people = [{person(a), person(b)} for a, b, _ in pairs]
    tasks = {}
    for k, name in enumerate(names):
        if number == 1 and name == "devtrain":
            continue
        test = fold == k
        excluded = frozenset(p for i in np.flatnonzero(test) for p in people[i])
        tasks[name] = Task(name, test, ~test, excluded)
    return View(number, paths, Pairs(first, second, is_same), tasks)


def _smoke_pairs(pairs: Sequence[tuple[str, str, bool]], fold: np.ndarray) -> np.ndarray:
    n = SMOKE["pairs_per_fold"]
    keep = []
    for k in np.unique(fold):
        members = np.flatnonzero(fold == k)
        same = np.array([pairs[i][2] for i in members])
        keep += [*members[same][:n], *members[~same][:n]]
    return np.array(sorted(keep))


def task_split(index: ImageIndex, task: Task, seed: int, smoke: bool) -> Split:
    """Training people: everyone outside the task's pairs; `VAL_PEOPLE` of those with 2+ images
    (seeded) validate our recipe; the task's people are the run's test identities."""
    allowed = [p for p in index.identities if p not in task.excluded]
    rng = np.random.default_rng(seed)
    images = index.by_identity()
    if smoke:
        paired = [p for p in allowed if len(images[p]) >= 2]
        allowed = sorted(rng.choice(paired, size=SMOKE["train_people"], replace=False).tolist())
    several = [p for p in allowed if len(images[p]) >= 2]
    n_val = SMOKE["val_people"] if smoke else VAL_PEOPLE
    val = set(rng.choice(several, size=n_val, replace=False).tolist())
    test = sorted(task.excluded & set(index.identities))
    return Split(train=[p for p in allowed if p not in val], val=sorted(val), test=test)


# -------------------------------------------------------------------------------------- scoring


def task_metrics(scores: np.ndarray, pairs: Pairs, task: Task) -> dict[str, Any]:
    """Accuracy at the threshold of the task's threshold pairs, and the test pairs' AUC, EER and ROC."""
    threshold, _ = best_accuracy_threshold(scores[task.threshold], pairs.is_same[task.threshold])
    s, y = scores[task.test], pairs.is_same[task.test]
    return {
        "accuracy": float(np.mean((s >= threshold) == y)),
        "threshold": float(threshold),
        "auc": roc_auc(s, y),
        "eer": eer(s, y)[0],
        "roc_tar": [tar_at_far(s, y, far)[0] for far in ROC_FARS],
        "test_pairs": {"genuine": int(y.sum()), "impostor": int((~y).sum())},
    }


def score_all(scorer: Any, view: View) -> np.ndarray:
    """The scorer's score of every pair of the view, `(P,)` (each image embedded once)."""
    feats = scorer.features(view.paths)
    return np.asarray(scorer.score(feats, view.pairs), dtype=np.float64)


def pixel_scorer(device: str) -> EmbeddingScorer:
    """Raw pixels of the preset's evaluation input, compared by cosine distance."""
    transform = get_transform(PRESET, train=False)
    return EmbeddingScorer(nn.Flatten(), transform, 3, "cosine", device=device)


def random_scorer(seed: int, device: str) -> EmbeddingScorer:
    """Our preset's encoder as initialised, never trained."""
    torch.manual_seed(seed)
    encoder = build_encoder(build_train_config(PRESET, root="."), channels=3).to(device)
    return EmbeddingScorer(encoder, get_transform(PRESET, train=False), 3, "cosine", device=device)


# -------------------------------------------------------------------------------------- running


def record_path(args: argparse.Namespace, view: int, method: str, task: str) -> Path:
    smoke = "-smoke" if args.smoke else ""
    return args.work_dir / NAME / f"view{view}{smoke}" / method / f"{task}.json"


def run_task(
    args: argparse.Namespace,
    index: ImageIndex,
    view: View,
    task: Task,
    method: str,
    ours_done: dict[str, Any] | None,
) -> dict[str, Any]:
    """Train (or build) one method for one task and score every pair of the view (`ours_done`: our
    stored record of the task, whose wall time is a peer's budget)."""
    seed = args.seed + _task_order(task.name)
    facts: dict[str, Any] = {"train_time_s": 0.0}  # the floors train nothing
    if method in TRAINED:
        split = task_split(index, task, seed, args.smoke)
        images = index.by_identity()
        facts = {
            "train_people": len(split.train),
            "train_images": sum(len(images[p]) for p in split.train),
            "val_people": len(split.val),
            "test_people": len(split.test),
        }
    start = time.perf_counter()
    if method == "ours":
        overrides = {"seed": seed, "minutes": args.budget / 60, **parse_overrides(args.overrides)}
        if args.smoke:
            overrides = {**overrides, "minutes": None, "epochs": 1, "samples_per_epoch": 64, "eval_pairs": 32}
        overrides = {k: v for k, v in overrides.items() if v is not None}
        run_dir = args.work_dir / NAME / f"view{view.number}" / "runs" / task.name
        ours = train_ours(PRESET, split, run_dir, overrides, args.device, root=str(args.data_root / "images"))
        scorer: Any = ours.scorer
        facts.update(train_time_s=ours.train_time_s, kept_epoch=ours.checkpoint.get("epoch"))
        facts["config"] = ours.config.to_dict()
    elif method in PEERS:
        budget = peer_budget(args, ours_done)
        size, channels = input_shape(build_train_config(PRESET, root="."))
        setup = PeerSetup(
            index=index.subset(split.train),
            preset=PRESET,
            image_size=size,
            channels=channels,
            batch_size=8 if args.smoke else 64,
            seed=seed,
            device=args.device,
        )
        result = train_peer(method, setup, budget)
        scorer = result.scorer
        facts.update(budget_s=budget, **result.stats())
    elif method == "pixels":
        scorer = pixel_scorer(args.device)
    else:
        scorer = random_scorer(seed, args.device)
    scores = score_all(scorer, view)
    facts["wall_s"] = time.perf_counter() - start
    metrics = task_metrics(scores, view.pairs, task)
    logger.info(
        "%s %s: accuracy %.2f%%, AUC %.4f", method, task.name, 100 * metrics["accuracy"], metrics["auc"]
    )
    return {"method": method, "task": task.name, **facts, **metrics, "scores": scores.tolist()}


def peer_budget(args: argparse.Namespace, ours: dict[str, Any] | None) -> float:
    """Our measured wall time on the same task when we have it, else `--budget` (smoke: a few s)."""
    if args.smoke:
        return SMOKE["budget"]
    if ours is not None:
        return float(ours["train_time_s"])
    logger.warning("no result of ours on this fold yet: the peers get --budget %.0f s", args.budget)
    return args.budget


def load_records(args: argparse.Namespace, view: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Every stored result of the view: {method: {task: record}}, from the work directory and
    then, for the (method, task) results it lacks, from the `--merge` result files."""
    base = record_path(args, view, "ours", "x").parent.parent
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for method in LABELS:
        folder = base / method
        if folder.is_dir():
            out[method] = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    for path in args.merge:
        doc = json.loads(Path(path).read_text())
        if doc.get("protocol", {}).get("view") != view or doc.get("smoke") != args.smoke:
            raise SystemExit(f"--merge {path}: not a {'smoke ' if args.smoke else ''}view {view} result")
        for method, tasks in doc["folds"].items():
            for task, record in tasks.items():
                out.setdefault(method, {}).setdefault(task, record)
    return {
        m: dict(sorted(tasks.items(), key=lambda kv: _task_order(kv[0])))
        for m, tasks in sorted(out.items(), key=lambda kv: list(LABELS).index(kv[0]))
    }


def _task_order(task: str) -> int:
    digits = "".join(c for c in task if c.isdigit())
    return int(digits) if digits else 0


# -------------------------------------------------------------------------------------- tables


def summarise(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One method's tasks: mean accuracy ± standard error, mean AUC, EER, ROC, training time."""
    acc = np.array([r["accuracy"] for r in records.values()])
    se = float(acc.std(ddof=1) / np.sqrt(len(acc))) if len(acc) > 1 else float("nan")
    return {
        "tasks": list(records),
        "accuracy_mean": float(acc.mean()),
        "accuracy_se": se,
        "auc_mean": float(np.mean([r["auc"] for r in records.values()])),
        "eer_mean": float(np.mean([r["eer"] for r in records.values()])),
        "roc_far": list(ROC_FARS),
        "roc_tar_mean": np.mean([r["roc_tar"] for r in records.values()], axis=0).tolist(),
        "train_time_s_mean": float(np.mean([r.get("train_time_s", 0.0) for r in records.values()])),
    }


def ahead_on_every_task(records: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
    """For each peer: on how many of the tasks both ran ours has the higher accuracy."""
    ours = records.get("ours", {})
    out = {}
    for peer in PEERS:
        common = sorted(set(ours) & set(records.get(peer, {})), key=_task_order)
        if common:
            wins = sum(ours[t]["accuracy"] > records[peer][t]["accuracy"] for t in common)
            out[peer] = f"{wins}/{len(common)}"
    return out


def tables(view: int, records: dict[str, dict[str, dict[str, Any]]], summary: dict[str, Any]) -> str:
    far_cols = [0.01, 0.1]
    heads = ["method", "folds", "accuracy % (± SE)", "AUC", "EER %", *(f"TAR@FAR={f:g} %" for f in far_cols)]
    heads.append("train s / fold")
    rows = []
    for method, s in summary.items():
        tars = [s["roc_tar_mean"][ROC_FARS.index(f)] for f in far_cols]
        se = "n/a" if not np.isfinite(s["accuracy_se"]) else fmt(s["accuracy_se"])
        rows.append(
            [LABELS[method], len(s["tasks"]), f"{fmt(s['accuracy_mean'])} ± {se}", fmt(s["auc_mean"], "auc")]
            + [fmt(s["eer_mean"]), *(fmt(t) for t in tars), fmt(s["train_time_s_mean"], "s")]
        )
    what = (
        "View 2, 10-fold (threshold of each fold from the other nine folds' pairs)"
        if view == 2
        else "View 1 (trained without the DevTest people, threshold from DevTrain, tested on DevTest)"
    )
    out = [f"### LFW, unrestricted, no outside data: {what}", markdown_table(heads, rows)]
    if view == 2:
        published = [
            [f"{m} (published)", 10, f"{a:.2f}" + (f" ± {se:.2f}" if se else ""), s]
            for m, a, se, s in PUBLISHED
        ]
        out += [
            "Published figures (not measured here):",
            markdown_table(["method", "folds", "accuracy %", "setting"], published),
        ]
    ahead = ahead_on_every_task(records)
    if ahead:
        out.append("Ours ahead on: " + ", ".join(f"{LABELS[p]} {w} folds" for p, w in ahead.items()))
    per_task = [
        [
            task,
            LABELS[m],
            fmt(r["accuracy"]),
            fmt(r["auc"], "auc"),
            fmt(r["eer"]),
            fmt(r.get("train_time_s", 0.0), "s"),
        ]
        + [r.get("train_people", ""), r.get("train_images", "")]
        for m, tasks in records.items()
        for task, r in tasks.items()
    ]
    per_task.sort(key=lambda row: (_task_order(str(row[0])), list(LABELS.values()).index(row[1])))
    heads = ["fold", "method", "accuracy %", "AUC", "EER %", "train s", "train people", "train images"]
    out.append(markdown_table(heads, per_task))
    return "\n\n".join(out)


def plot_roc(summary: dict[str, Any], path: Path) -> None:
    """Mean ROC (TAR against FAR, log FAR) of every method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for method, s in summary.items():
        ax.plot(
            s["roc_far"], s["roc_tar_mean"], marker=".", label=f"{LABELS[method]} ({len(s['tasks'])} folds)"
        )
    ax.set(xscale="log", xlabel="false accept rate", ylabel="true accept rate", title="LFW mean ROC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_list(raw: str, known: Sequence[str], what: str) -> list[str]:
    items = [x.strip() for x in raw.split(",") if x.strip()]
    unknown = sorted(set(items) - set(known))
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; choose from {', '.join(known)}")
    return items


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], 10, peers=False, fold_list=True)
    parser.add_argument(
        "--view", type=int, choices=(1, 2), default=2, help="LFW view (1: choose recipes; 2: report)"
    )
    parser.add_argument("--methods", default=",".join(LABELS), help=f"comma-separated: {', '.join(LABELS)}")
    parser.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        help="a stored lfw result (.json) whose folds join the table where the work directory has none "
        "(repeatable): a run continues where a committed result stopped",
    )
    parser.set_defaults(budget=BUDGET_S)
    args = parse_args(parser, "LFW", folders=("images",), preset=PRESET, root="images")
    methods = parse_list(args.methods, list(LABELS), "methods")
    view = read_view(args.data_root, args.view, args.smoke)
    names = list(view.tasks)
    if args.view == 2 and args.folds != "all":
        names = [
            f"fold{k}" for k in parse_list(args.folds, [str(k) for k in range(1, len(names) + 1)], "folds")
        ]
    if args.smoke:
        names = names[:1]
    index = scan_folder(args.data_root / "images")
    records = load_records(args, args.view)
    for method in sorted(methods, key=list(LABELS).index):  # ours first: the peers' budget is its time
        for name in names:
            if name in records.get(method, {}):
                logger.info("%s %s: stored", method, name)
                continue
            record = run_task(args, index, view, view.tasks[name], method, records.get("ours", {}).get(name))
            path = record_path(args, args.view, method, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record) + "\n")
            records.setdefault(method, {})[name] = record
    records = load_records(args, args.view)  # in table order
    summary = {m: summarise(r) for m, r in records.items()}
    protocol = {
        "view": args.view,
        "setting": "unrestricted, no outside data",
        "folds_total": len(view.tasks),
        "budget_s": args.budget,
        "val_people": SMOKE["val_people"] if args.smoke else VAL_PEOPLE,
        "training_people": "everyone in no pair of the test fold (people.txt is not in the data)",
        "published": [dict(zip(("method", "accuracy", "se", "setting"), p, strict=True)) for p in PUBLISHED],
    }
    per_task = {
        m: {t: {k: v for k, v in r.items() if k != "scores"} for t, r in recs.items()}
        for m, recs in records.items()
    }
    stem = write_protocol_results(
        args,
        f"{NAME}_view{args.view}",
        protocol,
        summary,
        tables(args.view, records, summary),
        folds=per_task,
    )
    plot_roc(summary, stem.parent / f"{stem.name}_roc.png")


if __name__ == "__main__":
    run_main(main)

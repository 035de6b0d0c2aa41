"""Self-supervised pretraining + fine-tuning against training from scratch, at equal total wall time.

The folds, splits, validation and test pairs are exactly those of `orl.py` (ORL / AT&T faces, 4
identity-disjoint folds, preset `face`) and `cedar.py` (CEDAR, 5 writer-disjoint folds, preset
`signature`, skilled forgeries as training negatives and test impostors). Per fold:

1. **scratch**: our recipe (`train_ours`: the preset's defaults, `--set` on top); its wall time is T.
2. **pretrain + fine-tune**, within T in total (or `--budget` seconds): `siamese.training.pretrain`
   with `--method` (default simclr) on the images of the fold's *training* identities only, listed
   in a text file (validation and test identities are never seen, so nothing leaks from the test
   set; on CEDAR the training writers' genuine signatures and their forgeries, the images the
   supervised recipe trains on), for `--pretrain-share` of T (`max_minutes`; nominal epochs = that
   share of the scratch run's, so the cosine schedule fits, or `--pretrain-epochs`). The
   pretraining encoder is the supervised one (encoder, embedding size, normalisation, encoder
   options and channels taken from the scratch run's config; a preset's `pretraining` defaults may
   only change the image size and batch, and smallcnn is size-agnostic). Then our recipe again,
   started from the pretrained encoder (`init`), with the rest of T as `max_minutes` and the
   scratch run's epochs scaled by (rest of T) / T (`--finetune-set` options on top, this run
   only). The architectures of both checkpoints are checked to be equal.
3. Both are evaluated as `orl.py`/`cedar.py` evaluate ours: the threshold is the EER point of the
   validation pairs, metrics on the test pairs (ORL: all pairs; CEDAR: skilled and random forgeries).

Reported per fold and as mean ± std: EER and AUC both ways, and the wall times (scratch T; pretrain,
fine-tune and their total). Published results: `results/canonical/finetune_<dataset>.{json,md}`.

DATA_ROOT is the folder holding the datasets: `att_faces/` (ORL) and `cedar/` (`genuine/`, `forged/`).

    python benchmarks/finetune.py ../shared/data --dataset orl|cedar [--method simclr]
        [--pretrain-share 0.5] [--pretrain-epochs N] [--finetune-set lr=3e-4] [--folds 1] [--smoke]
        [--set epochs=30]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cedar
import numpy as np
import orl
import torch
from common import (
    OursResult,
    base_parser,
    checked_overrides,
    evaluate_method,
    fmt,
    fold_tables,
    markdown_table,
    parse_overrides,
    require_dir,
    run_identity_folds,
    run_main,
    setup_logging,
    train_ours,
    write_protocol_results,
)
from peers import Fold, ours_overrides, ours_record

from siamese import names
from siamese.data import ImageIndex, scan_folder
from siamese.inference import EmbeddingModel
from siamese.training.config import TrainConfig, build_train_config
from siamese.training.pretrain import pretrain

logger = logging.getLogger("benchmarks.finetune")

SMOKE_PRETRAIN_IMAGES = 64  # seeded sample of the training identities' images with --smoke
MIN_FINETUNE_S = 1.0  # fine-tuning budget when pretraining used up the whole total
ARCHITECTURE = ("encoder", "embedding_dim", "normalize", "encoder_kwargs")  # ModelConfig fields shared


@dataclass(frozen=True)
class Protocol:
    """One data set's fold protocol, as its benchmark script defines it."""

    name: str  # the script ("orl", "cedar")
    folder: str  # the data set's folder under DATA_ROOT
    what: str  # the data set, in the message when it is missing
    preset: str
    folds: int
    smoke_identities: int
    kind: str  # what an identity is ("people", "writers")
    folders: tuple[str, ...]  # sub-folders of the data set that must exist ("" = itself)
    data: Callable[[Path], dict[str, str]]  # `root=` (and `forgeries=`) of the data set's folder
    load: Callable[[Path], ImageIndex]
    make_fold: Callable[..., Fold]
    threshold_rule: str
    sets: tuple[str, ...]  # the test pair sets `make_fold` builds
    label: str  # for the table title


PROTOCOLS = {
    "orl": Protocol(
        "orl", "att_faces", "ORL/AT&T faces", orl.PRESET, orl.FOLDS, orl.SMOKE_PEOPLE, "people", ("",),
        lambda root: {"root": str(root)}, scan_folder, orl.make_fold, orl.THRESHOLD_RULE, ("all",),
        "ORL (AT&T faces)",
    ),
    "cedar": Protocol(
        "cedar", "cedar", "CEDAR", cedar.PRESET, cedar.FOLDS, cedar.SMOKE_WRITERS, "writers",
        ("genuine", "forged"), cedar.training_data, cedar.load_index, cedar.make_fold,
        cedar.THRESHOLD_RULE, cedar.KINDS, "CEDAR signatures",
    ),
}  # fmt: skip
LABELS = {"scratch": "from scratch", "finetune": "pretrain + fine-tune"}
TIMES = (("pretrain_time_s", "pretrain s"), ("finetune_time_s", "supervised s"))
TIMES += (("train_time_s", "total s"),)


# ------------------------------------------------------------------------------------- pretraining


def pretrain_list(args: argparse.Namespace, fold: Fold, path: Path) -> int:
    """Write the images of the fold's training identities (with their forgeries) to `path`, one per
    line; with `--smoke`, a seeded sample of `SMOKE_PRETRAIN_IMAGES`. Returns how many."""
    paths = [r.path for r in fold.index.subset(fold.split.train).records]
    if args.smoke and len(paths) > SMOKE_PRETRAIN_IMAGES:
        keep = np.random.default_rng(args.seed + fold.k).choice(len(paths), SMOKE_PRETRAIN_IMAGES, False)
        paths = [paths[i] for i in sorted(keep)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{Path(p).absolute()}\n" for p in paths))
    return len(paths)


def pretrain_config(
    args: argparse.Namespace, preset: str, scratch: TrainConfig, budget_s: float, root: Path, out: Path
) -> TrainConfig:
    """`--method` on the images listed in `root`, with the scratch run's encoder, for `budget_s`."""
    epochs = args.pretrain_epochs or max(1, round(scratch.optim.epochs * args.pretrain_share))
    encoder = {key: getattr(scratch.model, key) for key in ARCHITECTURE}
    return build_train_config(
        preset,
        root=str(root),
        method=args.method,
        out=str(out),
        epochs=epochs,
        max_minutes=budget_s / 60,
        seed=scratch.seed,
        device=args.device,
        channels=scratch.data.channels,
        **encoder,
    )


def run_pretrain(config: TrainConfig) -> dict[str, Any]:
    """Pretrain; the summary with the measured wall time and the encoder's architecture."""
    start = time.perf_counter()
    summary = pretrain(config)
    elapsed = time.perf_counter() - start
    model = EmbeddingModel.from_checkpoint(summary["run_dir"])
    return {**summary, "time_s": elapsed, "encoder": model.encoder.spec, "config": config.to_dict()}


# -------------------------------------------------------------------------------------------- folds


def finetune_options(
    overrides: dict[str, Any], init: str, epochs: int, rest_s: float, total_s: float
) -> dict[str, Any]:
    """Our recipe's options started from `init`: the rest of the time, the epochs scaled to it.

    >>> finetune_options({"seed": 0}, "runs/pre", epochs=30, rest_s=36.0, total_s=72.0)
    {'seed': 0, 'init': 'runs/pre', 'max_minutes': 0.6, 'epochs': 15}
    """
    scaled = max(1, round(epochs * rest_s / total_s))
    return {**overrides, "init": init, "max_minutes": rest_s / 60, "epochs": scaled}


def pretrain_finetune(
    args: argparse.Namespace, p: Protocol, fold: Fold, scratch: OursResult, work: Path
) -> tuple[dict[str, Any], OursResult]:
    """Pretrain for `--pretrain-share` of the total time, then fine-tune our recipe in the rest.

    Returns:
        The pretraining record (summary, measured time, budget, encoder, config) and the
        fine-tuned run.
    """
    total = args.budget or scratch.train_time_s
    images, budget = work / "pretrain-images.txt", args.pretrain_share * total
    listed = pretrain_list(args, fold, images)
    logger.info("fold %d: pretraining %s on %d images for %.0f s", fold.k + 1, args.method, listed, budget)
    pre = run_pretrain(pretrain_config(args, p.preset, scratch.config, budget, images, work / "pretrain"))
    rest = max(total - pre["time_s"], MIN_FINETUNE_S)
    epochs = scratch.config.optim.epochs
    options = finetune_options(ours_overrides(args), pre["run_dir"], epochs, rest, total)
    options.update(parse_overrides(args.finetune_overrides))
    tuned = train_ours(p.preset, fold.split, work / "finetune", options, args.device, **fold.data)
    if tuned.scorer.encoder.spec != pre["encoder"]:
        raise SystemExit(f"fine-tuned encoder {tuned.scorer.encoder.spec} is not the pretrained one")
    return {**pre, "budget_s": budget, "total_budget_s": total}, tuned


def run_fold(
    args: argparse.Namespace, index: ImageIndex, k: int, test_ids: tuple[str, ...], identities: list[str]
) -> dict[str, Any]:
    """Scratch, then pretrain + fine-tune in the same total time, on fold `k`; both evaluated."""
    p = PROTOCOLS[args.dataset]
    fold = p.make_fold(args, index, k, test_ids, identities)
    work = args.work_dir / f"finetune_{p.name}" / f"fold{k + 1}"
    sizes = "/".join(str(len(ids)) for ids in (fold.split.train, fold.split.val, fold.split.test))
    logger.info("fold %d: %s train/val/test %s", k + 1, sizes, p.kind)
    scratch = train_ours(
        p.preset, fold.split, work / "scratch", ours_overrides(args), args.device, **fold.data
    )
    pre, tuned = pretrain_finetune(args, p, fold, scratch, work)
    evaluate = partial(evaluate_method, val=fold.val, test=fold.test)
    times = {"pretrain_time_s": 0.0, "finetune_time_s": scratch.train_time_s}
    scratch_record = {**ours_record(scratch, evaluate), **times}
    times = {"pretrain_time_s": pre["time_s"], "finetune_time_s": tuned.train_time_s}
    tuned_record = {**ours_record(tuned, evaluate), **times, "train_time_s": sum(times.values())}
    return {
        "fold": k + 1,
        "split": fold.split.to_dict(),
        "test_pairs": {name: pairs.counts for name, pairs in fold.test.sets.items()},
        "val_pairs": fold.val.sets["val"].counts,
        "budget_s": pre.pop("total_budget_s"),
        "pretrain": {key: value for key, value in pre.items() if key != "device"},
        "config": {"scratch": scratch.config.to_dict(), "finetune": tuned.config.to_dict()},
        "methods": {"scratch": scratch_record, "finetune": tuned_record},
    }


# ----------------------------------------------------------------------------------------- results


def columns(sets: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(flat key, header, format) of the table columns: EER and AUC per test set, then the times."""
    prefix = {name: "" if len(sets) == 1 else f"{name} " for name in sets}
    cols = [(f"{s}_eer", f"{prefix[s]}EER %", "pct") for s in sets]
    cols += [(f"{s}_auc", f"{prefix[s]}AUC", "auc") for s in sets]
    return [*cols, *((key, head, "s") for key, head in TIMES)]


def flat(result: dict[str, Any], sets: tuple[str, ...]) -> dict[str, float]:
    """One method's fold result as `<test set>_<metric>` columns of the test `sets` plus the times."""
    out = {f"{s}_{key}": result[s][key] for s in sets for key in ("eer", "auc", "accuracy")}
    return {**out, **{key: result[key] for key, _ in TIMES}}


def pretrain_table(folds: list[dict[str, Any]]) -> str:
    """Per fold: the pretraining run (epochs, images, kNN accuracy, spread, time vs budget)."""
    heads = ["fold", "images", "epochs", "kNN acc %", "spread", "pretrain s", "budget s", "T s"]
    rows = []
    for f in folds:
        pre, knn = f["pretrain"], f["pretrain"]["knn_acc"]
        knn = "-" if knn is None else fmt(knn)
        spread = f"{pre['spread']:.3f}"
        times = [fmt(pre["time_s"], "s"), fmt(pre["budget_s"], "s"), fmt(f["budget_s"], "s")]
        rows.append([f["fold"], pre["images"], pre["epochs"], knn, spread, *times])
    return markdown_table(heads, rows)


def tables(args: argparse.Namespace, folds: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Summary (mean ± std over folds), per-fold and pretraining markdown tables."""
    p, counts = PROTOCOLS[args.dataset], folds[0]["test_pairs"]
    pairs = ", ".join(
        f"{name}: {c['genuine']} genuine / {c['impostor']} impostor" for name, c in counts.items()
    )
    title = (
        f"{p.label}: {args.method} pretraining ({100 * args.pretrain_share:.0f}% of T) + fine-tuning vs "
        f"from scratch at equal total wall time T; {p.kind}-disjoint folds ({len(folds)} run); "
        f"test pairs per fold {pairs}"
    )
    table = fold_tables(title, folds, summary, columns(p.sets), LABELS, partial(flat, sets=p.sets))
    return "\n\n".join([table, "Pretraining:", pretrain_table(folds)])


def parser() -> argparse.ArgumentParser:
    """The shared options (no peers) plus `--dataset`, `--method`, `--pretrain-share`."""
    folds_help = (
        f"folds to run (default: all, {', '.join(f'{p.folds} on {n}' for n, p in PROTOCOLS.items())})"
    )
    budget_help = "total time in seconds of pretraining + fine-tuning (default: the scratch run's T)"
    p = base_parser(
        __doc__.split("\n")[0], max(p.folds for p in PROTOCOLS.values()), folds_help, budget_help, peers=False
    )
    p.add_argument("--dataset", required=True, choices=list(PROTOCOLS), help="which fold protocol")
    p.add_argument("--method", default="simclr", choices=list(names.SSL_METHODS), help="pretraining method")
    p.add_argument(
        "--pretrain-share", type=float, default=0.5, help="share of the total time spent pretraining (0-1)"
    )
    p.add_argument(
        "--pretrain-epochs",
        type=int,
        default=None,
        help="nominal pretraining epochs (default: --pretrain-share of the scratch run's); the share "
        "of T still caps the run",
    )
    p.add_argument(
        "--finetune-set",
        dest="finetune_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a training option of the fine-tuning run only, on top of --set (repeatable), e.g. "
        "--finetune-set lr=3e-4",
    )
    return p


def warm_up() -> None:
    """Pay the one-time import of `torch._dynamo` (~5 s, on the first optimiser built) before any
    timed run, so that it does not inflate the first fold's scratch time T."""
    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])


def main() -> None:
    args = parser().parse_args()
    setup_logging()
    if not 0 < args.pretrain_share < 1:
        raise SystemExit(f"--pretrain-share must be in (0, 1), got {args.pretrain_share}")
    p = PROTOCOLS[args.dataset]
    root = args.data_root / p.folder
    for sub in p.folders:
        require_dir(root / sub, f"{p.what} {sub}/ folder" if sub else f"{p.what} folder")
    checked_overrides(args, p.preset, args.finetune_overrides, **p.data(root))
    if args.pretrain_epochs is not None and args.pretrain_epochs < 1:
        raise SystemExit(f"--pretrain-epochs must be >= 1, got {args.pretrain_epochs}")
    args.data_root = root  # the protocols' folds read their data set's folder
    index = p.load(root)
    warm_up()
    keys = [key for key, _, _ in columns(p.sets)] + [f"{s}_accuracy" for s in p.sets]
    flatten = partial(flat, sets=p.sets)
    folds, summary, protocol = run_identity_folds(
        args, index, p.folds, p.smoke_identities, run_fold, flatten, keys, p.kind
    )
    protocol.update(
        threshold_rule=p.threshold_rule,
        method=args.method,
        pretrain_share=args.pretrain_share,
        pretrain_epochs=args.pretrain_epochs,
        finetune_overrides=parse_overrides(args.finetune_overrides),
        pretrain_images="the fold's training identities only (with their forgeries)",
    )
    write_protocol_results(
        args, f"finetune_{p.name}", protocol, summary, tables(args, folds, summary), folds=folds
    )


if __name__ == "__main__":
    run_main(main)

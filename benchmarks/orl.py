"""ORL / AT&T faces: identity-disjoint 4-fold face verification, our recipe against two peers.

Each fold holds out 10 of the 40 people as test identities and trains on the other 30, of which a
seeded subset of 6 only serves as validation (decision threshold, best epoch). Test pairs are ALL
pairs among the 100 held-out images: 450 genuine and 4500 impostor. Reported per fold and as
mean ± std: EER, AUC, TAR at FAR = 1%, accuracy at the validation threshold (EER rule on all pairs of
the validation people, the same rule for every method) and training wall time. The peers
(see peers.py) get the same split, test pairs and wall-clock budget (our measured training time).

    python benchmarks/orl.py /work/shared/data/att_faces [--set epochs=30] [--folds 1] [--smoke]
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    PairSet,
    all_pairs,
    base_parser,
    checked_overrides,
    fold_split,
    fold_tables,
    genuine_paths,
    identity_folds,
    mean_std,
    parse_overrides,
    require_dir,
    run_main,
    setup_logging,
    write_results,
)
from peers import PEERS, Fold, compare_on_fold

from siamese.data import scan_folder

logger = logging.getLogger("benchmarks.orl")

NAME = "orl"
PRESET = "face"
FOLDS = 4
VAL_PEOPLE = 6
SMOKE_PEOPLE = 14  # 4 test, 2 validation, 8 training (a 32-image batch of 4 per class needs 8)
SMOKE = {"options": {"epochs": 1, "samples_per_epoch": 64, "eval_pairs": 32}, "budget": 4.0, "peer_batch": 8}
METRICS = (("eer", "EER %", "pct"), ("auc", "AUC", "auc"), ("tar@far=0.01", "TAR@FAR=1% %", "pct"))
METRICS += (("accuracy", "accuracy % (val thr)", "pct"), ("train_time_s", "train s", "s"))
LABELS = {"ours": "siamese (ours)", **PEERS}


def pair_set(index: Any, identities: tuple[str, ...], name: str) -> PairSet:
    """All pairs among the images of `identities`, as the pair set `name`."""
    paths, labels = genuine_paths(index, identities)
    return PairSet(paths, {name: all_pairs(labels)})


def run_fold(args: Any, index: Any, k: int, test_ids: tuple[str, ...], people: list[str]) -> dict[str, Any]:
    """Train and evaluate every method on fold `k`."""
    split = fold_split(people, test_ids, 2 if args.smoke else VAL_PEOPLE, args.seed + k)
    val, test = pair_set(index, split.val, "val"), pair_set(index, split.test, "all")
    counts = test.sets["all"].counts
    logger.info(
        "fold %d: %d/%d/%d people, test pairs %s",
        k + 1,
        len(split.train),
        len(split.val),
        len(test_ids),
        counts,
    )
    fold = Fold(
        k, split, val, test, index, {"root": str(args.data_root)}, args.work_dir / NAME / f"fold{k + 1}"
    )
    result = compare_on_fold(args, PRESET, fold, SMOKE)
    return {
        "fold": k + 1,
        "split": split.to_dict(),
        "test_pairs": counts,
        "val_pairs": val.sets["val"].counts,
        **result,
    }


def flat(result: dict[str, Any]) -> dict[str, float]:
    """One method's fold result as the table's metric columns."""
    return {**result["all"], "train_time_s": result["train_time_s"]}


def tables(folds: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Summary (mean ± std over folds) and per-fold markdown tables."""
    pairs = folds[0]["test_pairs"]
    title = (
        f"ORL (AT&T faces): identity-disjoint folds ({len(folds)} run), all test pairs per fold "
        f"({pairs['genuine']} genuine / {pairs['impostor']} impostor)"
    )
    return fold_tables(title, folds, summary, METRICS, LABELS, flat)


def main() -> None:
    args = base_parser(__doc__.split("\n")[0], FOLDS).parse_args()
    setup_logging()
    require_dir(args.data_root, "ORL/AT&T faces folder")
    checked_overrides(args, PRESET, root=str(args.data_root))
    index = scan_folder(args.data_root)
    people = list(index.identities)
    if args.smoke:
        rng = np.random.default_rng(args.seed)
        people = sorted(rng.choice(people, size=SMOKE_PEOPLE, replace=False).tolist())
    n_folds = 1 if args.smoke else min(args.folds, FOLDS)
    groups = identity_folds(people, FOLDS, args.seed)
    folds = [run_fold(args, index, k, groups[k], people) for k in range(n_folds)]
    methods = list(folds[0]["methods"])
    summary = {
        m: mean_std([flat(f["methods"][m]) for f in folds], [k for k, _, _ in METRICS]) for m in methods
    }
    payload = {
        "protocol": {
            "folds_total": FOLDS,
            "folds_run": n_folds,
            "val_people": len(folds[0]["split"]["val"]),
            "threshold_rule": "EER on all validation-people pairs",
            "seed": args.seed,
            "overrides": parse_overrides(args.overrides),
            "data_root": Path(args.data_root),
        },
        "summary": summary,
        "folds": folds,
    }
    write_results(args.out, NAME, payload, tables(folds, summary), args.smoke)


if __name__ == "__main__":
    run_main(main)

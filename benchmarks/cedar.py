"""CEDAR signatures: writer-independent 5-fold verification with skilled and random forgeries.

Each fold holds out 11 of the 55 writers as test writers; of the other 44, a seeded subset of 8
serves only as validation writers (decision threshold, best epoch) and 36 train, with their skilled
forgeries as negatives (`forgeries=`). Test pairs, per test writer: genuine = all pairs of the
writer's 24 genuine signatures (276); skilled impostors = each genuine signature against each
forgery of that writer (576). Random impostors = genuine signatures of two different test writers,
sampled (seeded) to as many pairs as there are genuine pairs. Reported per impostor kind: EER, AUC,
TAR at FAR = 1%, and accuracy at the validation threshold. The threshold is the EER point of the
validation writers' pairs (genuine, skilled and as many random impostors as skilled ones); test
writers never influence it. The peers (see peers.py) share splits, pairs and the wall-clock budget.

    python benchmarks/cedar.py ../shared/data/cedar [--set epochs=30] [--folds 1] [--smoke]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    Pairs,
    PairSet,
    all_pairs,
    base_parser,
    cross_pairs,
    fold_split,
    fold_tables,
    parse_args,
    reference_counts,
    reference_flat,
    reference_table,
    run_identity_folds,
    run_main,
    subsample,
    write_protocol_results,
)
from peers import PEERS, Fold, compare_on_fold

from siamese.data import ImageIndex, Split, open_image, scan_folder
from siamese.data.transforms import background_colour
from siamese.evaluation import as_scores

NAME = "cedar"
PRESET = "signature"
FOLDS = 5
VAL_WRITERS = 8
SMOKE_WRITERS = 13  # 3 test, 2 validation, 8 training (a 32-image batch of 4 per class needs 8)
SMOKE_IMAGES_PER_WRITER = 8  # genuine and forged images per val/test writer
THRESHOLD_RULE = "EER on validation writers' genuine + skilled + random pairs"
KINDS = ("skilled", "random")
REFERENCES = "1,5,10"  # enrolled genuine signatures per test writer (of 24)
METRICS = (("eer", "EER %", "pct"), ("auc", "AUC", "auc"), ("accuracy", "acc. % (val thr)", "pct"))
LABELS = {"ours": "siamese (ours)", **PEERS, "background": "background grey level only (no training)"}


class BackgroundScorer:
    """Sanity baseline: the median border grey level of the raw image, score = -|difference|.

    CEDAR's forgeries were scanned with a brighter background than the genuine signatures (median
    border ~254 vs ~240), so this one-number "model" separates skilled forgeries almost perfectly. Any
    skilled-forgery result should be read against it.
    """

    def features(self, paths: list[str]) -> np.ndarray:
        return np.array([[background_colour(open_image(p, 1))] for p in paths], dtype=np.float64)  # (N, 1)

    def score(self, feats: np.ndarray, pairs: Pairs) -> np.ndarray:
        return as_scores(np.abs(feats[pairs.i, 0] - feats[pairs.j, 0]))

    @property
    def reference_distance(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """|grey level difference| of every (query, reference) pair."""
        return lambda queries, refs: np.abs(queries[:, :1] - refs[:, 0][None, :])


def writer_pairs(
    index: ImageIndex, writers: tuple[str, ...], seed: int, per_writer: int | None = None
) -> PairSet:
    """Genuine, skilled-forgery and random-forgery pairs of `writers`.

    Sets: "skilled" = genuine + skilled impostors, "random" = genuine + as many random impostors,
    "val" = genuine + skilled + as many random impostors as skilled ones. `per_writer` keeps only
    the first that many genuine and forged images of each writer (smoke runs).
    """
    keep, seen = set(writers), Counter()
    recs = []
    for r in index.records:
        if r.identity in keep and (per_writer is None or seen[r.identity, r.forgery] < per_writer):
            seen[r.identity, r.forgery] += 1
            recs.append(r)
    who = np.array([r.identity for r in recs])
    forged = np.array([r.forgery for r in recs], dtype=bool)
    genuine, skilled = [], []
    for w in writers:
        g, f = np.flatnonzero((who == w) & ~forged), np.flatnonzero((who == w) & forged)
        within = all_pairs(np.zeros(len(g)))  # every pair of this writer's genuine signatures
        genuine.append(Pairs(g[within.i], g[within.j], within.is_same))
        skilled.append(cross_pairs(g, f, is_same=False))
    gen, sk = Pairs.concat(*genuine), Pairs.concat(*skilled)
    g_all = np.flatnonzero(~forged)
    between = all_pairs(who[g_all])
    impostor = ~between.is_same
    others = Pairs(g_all[between.i[impostor]], g_all[between.j[impostor]], between.is_same[impostor])
    sets = {
        "skilled": Pairs.concat(gen, sk),
        "random": Pairs.concat(gen, subsample(others, len(gen), seed)),
        "val": Pairs.concat(gen, sk, subsample(others, len(sk), seed + 1)),
    }
    return PairSet([r.path for r in recs], sets, [r.identity for r in recs], forged)


def training_data(root: Path) -> dict[str, str]:
    """`root=` and `forgeries=` of our recipe."""
    return {"root": str(root / "genuine"), "forgeries": str(root / "forged")}


def load_index(root: Path) -> ImageIndex:
    """The genuine signatures of `root/genuine` with the skilled forgeries of `root/forged`."""
    return scan_folder(root / "genuine", root / "forged")


def make_pairs(index: ImageIndex, split: Split, seed: int, per_writer: int | None) -> tuple[PairSet, PairSet]:
    """The validation pairs ("val") of `split`'s validation writers and the test pairs per impostor
    kind of its test writers."""
    val = writer_pairs(index, split.val, seed, per_writer).only("val")
    return val, writer_pairs(index, split.test, seed, per_writer).only(*KINDS)


def make_fold(args: Any, index: ImageIndex, k: int, test_ids: tuple[str, ...], writers: list[str]) -> Fold:
    """Fold `k`: its split, validation pairs ("val"), test pairs per impostor kind, training data."""
    split = fold_split(writers, test_ids, 2 if args.smoke else VAL_WRITERS, args.seed + k)
    per_writer = SMOKE_IMAGES_PER_WRITER if args.smoke else None
    val, test = make_pairs(index, split, args.seed + k, per_writer)
    return Fold(
        k, split, val, test, index, training_data(args.data_root), args.work_dir / NAME / f"fold{k + 1}"
    )


def run_fold(args: Any, index: ImageIndex, k: int, test_ids: tuple[str, ...], writers: list[str]) -> dict:
    """Train and evaluate every method on fold `k`."""
    fold = make_fold(args, index, k, test_ids, writers)
    counts = {kind: fold.test.sets[kind].counts for kind in KINDS}
    return compare_on_fold(args, PRESET, fold, counts, baselines={"background": BackgroundScorer()})


def flat(result: dict[str, Any], counts: tuple[int, ...] = ()) -> dict[str, float]:
    """One method's fold result as `<kind>_<metric>` columns (FAR and FRR at the validation
    threshold included) plus training time (and the references')."""
    out = {
        f"{kind}_{key}": result[kind][key]
        for kind in KINDS
        for key in ("eer", "auc", "tar@far=0.01", "accuracy", "far", "frr")
    }
    return {**out, "train_time_s": result["train_time_s"], **reference_flat(result, counts, KINDS)}


def columns() -> list[tuple[str, str, str]]:
    """(flat key, header, format) of the table columns."""
    cols = [
        (f"{kind}_{key}", f"{kind} {head}", kind_fmt) for kind in KINDS for key, head, kind_fmt in METRICS
    ]
    return [*cols, ("train_time_s", "train s", "s")]


def tables(folds: list[dict[str, Any]], summary: dict[str, Any], counts: tuple[int, ...]) -> str:
    """Summary (mean ± std over folds) and per-fold markdown tables, then the references table."""
    c = folds[0]["test_pairs"]
    title = (
        f"CEDAR signatures: writer-independent folds ({len(folds)} run); test pairs per fold: "
        f"{c['skilled']['genuine']} genuine, {c['skilled']['impostor']} skilled, "
        f"{c['random']['impostor']} random"
    )
    out = fold_tables(title, folds, summary, columns(), LABELS, flat)
    return out + references_section("CEDAR", summary, LABELS, counts)


def references_section(
    dataset: str, summary: dict[str, Any], labels: dict[str, str], counts: tuple[int, ...]
) -> str:
    """The references table of a signature benchmark, after a blank line ("" without `--references`)."""
    if not counts:
        return ""
    title = (
        f"{dataset} with R enrolled genuine signatures per test writer: the other genuine signatures "
        "are queries against every test writer (random), the writer's forgeries against it (skilled); "
        "thresholds per rule and R calibrated on the validation writers"
    )
    return "\n\n" + reference_table(title, summary, labels, counts, KINDS)


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], FOLDS, references=REFERENCES)
    args = parse_args(parser, "CEDAR", ("genuine", "forged"), PRESET, root="genuine", forgeries="forged")
    counts = reference_counts(args)
    index = load_index(args.data_root)
    keys = [key for key, _, _ in columns()] + [f"{kind}_tar@far=0.01" for kind in KINDS]
    keys += list(reference_flat({}, counts, KINDS))
    folds, summary, protocol = run_identity_folds(
        args, index, FOLDS, SMOKE_WRITERS, run_fold, partial(flat, counts=counts), keys, "writers"
    )
    protocol.update(threshold_rule=THRESHOLD_RULE, references=list(counts))
    write_protocol_results(args, NAME, protocol, summary, tables(folds, summary, counts), folds=folds)


if __name__ == "__main__":
    run_main(main)

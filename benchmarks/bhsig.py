"""BHSig260-Hindi signatures: SigNet's writer-independent protocol, 100 writers to train, 60 to test.

Each seeded split draws 60 of the 160 writers as test writers; of the other 100, a seeded subset of
10 serves only as validation writers (decision threshold, best epoch) and 90 train, with their
skilled forgeries as negatives. Test pairs, per test writer, as SigNet counts them: every pair of
the writer's genuine signatures (276 for 24) against every genuine-forgery pair (720 for 24 x 30);
random impostors = genuine signatures of two different test writers, sampled to as many pairs as
there are genuine pairs. Reported per impostor kind: EER, AUC, TAR at FAR = 1%, and accuracy, FAR
and FRR at the validation threshold (the EER point of the validation writers' pairs; SigNet
reports accuracy 84.64% with FAR = FRR = 15.36% on this protocol). The deployed protocol too: R
enrolled genuine signatures per test writer (1, 5, 12: Hafemann et al.'s 12) with every fusion
rule and the writer-dependent SVM. Beside ours, at our measured wall time of each split: the
pytorch/examples and pytorch-metric-learning recipes and SigNet's recipe rebuilt from the library's
parts (peers.py), and the background grey level as a floor.

    python benchmarks/bhsig.py ../shared/data/bhsig260-hindi [--folds 3] [--set epochs=12] [--smoke]
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from cedar import (
    KINDS,
    BackgroundScorer,
    columns,
    flat,
    load_index,
    make_pairs,
    references_section,
    training_data,
)
from common import (
    base_parser,
    fold_split,
    fold_tables,
    mean_std,
    parse_args,
    reference_counts,
    reference_flat,
    run_main,
    smoke_sample,
    write_protocol_results,
)
from peers import PEERS, RECIPES, Fold, compare_on_fold

from siamese.data import ImageIndex

NAME = "bhsig"
PRESET = "signature"
SPLITS = 3
TEST_WRITERS = 60
VAL_WRITERS = 10
SMOKE_WRITERS = 13  # 3 test, 2 validation, 8 training (a 32-image batch of 4 per class needs 8)
SMOKE_IMAGES_PER_WRITER = 8
THRESHOLD_RULE = "EER on validation writers' genuine + skilled + random pairs"
REFERENCES = "1,5,12"
PUBLISHED = {"SigNet (Dey et al. 2017), published": {"skilled_accuracy": 0.8464, "skilled_far": 0.1536}}
LABELS = {
    "ours": "siamese (ours)",
    **PEERS,
    **RECIPES,
    "background": "background grey level only (no training)",
}


def writer_split(writers: list[str], k: int, seed: int, n_test: int) -> tuple[str, ...]:
    """The test writers of split `k`: `n_test` of `writers` drawn with seed `seed + k`."""
    order = np.random.default_rng(seed + k).permutation(len(writers))
    return tuple(sorted(writers[i] for i in order[:n_test]))


def make_fold(args: Any, index: ImageIndex, k: int, writers: list[str]) -> Fold:
    """Split `k`: 60 test writers (3 with `--smoke`), 10 validation writers of the rest, pairs, data."""
    n_test, n_val = (3, 2) if args.smoke else (TEST_WRITERS, VAL_WRITERS)
    split = fold_split(writers, writer_split(writers, k, args.seed, n_test), n_val, args.seed + k)
    per_writer = SMOKE_IMAGES_PER_WRITER if args.smoke else None
    val, test = make_pairs(index, split, args.seed + k, per_writer)
    run_dir = args.work_dir / NAME / f"split{k + 1}"
    return Fold(k, split, val, test, index, training_data(args.data_root), run_dir)


def split_columns() -> list[tuple[str, str, str]]:
    """cedar's columns plus the skilled FAR and FRR at the validation threshold."""
    cols = columns()
    extra = [(f"skilled_{m}", f"skilled {m.upper()} % (val thr)", "pct") for m in ("far", "frr")]
    return [*cols[:-1], *extra, cols[-1]]


def tables(folds: list[dict[str, Any]], summary: dict[str, Any], counts: tuple[int, ...]) -> str:
    """Summary (mean ± std over splits), per-split tables, the published figures, references."""
    c, split = folds[0]["test_pairs"], folds[0]["split"]
    title = (
        f"BHSig260-Hindi: writer-independent {len(split['train']) + len(split['val'])}/{len(split['test'])} "
        f"writer splits ({len(folds)} run); test pairs per split: {c['skilled']['genuine']} genuine, "
        f"{c['skilled']['impostor']} skilled, {c['random']['impostor']} random"
    )
    out = fold_tables(title, folds, summary, split_columns(), LABELS, flat, unit="split")
    published = "\n".join(
        f"- {name}: skilled accuracy {v['skilled_accuracy']:.2%}, FAR = FRR = {v['skilled_far']:.2%}"
        for name, v in PUBLISHED.items()
    )
    out += f"\n\nPublished on the same protocol (one split, not measured here):\n\n{published}"
    return out + references_section("BHSig260-Hindi", summary, LABELS, counts)


def main() -> None:
    parser = base_parser(
        __doc__.split("\n")[0],
        SPLITS,
        folds_help=f"seeded 100/60 writer splits to run (default {SPLITS})",
        references=REFERENCES,
    )
    parser.set_defaults(peers="pairbce,pml,signet")
    args = parse_args(parser, "BHSig260", ("genuine", "forged"), PRESET, root="genuine", forgeries="forged")
    counts = reference_counts(args)
    index = load_index(args.data_root)
    writers = smoke_sample(list(index.identities), SMOKE_WRITERS, args)
    baselines = {"background": BackgroundScorer()}
    folds = []
    for k in range(1 if args.smoke else args.folds):
        fold = make_fold(args, index, k, writers)
        pairs = {kind: fold.test.sets[kind].counts for kind in KINDS}
        folds.append(compare_on_fold(args, PRESET, fold, pairs, baselines=baselines))
    keys = [key for key, _, _ in split_columns()] + [f"{kind}_tar@far=0.01" for kind in KINDS]
    keys += ["random_far", "random_frr"]
    keys += list(reference_flat({}, counts, KINDS))
    flatten = partial(flat, counts=counts)
    summary = {m: mean_std([flatten(f["methods"][m]) for f in folds], keys) for m in folds[0]["methods"]}
    protocol = {
        "splits_run": len(folds),
        "test_writers": len(folds[0]["split"]["test"]),
        "val_writers": len(folds[0]["split"]["val"]),
        "train_writers": len(folds[0]["split"]["train"]),
        "threshold_rule": THRESHOLD_RULE,
        "references": list(counts),
        "published": PUBLISHED,
    }
    write_protocol_results(args, NAME, protocol, summary, tables(folds, summary, counts), folds=folds)


if __name__ == "__main__":
    run_main(main)

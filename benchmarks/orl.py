"""ORL / AT&T faces: identity-disjoint 4-fold face verification, our recipe against two peers.

Each fold holds out 10 of the 40 people as test identities and trains on the other 30, of which a
seeded subset of 6 only serves as validation (decision threshold, best epoch). Test pairs are ALL
pairs among the 100 held-out images: 450 genuine and 4500 impostor. Reported per fold and as
mean ± std: EER, AUC, TAR at FAR = 1%, accuracy at the validation threshold (EER rule on all pairs of
the validation people, the same rule for every method) and training wall time. The peers
(see peers.py) get the same split, test pairs and wall-clock budget (our measured training time).

    python benchmarks/orl.py ../shared/data/att_faces [--set epochs=30] [--folds 1] [--smoke]
"""

from __future__ import annotations

from functools import partial
from typing import Any

from common import (
    PairSet,
    all_pairs,
    base_parser,
    fold_split,
    fold_tables,
    genuine_paths,
    parse_args,
    reference_counts,
    reference_flat,
    reference_table,
    run_identity_folds,
    run_main,
    write_protocol_results,
)
from peers import PEERS, Fold, compare_on_fold

from siamese.data import scan_folder

NAME = "orl"
PRESET = "face"
FOLDS = 4
VAL_PEOPLE = 6
SMOKE_PEOPLE = 14  # 4 test, 2 validation, 8 training (a 32-image batch of 4 per class needs 8)
THRESHOLD_RULE = "EER on all validation-people pairs"
METRICS = (("eer", "EER %", "pct"), ("auc", "AUC", "auc"), ("tar@far=0.01", "TAR@FAR=1% %", "pct"))
METRICS += (("accuracy", "accuracy % (val thr)", "pct"), ("train_time_s", "train s", "s"))
KEYS = [key for key, _, _ in METRICS]
REFERENCES = "1,3,5"  # enrolled images per test person (of 10): at R = 5, 5 queries per person
LABELS = {"ours": "siamese (ours)", **PEERS}


def pair_set(index: Any, identities: tuple[str, ...], name: str) -> PairSet:
    """All pairs among the images of `identities`, as the pair set `name`."""
    paths, labels = genuine_paths(index, identities)
    return PairSet(paths, {name: all_pairs(labels)}, identities=labels)


def make_fold(args: Any, index: Any, k: int, test_ids: tuple[str, ...], people: list[str]) -> Fold:
    """Fold `k`: its split, validation pairs ("val") and test pairs ("all"), training data."""
    split = fold_split(people, test_ids, 2 if args.smoke else VAL_PEOPLE, args.seed + k)
    val, test = pair_set(index, split.val, "val"), pair_set(index, split.test, "all")
    return Fold(
        k, split, val, test, index, {"root": str(args.data_root)}, args.work_dir / NAME / f"fold{k + 1}"
    )


def run_fold(args: Any, index: Any, k: int, test_ids: tuple[str, ...], people: list[str]) -> dict[str, Any]:
    """Train and evaluate every method on fold `k`."""
    fold = make_fold(args, index, k, test_ids, people)
    return compare_on_fold(args, PRESET, fold, fold.test.sets["all"].counts)


def flat(result: dict[str, Any], counts: tuple[int, ...] = ()) -> dict[str, float]:
    """One method's fold result as the table's metric columns (and the references' columns)."""
    refs = reference_flat(result, counts, ("random",))
    return {**result["all"], "train_time_s": result["train_time_s"], **refs}


def tables(folds: list[dict[str, Any]], summary: dict[str, Any], counts: tuple[int, ...]) -> str:
    """Summary (mean ± std over folds) and per-fold markdown tables, then the references table."""
    pairs = folds[0]["test_pairs"]
    title = (
        f"ORL (AT&T faces): identity-disjoint folds ({len(folds)} run), all test pairs per fold "
        f"({pairs['genuine']} genuine / {pairs['impostor']} impostor)"
    )
    out = fold_tables(title, folds, summary, METRICS, LABELS, flat)
    if not counts:
        return out
    title = (
        "ORL with R enrolled images per test person: the other images are queries against every test "
        "person (thresholds per rule and R calibrated on the validation people)"
    )
    return out + "\n\n" + reference_table(title, summary, LABELS, counts, ("random",))


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], FOLDS, references=REFERENCES)
    args = parse_args(parser, "ORL/AT&T faces", preset=PRESET, root="")
    counts = reference_counts(args)
    index = scan_folder(args.data_root)
    flatten = partial(flat, counts=counts)
    keys = [*KEYS, *reference_flat({}, counts, ("random",))]
    folds, summary, protocol = run_identity_folds(
        args, index, FOLDS, SMOKE_PEOPLE, run_fold, flatten, keys, "people"
    )
    protocol.update(threshold_rule=THRESHOLD_RULE, references=list(counts))
    write_protocol_results(args, NAME, protocol, summary, tables(folds, summary, counts), folds=folds)


if __name__ == "__main__":
    run_main(main)

"""The `adaptive` fusion rule's spread weight, scored with the models of an ORL or CEDAR benchmark run.

`adaptive` is the distance to the identity's mean template minus `w` times its reference spread
(`siamese.evaluation.fusion`); `w = 0` is the plain `template` rule. For every fold that
`benchmarks/orl.py` or `benchmarks/cedar.py` trained (our model in `<work-dir>/<orl|cedar>/fold<k>`),
this embeds the fold's validation and test identities and reports the R-reference protocol's EER
(random, and skilled forgeries for CEDAR) for each weight and R, mean ± std over the folds, with the
references drawn as the benchmark draws them. Choose the weight on the VALIDATION rows (identities
that never touch the test ones); the test rows show what a choice gives. No training.

    python benchmarks/spread_weight.py ../shared/data/cedar --dataset cedar --work-dir runs/benchmarks
    python benchmarks/spread_weight.py ../shared/data/att_faces --dataset orl --work-dir runs/benchmarks
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from common import (
    RESULTS_DIR,
    Enrolled,
    ModelScorer,
    PairSet,
    markdown_table,
    mean_std,
    require_dir,
    run_main,
    write_results,
)

from siamese.data import Split
from siamese.errors import DataError
from siamese.evaluation import as_scores, eer
from siamese.evaluation.references import choose_references, reference_trials
from siamese.inference import EmbeddingModel
from siamese.runs import RunDir

WEIGHTS = "0,0.25,0.5,0.75,1"
COUNTS = {"cedar": "3,5,10", "orl": "3,5"}
PARTS = ("val", "test")


def pair_sets(
    dataset: str, root: Path, split: dict[str, list[str]], k: int, smoke: bool
) -> dict[str, PairSet]:
    """The fold's validation and test images, as the benchmark builds them (`--smoke`: as its smoke run)."""
    if dataset == "cedar":
        from cedar import SMOKE_IMAGES_PER_WRITER, load_index, writer_pairs

        index, per_writer = load_index(root), SMOKE_IMAGES_PER_WRITER if smoke else None
        return {part: writer_pairs(index, tuple(split[part]), k, per_writer) for part in PARTS}
    from orl import pair_set

    from siamese.data import scan_folder

    index = scan_folder(root)
    return {part: pair_set(index, tuple(split[part]), part) for part in PARTS}


def fold_eers(
    data: Enrolled, distance: str, counts: list[int], weights: list[float], seed: int
) -> dict[str, float]:
    """`<kind>_R<R>_w<w>` -> EER of one fold's identities (kinds: random, and skilled with forgeries)."""
    out = {}
    for count in counts:
        enrolment = choose_references(data.identities, count, seed)
        for w in weights:
            trials = reference_trials(
                data.features,
                data.identities,
                enrolment,
                "adaptive",
                distance,
                data.forgeries,
                spread_weight=w,
            )
            for kind in ("random", "skilled") if data.forgeries is not None else ("random",):
                d, same = trials.subset(kind)
                out[f"{kind}_R{count}_w{w:g}"] = eer(as_scores(d), same)[0]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data_root", type=Path, help="the benchmark's dataset root (read-only)")
    p.add_argument(
        "--dataset", choices=sorted(COUNTS), required=True, help="which benchmark trained the models"
    )
    p.add_argument(
        "--work-dir", type=Path, default=Path("runs") / "benchmarks", help="the benchmark's --work-dir"
    )
    p.add_argument("--weights", default=WEIGHTS, help=f"comma-separated spread weights (default {WEIGHTS})")
    p.add_argument("--references", default=None, help="comma-separated R (default 3,5,10 CEDAR; 3,5 ORL)")
    p.add_argument(
        "--seed", type=int, default=0, help="the benchmark's --seed (reference draws: seed + fold)"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR,
        help="where <name>.json/.md go (default: benchmarks/results/experiments/<name>/, time-stamped)",
    )
    p.add_argument("--smoke", action="store_true", help="score the benchmark's --smoke run (R = 3 only)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    require_dir(args.data_root, f"{args.dataset} data")
    weights = [float(w) for w in args.weights.split(",")]
    counts = [int(c) for c in (args.references or ("3" if args.smoke else COUNTS[args.dataset])).split(",")]
    runs = sorted((args.work_dir / args.dataset).glob("fold*"), key=lambda r: int(r.name[4:]))
    runs = [r for r in runs if RunDir(r).split_file.is_file()]
    if not runs:
        raise DataError(
            f"no fold runs under {args.work_dir / args.dataset}: run benchmarks/{args.dataset}.py first"
        )
    folds: dict[str, list[dict[str, float]]] = {part: [] for part in PARTS}
    for run in runs:
        k = int(run.name[4:]) - 1
        model = EmbeddingModel.from_checkpoint(run, device=args.device)
        scorer = ModelScorer(model)
        split = Split.from_json(RunDir(run).split_file).to_dict()
        sets = pair_sets(args.dataset, args.data_root, split, k, args.smoke)
        for part, pairs in sets.items():
            data = pairs.enrolment(scorer.features(pairs.paths))
            folds[part].append(fold_eers(data, model.distance, counts, weights, args.seed + k))
        print(f"{run.name}: {len(sets['test'].paths)} test images", flush=True)
    summary = {part: mean_std(rows, list(rows[0])) for part, rows in folds.items()}
    kinds = ("skilled", "random") if args.dataset == "cedar" else ("random",)
    heads = ["identities", "R", *(f"{kind} EER %, w = {w:g}" for kind in kinds for w in weights)]
    rows = [
        [
            part,
            count,
            *(
                f"{100 * summary[part][f'{kind}_R{count}_w{w:g}']['mean']:.2f}"
                for kind in kinds
                for w in weights
            ),
        ]
        for part in PARTS
        for count in counts
    ]
    title = (
        f"### adaptive fusion: spread weight w on {args.dataset.upper()}, {len(runs)} folds "
        "(mean EER; w = 0 is the template rule)"
    )
    payload: dict[str, Any] = {"weights": weights, "references": counts, "summary": summary, "folds": folds}
    write_results(
        args.out,
        f"spread_weight_{args.dataset}",
        payload,
        title + "\n\n" + markdown_table(heads, rows),
        args.smoke,
    )


if __name__ == "__main__":
    run_main(main)

"""Open-set 1:N identification on real faces: CMC, FNIR at FPIR and the FPIR strangers actually get.

Protocol (`siamese.galleries.protocol.identification_protocol`, the code behind `siamese evaluate
--protocol identify`): per seeded split of the people, half are enrolled with R references (a seeded
choice; their other images are the mated searches), a quarter are calibration strangers (their
searches set the threshold at each FPIR, as `siamese enroll` does) and a quarter are fresh strangers
(their searches measure the FPIR reached on people no threshold saw). Every fusion rule scores
every enrolled identity exactly. Figures are means ± std over `--seeds` splits.

Sets (`DATA` is the shared data folder holding `att_faces/` and `lfw/`):

- **ORL** (`att_faces/`, 40 people x 10): 20 enrolled, 10 + 10 strangers; R = 1 and 5.
- **LFW**: the people of `--lfw-run`'s test split (people it never trained or validated on) with
  two images or more; R = 1 and 5 (R = 5: the people with six images or more).
- **Omniglot** (when `omniglot/background/` exists): the 5% of background characters
  `omniglot.py` holds out (20 drawers each), with the omniglot preset trained on the split's
  training characters (or `--omniglot-run`); pml gets the same characters and our training time.

Methods: ours, the model of `--lfw-run` (a face model trained on LFW with identity labels - e.g. the
`face-wild` run of `lfw.py --view 1` - applied as is: ORL's people are not in LFW), ORL also with the
whole image as input (`face_transfer.whole_image`: ORL photos are already crops); and the
pytorch-metric-learning recipe (peers.py) trained for `--pml-budget` seconds on the run's *training*
people only (so its test people are unseen too), scored the same way.

    python benchmarks/identify.py ../shared/data [--lfw-run runs/benchmarks/lfw-view1-devtest] \
        [--pml-budget 300] [--seeds 5] [--references 1,5]

Without `--lfw-run` the script trains one first (`face_transfer.train_on_lfw`: `--lfw-minutes` of the
face-wild preset, 150 validation and 50 test people held out, so LFW's open set is those 50).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import omniglot
from common import (
    base_parser,
    fmt_mean_std,
    mean_std,
    parse_args,
    run_main,
    train_ours,
    write_protocol_results,
)
from face_transfer import SMOKE_OPTIONS, pml_on_people, train_on_lfw, whole_image
from peers import PeerSetup, train_peer

from siamese.data import ImageIndex, Split, scan_folder
from siamese.evaluation.identification import FPIRS
from siamese.galleries.protocol import identification_protocol
from siamese.inference import EmbeddingModel

logger = logging.getLogger("benchmarks.identify")

NAME = "identify"
FUSIONS = ("min", "mean", "template", "adaptive", "svm")
SMOKE_PEOPLE = 16  # people per set in a smoke run
LABELS = {
    "ours": "ours (faces: the LFW face-wild run as is; Omniglot: the omniglot preset)",
    "ours_whole": "ours, whole ORL image",
    "pml": "pytorch-metric-learning (same training data)",
}

Embedder = Callable[[Sequence[str]], np.ndarray]
Method = tuple[Embedder, str]
"""How a method embeds images, and its distance."""


def _people(index: ImageIndex, names: Sequence[str], least: int = 2) -> list[str]:
    by = index.by_identity()
    return sorted(n for n in names if len(by.get(n, ())) >= least)


def _images(index: ImageIndex, people: Sequence[str]) -> tuple[list[str], list[str]]:
    chosen = set(people)
    records = [r for r in index.records if r.identity in chosen and not r.forgery]
    return [r.path for r in records], [r.identity for r in records]


def lfw_model(args: argparse.Namespace, lfw: ImageIndex) -> Path:
    """`--lfw-run`; else `face_transfer.train_on_lfw` (`--lfw-minutes` of face-wild, 150 + 50 LFW
    people held out); with --smoke, a one-epoch run on a few LFW people."""
    if args.lfw_run is not None:
        return args.lfw_run
    if not args.smoke:
        args.lfw_images = args.lfw
        return train_on_lfw(args)
    people = _people(lfw, lfw.identities)
    rng = np.random.default_rng(args.seed)
    held = rng.choice(people, SMOKE_PEOPLE + 4, replace=False).tolist()
    train = [p for p in rng.choice(people, 24, replace=False).tolist() if p not in held]
    split = Split(train=sorted(train), val=sorted(held[:4]), test=sorted(held[4:]))
    out = args.work_dir / NAME / "lfw"
    train_ours("face-wild", split, out, {"seed": args.seed, **SMOKE_OPTIONS}, args.device, root=str(args.lfw))
    return out


def pml_embedder(
    args: argparse.Namespace, lfw: ImageIndex, train_people: Sequence[str]
) -> tuple[Embedder, str]:
    """The pml recipe trained on the LFW run's training people (2+ images) at the face-wild input."""
    people = _people(lfw, train_people)
    result = pml_on_people(args, lfw, people)
    logger.info("pml: %.0f s, %d steps on %d LFW people", result.train_time_s, result.steps, len(people))
    return result.scorer.features, str(result.scorer.reference_distance)


def evaluate_set(
    embed: Embedder, distance: str, paths: list[str], labels: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """The protocol over `--seeds` splits of one embedded set: per R and fusion, each seed's report."""
    emb = embed(paths)  # (N, D)
    _, per_person = np.unique(labels, return_counts=True)
    counts = [c for c in args.counts if (per_person > c).sum() >= 8]  # 4 enrolled, 2 + 2 strangers
    if len(counts) < len(args.counts):
        logger.warning("too few people with R + 1 images for R = %s", sorted(set(args.counts) - set(counts)))
    runs = [
        identification_protocol(emb, labels, distance, counts, FUSIONS, seed=args.seed + s)
        for s in range(args.seeds)
    ]
    return {"images": len(paths), "people": len(set(labels)), "distance": distance, "seeds": runs}


def flat(report: dict[str, Any]) -> dict[str, float]:
    """One seed's entry as flat numbers (CMC, FNIR and fresh FPIR at each FPIR, N)."""
    out = {"N": float(report["gallery_size"]), **{k: v for k, v in report["cmc"].items()}}
    for rate in FPIRS:
        point = report["open_set"][f"fpir={rate:g}"]
        out[f"fnir@{rate:g}"] = point["fnir"]
        out[f"fpir_fresh@{rate:g}"] = point["fpir_fresh"]
    return out


def summarise(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """set -> method -> R -> fusion -> mean/std of `flat` over the seeds."""
    summary: dict[str, Any] = {}
    for set_name, methods in results.items():
        for method, res in methods.items():
            for count in res["seeds"][0]["counts"]:
                for fusion in FUSIONS:
                    rows = [flat(run["counts"][count][fusion]) for run in res["seeds"]]
                    stats = mean_std(rows, list(rows[0]))
                    summary.setdefault(set_name, {}).setdefault(method, {}).setdefault(count, {})[fusion] = (
                        stats
                    )
    return summary


def tables(summary: dict[str, Any], results: dict[str, Any]) -> str:
    lines = []
    keys = ["rank-1", "rank-5", *(f"fnir@{r:g}" for r in FPIRS)]
    for set_name, methods in summary.items():
        lines += [f"### {set_name}", ""]
        lines.append(
            "| method | R | fusion | N | rank-1 | rank-5 | "
            + " | ".join(f"FNIR @ FPIR {r:g} (fresh FPIR)" for r in FPIRS)
            + " |"
        )
        lines.append("|" + "---|" * (6 + len(FPIRS)))
        for method, per_count in methods.items():
            for count, per_fusion in per_count.items():
                for fusion, stats in per_fusion.items():
                    cells = [fmt_mean_std(stats[k]) for k in keys[:2]]
                    for r in FPIRS:
                        fresh = stats[f"fpir_fresh@{r:g}"]["mean"]
                        cells.append(f"{fmt_mean_std(stats[f'fnir@{r:g}'])} ({fresh:.1%})")
                    n = int(stats["N"]["mean"])
                    lines.append(
                        f"| {LABELS[method]} | {count} | {fusion} | {n} | " + " | ".join(cells) + " |"
                    )
        any_method = next(iter(results[set_name].values()))
        lines += [
            "",
            f"{any_method['people']} people, {any_method['images']} images; mean ± std over "
            f"{len(any_method['seeds'])} seeded splits (half enrolled, a quarter calibrating, "
            "a quarter fresh).",
            "",
        ]
    return "\n".join(lines)


def omniglot_methods(args: argparse.Namespace) -> tuple[tuple[list[str], list[str]], dict[str, Method], Path]:
    """Omniglot's held-out background characters (`omniglot.character_split`, never trained on),
    ours (`--omniglot-run`, else the omniglot preset trained here on the split's training
    characters) and pml on the same training characters for our measured training time."""
    background = args.data_root / "omniglot" / "background"
    index = scan_folder(background)
    if args.omniglot_run is not None:
        run, split, train_s = args.omniglot_run, Split.from_json(args.omniglot_run / "split.json"), None
    else:
        characters = list(index.identities)
        if args.smoke:  # 160 characters: 8 held out
            characters = sorted(
                np.random.default_rng(args.seed).choice(characters, 160, replace=False).tolist()
            )
        split = omniglot.character_split(characters, args.seed)
        run = args.work_dir / NAME / "omniglot"
        overrides = {"seed": args.seed, **(omniglot.SMOKE_OPTIONS if args.smoke else {})}
        if args.omniglot_minutes and not args.smoke:
            overrides["minutes"] = args.omniglot_minutes
        ours = train_ours("omniglot", split, run, overrides, args.device, root=str(background))
        train_s = ours.train_time_s
    model = EmbeddingModel.from_checkpoint(run, device=args.device)
    methods: dict[str, Method] = {"ours": (model.embedder(batch_size=256), model.distance)}
    budget = 4.0 if args.smoke else (train_s or args.pml_budget)
    if args.pml_budget > 0:
        size, channels = model.preprocessing.size, model.preprocessing.channels
        batch = 8 if args.smoke else 64
        setup = PeerSetup(
            index.subset(split.train), "omniglot", size, channels, batch, args.seed, args.device
        )
        result = train_peer("pml", setup, budget)
        methods["pml"] = (result.scorer.features, str(result.scorer.reference_distance))
    return _images(index, split.test), methods, Path(run)


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], 1, peers=False)
    parser.add_argument(
        "--lfw-run",
        type=Path,
        default=None,
        help="LFW-trained run of ours (default: train one for --lfw-minutes)",
    )
    parser.add_argument(
        "--lfw-minutes", type=float, default=5.0, help="training time of the LFW run when none is given"
    )
    parser.add_argument(
        "--omniglot-run",
        type=Path,
        default=None,
        help="Omniglot run of ours (default: train the omniglot preset)",
    )
    parser.add_argument(
        "--omniglot-minutes",
        type=float,
        default=None,
        help="plan our Omniglot training for these minutes (default: the preset's epochs); pml gets our time",
    )
    parser.add_argument(
        "--pml-budget", type=float, default=300.0, help="seconds of pml training on LFW (0: no pml)"
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeded identity splits per set")
    parser.add_argument("--sets", default="ORL,LFW,Omniglot", help="sets to run, comma-separated")
    parser.add_argument("--references", default="1,5", help="reference counts R, comma-separated")
    args = parse_args(parser, "identification", folders=("att_faces", "lfw/images"), preset="face")
    args.counts = [int(c) for c in args.references.split(",")]
    args.lfw = args.data_root / "lfw" / "images"
    if args.smoke:
        args.seeds = 1
    wanted = {name.strip().lower() for name in args.sets.split(",")}
    sets: dict[str, tuple[tuple[list[str], list[str]], dict[str, Method]]] = {}
    run = omniglot_run = None
    if wanted & {"orl", "lfw"}:
        lfw = scan_folder(args.lfw)
        run = lfw_model(args, lfw)
        model = EmbeddingModel.from_checkpoint(run, device=args.device)
        split = Split.from_json(Path(run) / "split.json")
        few = SMOKE_PEOPLE if args.smoke else None
        faces: dict[str, Method] = {"ours": (model.embedder(batch_size=256), model.distance)}
        if args.pml_budget > 0:
            faces["pml"] = pml_embedder(args, lfw, split.train)
        if "orl" in wanted:
            orl = scan_folder(args.data_root / "att_faces")
            whole = whole_image(EmbeddingModel.from_checkpoint(run, device=args.device)).embedder(
                batch_size=256
            )
            sets["ORL"] = (
                _images(orl, orl.identities[:few]),
                {**faces, "ours_whole": (whole, model.distance)},
            )
        if "lfw" in wanted:
            sets["LFW"] = (_images(lfw, _people(lfw, split.test)[:few]), faces)
    if "omniglot" in wanted and (args.data_root / "omniglot" / "background").is_dir():
        images, methods, omniglot_run = omniglot_methods(args)
        sets["Omniglot"] = (images, methods)
    results: dict[str, dict[str, Any]] = {}
    for set_name, ((paths, labels), methods) in sets.items():
        for method, (embed, distance) in methods.items():
            logger.info("%s: %s on %d images", set_name, method, len(paths))
            results.setdefault(set_name, {})[method] = evaluate_set(embed, distance, paths, labels, args)
    summary = summarise(results)
    protocol = {
        "sets": {k: {"people": len(set(v[0][1])), "images": len(v[0][0])} for k, v in sets.items()},
        "lfw_run": None if run is None else str(run),
        "omniglot_run": None if omniglot_run is None else str(omniglot_run),
        "pml_budget_s": args.pml_budget,
        "seeds": args.seeds,
        "references": args.counts,
        "fusions": FUSIONS,
        "fpirs": FPIRS,
    }
    write_protocol_results(args, NAME, protocol, summary, tables(summary, results), results=results)


if __name__ == "__main__":
    run_main(main)

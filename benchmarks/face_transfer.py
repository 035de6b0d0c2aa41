"""Face models that carry to small face sets: LFW-trained starts on the ORL protocol.

The folds, splits, validation and test pairs are exactly those of `orl.py` (ORL / AT&T faces, 4
identity-disjoint folds of 10 test people, 6 validation people; thresholds from the validation
people, EER rule). Per fold, beside our recipe from scratch (the `face` preset):

- **lfw as is**: `--lfw-run` (a model trained on LFW with identity labels, e.g. the `face-wild`
  run of `lfw.py --view 1`; without it, the script trains one: the `face-wild` preset on the LFW
  people but 50 (its test) and 150 (validating), for `--lfw-minutes`) applied with no ORL
  training, through its own preprocessing; and the same model with the whole ORL image as input
  (`lfw whole image`: ORL photos are already face crops, where the LFW preprocessing keeps the
  middle of a wide photo).
- **lfw + fine-tune**: our recipe on the fold's ORL training people started from `--lfw-run`
  (`init`: its architecture, the input fitted from colour to grayscale), at the preset's epochs.
- **ssl lfw + fine-tune**: the same started from `--ssl-run`, a self-supervised model pretrained
  on all LFW images without their labels (without it, the script runs `siamese pretrain
  LFW/images --preset face-wild --method simclr --batch-size 256 --minutes M`, M = `--ssl-minutes`).
- **pml lfw as is**: the pytorch-metric-learning recipe (peers.py) trained on LFW
  (`--pml-budget` seconds, every LFW person with two or more images) and applied to ORL as is.

Every method is scored as `orl.py` scores ours, with the R-reference protocol (R = 1, 3, 5).
ORL's people are not in LFW, so no model ever saw a test face.

    python benchmarks/face_transfer.py ../shared/data/att_faces --lfw-images ../shared/data/lfw/images \
        [--lfw-run RUN] [--ssl-run RUN] [--pml-budget 300] [--folds 4]
"""

from __future__ import annotations

import argparse
import functools
import logging
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import orl
from common import (
    ModelScorer,
    base_parser,
    evaluate_method,
    parse_args,
    reference_counts,
    require_dir,
    run_identity_folds,
    run_main,
    train_ours,
    write_protocol_results,
)
from peers import PeerResult, PeerSetup, ours_overrides, ours_record, train_peer

from siamese.data import PRESETS, ImageIndex, Split, get_transform, scan_folder
from siamese.inference import EmbeddingModel
from siamese.training.config import build_train_config
from siamese.training.pretrain import pretrain

logger = logging.getLogger("benchmarks.face_transfer")

NAME = "face_transfer"
LABELS = {
    "scratch": "ORL from scratch (face preset)",
    "lfw_as_is": "LFW model as is (no ORL training)",
    "lfw_whole": "LFW model as is, whole ORL image",
    "lfw_finetune": "LFW model + ORL fine-tune",
    "ssl_finetune": "self-supervised LFW + ORL fine-tune",
    "pml_as_is": "pytorch-metric-learning trained on LFW, as is",
}


def whole_image(model: EmbeddingModel) -> EmbeddingModel:
    """The model with its preset's centre crop turned off (the whole image reaches its input)."""
    pre = model.preprocessing
    model.transform = get_transform(replace(PRESETS[pre.preset], crop=1.0), False, pre.size, pre.channels)
    return model


SMOKE_PEOPLE_LFW = 40  # LFW people (2+ images) a smoke run trains and pretrains on
SMOKE_OPTIONS = {"epochs": 1, "samples_per_epoch": 64}


@functools.cache
def _lfw_index(images: Path) -> ImageIndex:
    return scan_folder(images)


def lfw_people(args: argparse.Namespace) -> tuple[ImageIndex, list[str]]:
    """LFW's index (scanned once) and its people with two or more images (with `--smoke`, a seeded
    few of them)."""
    index = _lfw_index(args.lfw_images)
    people = [p for p, images in index.by_identity().items() if len(images) >= 2]
    if args.smoke:
        people = sorted(
            np.random.default_rng(args.seed).choice(people, SMOKE_PEOPLE_LFW, replace=False).tolist()
        )
    return index, people


def train_on_lfw(args: argparse.Namespace) -> Path:
    """Our `face-wild` recipe on the LFW people for `--lfw-minutes`: 150 people with 2+ images
    validate and 50 more are its test people (a run needs some), everyone else trains."""
    index, people = lfw_people(args)
    rng = np.random.default_rng(args.seed)
    n_val, n_test = (4, 4) if args.smoke else (150, 50)
    held = rng.choice(people, size=n_val + n_test, replace=False).tolist()
    val, test = set(held[:n_val]), set(held[n_val:])
    everyone = people if args.smoke else list(index.identities)
    split = Split(train=[p for p in everyone if p not in val | test], val=sorted(val), test=sorted(test))
    options = SMOKE_OPTIONS if args.smoke else {"minutes": args.lfw_minutes}
    out = args.work_dir / NAME / "lfw"
    overrides = {"seed": args.seed, **options}
    train_ours("face-wild", split, out, overrides, args.device, root=str(args.lfw_images))
    return out


def pretrain_on_lfw(args: argparse.Namespace) -> Path:
    """simclr on the LFW images, no labels, for `--ssl-minutes`."""
    index, people = lfw_people(args)
    root: Path = args.lfw_images
    if args.smoke:  # a list file of the few people's images
        root = args.work_dir / NAME / "ssl-images.txt"
        root.parent.mkdir(parents=True, exist_ok=True)
        images = index.by_identity()
        root.write_text("".join(f"{index.records[i].path}\n" for p in people for i in images[p]))
    out = args.work_dir / NAME / "ssl"
    options = SMOKE_OPTIONS if args.smoke else {"minutes": args.ssl_minutes}
    config = build_train_config(
        "face-wild", root=str(root), method="simclr", batch_size=256, out=str(out), seed=args.seed, **options
    )
    pretrain(config)
    return out


def pml_on_people(args: argparse.Namespace, index: ImageIndex, people: list[str]) -> PeerResult:
    """The pml peer trained on these LFW people for `--pml-budget` seconds, at the face-wild input."""
    preset = PRESETS["face-wild"]
    setup = PeerSetup(
        index=index.subset(people),
        preset="face-wild",
        image_size=preset.image_size,
        channels=preset.channels,
        batch_size=8 if args.smoke else 64,
        seed=args.seed,
        device=args.device,
    )
    return train_peer("pml", setup, 4.0 if args.smoke else args.pml_budget)


def pml_on_lfw(args: argparse.Namespace) -> Any:
    """The pml peer trained on every LFW person with 2+ images, at the face-wild input."""
    return pml_on_people(args, *lfw_people(args)).scorer


def run_fold(
    args: argparse.Namespace, index: Any, k: int, test_ids: tuple[str, ...], people: list[str], pml: Any
):
    fold = orl.make_fold(args, index, k, test_ids, people)
    fold = replace(fold, run_dir=args.work_dir / NAME / f"fold{k + 1}")
    counts = reference_counts(args)
    evaluate = partial(evaluate_method, val=fold.val, test=fold.test, references=counts, seed=args.seed + k)
    methods: dict[str, Any] = {}

    def train(name: str, init: Path | None) -> dict[str, Any]:
        """Our `face` recipe on the fold's ORL people, from scratch or from `init`."""
        overrides = {**ours_overrides(args), **({"init": str(init)} if init is not None else {})}
        run = train_ours(
            orl.PRESET, fold.split, fold.run_dir / name, overrides, args.device, root=str(args.data_root)
        )
        return ours_record(run, evaluate)

    if "scratch" in args.methods:
        methods["scratch"] = train("scratch", None)
    if args.lfw_run is not None:
        model = EmbeddingModel.from_checkpoint(args.lfw_run, device=args.device)
        methods["lfw_as_is"] = {**evaluate(ModelScorer(model)), "train_time_s": 0.0}
        methods["lfw_whole"] = {**evaluate(ModelScorer(whole_image(model))), "train_time_s": 0.0}
        methods["lfw_finetune"] = train("lfw", args.lfw_run)
    if args.ssl_run is not None:
        methods["ssl_finetune"] = train("ssl", args.ssl_run)
    if pml is not None:
        methods["pml_as_is"] = {**evaluate(pml), "train_time_s": 0.0}
    enrolled = [m["references"].pop("references") for m in methods.values() if "references" in m]
    return {
        "fold": k + 1,
        "split": fold.split.to_dict(),
        "test_pairs": fold.test.sets["all"].counts,
        "val_pairs": fold.val.sets["val"].counts,
        **({"enrolled_references": enrolled[0]} if enrolled else {}),
        "methods": methods,
    }


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0], orl.FOLDS, peers=False, references=orl.REFERENCES)
    parser.add_argument("--lfw-run", type=Path, help="a model trained on LFW (run directory or checkpoint)")
    parser.add_argument("--ssl-run", type=Path, help="a model pretrained on LFW without labels")
    parser.add_argument(
        "--lfw-images", type=Path, help="LFW's images/ folder: the pml peer, and the runs not given"
    )
    parser.add_argument("--lfw-minutes", type=float, default=5.0, help="training on LFW when no --lfw-run")
    parser.add_argument("--ssl-minutes", type=float, default=5.0, help="pretraining on LFW when no --ssl-run")
    parser.add_argument(
        "--pml-budget", type=float, default=300.0, help="seconds of pml training on LFW (0: none)"
    )
    parser.add_argument("--methods", default="scratch", help="scratch, or none: the LFW starts only")
    args = parse_args(parser, "ORL/AT&T faces", preset=orl.PRESET, root="")
    args.methods = [m.strip() for m in args.methods.split(",")]
    if args.lfw_images is not None:
        require_dir(args.lfw_images, "LFW images folder")
        args.lfw_run = args.lfw_run or train_on_lfw(args)
        args.ssl_run = args.ssl_run or (pretrain_on_lfw(args) if args.ssl_minutes > 0 else None)
    pml = pml_on_lfw(args) if args.lfw_images is not None and args.pml_budget > 0 else None
    counts = reference_counts(args)
    index = scan_folder(args.data_root)
    flatten = partial(orl.flat, counts=counts)
    keys = [*orl.KEYS, *orl.reference_flat({}, counts, ("random",))]
    folds, summary, protocol = run_identity_folds(
        args, index, orl.FOLDS, orl.SMOKE_PEOPLE, partial(run_fold, pml=pml), flatten, keys, "people"
    )
    protocol.update(
        threshold_rule=orl.THRESHOLD_RULE,
        references=list(counts),
        lfw_run=args.lfw_run,
        ssl_run=args.ssl_run,
        pml_budget_s=args.pml_budget if pml is not None else None,
    )
    orl.LABELS.update(LABELS)
    markdown = orl.tables(folds, summary, counts).replace(
        "ORL (AT&T faces)", "ORL from LFW-trained starts", 1
    )
    write_protocol_results(args, NAME, protocol, summary, markdown, folds=folds)


if __name__ == "__main__":
    run_main(main)

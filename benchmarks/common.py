"""Shared pieces of the real-data benchmarks: CLI options, identity folds, exhaustive test pairs,
scoring, training our recipe, and writing result tables.

Every protocol follows the same shape: train on some identities, pick a decision threshold on the
pairs of *validation* identities (EER rule, the same rule for every method), then report metrics on
pairs of *test* identities that no method ever saw. Scores are "higher = more likely the same": a
peer's logit, or a distance turned into a score by `siamese.evaluation.as_scores`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from siamese.data import PRESETS, ImageIndex, Split
from siamese.errors import SiameseError
from siamese.evaluation import (
    as_scores,
    calibratable_count,
    calibrate_references,
    eer,
    far_key,
    reference_metrics,
    verification_report,
)
from siamese.evaluation.fusion import Distance
from siamese.evaluation.references import IMPOSTOR_KINDS as KINDS
from siamese.inference import EmbeddingModel, embed_files
from siamese.models.twin import pair_distance
from siamese.names import FUSIONS
from siamese.training.config import TrainConfig, build_train_config
from siamese.training.run import train

logger = logging.getLogger("benchmarks")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""The stored results: `canonical/` (behind the published tables), `experiments/<benchmark>/` (where
a result goes when `--out` is left at this folder), `smoke/` (git-ignored) and the generated INDEX.md."""
EMBED_BATCH = 64
TEST_FAR = 1e-2


# ----------------------------------------------------------------------------------------------- CLI


def parse_value(raw: str) -> Any:
    """A `--set` value: JSON when it parses (numbers, true/false/null, lists, dicts), else the string.

    >>> parse_value("3"), parse_value("1e-3"), parse_value("true"), parse_value("supcon")
    (3, 0.001, True, 'supcon')
    >>> parse_value('{"width": 32}')
    {'width': 32}
    """
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return tuple(value) if isinstance(value, list) else value


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """`["epochs=5", "loss=supcon"]` -> `{"epochs": 5, "loss": "supcon"}` (flat training options)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            sys.exit(f"--set must look like KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = parse_value(raw.strip())
    return out


def base_parser(
    description: str,
    folds: int,
    folds_help: str | None = None,
    budget_help: str = "peer training budget in seconds (default: our measured training time per fold)",
    peers: bool = True,
    work_dir: bool = True,
    references: str | None = None,
    fold_list: bool = False,
) -> argparse.ArgumentParser:
    """The options every benchmark script shares (`--set`, `--peers` only where they mean something)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("data_root", type=Path, help="dataset root (read-only)")
    p.add_argument("--smoke", action="store_true", help="tiny CI run: one fold, one epoch, few identities")
    if fold_list:  # a script that runs any chosen folds (and resumes)
        help_ = folds_help or f"comma-separated folds to run (1-{folds}) or all"
        p.add_argument("--folds", default="all", help=help_)
    else:
        p.add_argument("--folds", type=int, default=folds, help=folds_help or f"folds to run (of {folds})")
    p.add_argument("--budget", type=float, default=None, help=budget_help)
    p.add_argument("--seed", type=int, default=0, help="seed of folds, validation subsets, training")
    p.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR,
        help="where <name>.json/.md go (default: benchmarks/results/experiments/<name>/, time-stamped)",
    )
    if work_dir:
        p.add_argument(
            "--work-dir", type=Path, default=Path("runs") / "benchmarks", help="run directories (checkpoints)"
        )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one flat training option of our recipe (repeatable), e.g. --set epochs=30",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    if references is not None:
        p.add_argument(
            "--references",
            default=references,
            help=f"enrolled references per test identity, comma-separated, or none (default {references}); "
            "every fusion rule, thresholds calibrated on the validation identities",
        )
    if peers:
        p.add_argument(
            "--peers",
            default="pairbce,pml",
            help="comma-separated peer recipes to run: pairbce, pml, or none",
        )
    return p


def checked_overrides(
    args: argparse.Namespace, preset: str, extra: Sequence[str] = (), **data: Any
) -> dict[str, Any]:
    """Parse `--set` and build our config once, so a bad option stops the script before any training
    (with the `extra` KEY=VALUE options of one run on top, when a script has such a flag)."""
    overrides = parse_overrides(args.overrides)
    try:
        build_train_config(preset, **{**data, **overrides, **parse_overrides(extra)})
    except SiameseError as exc:
        sys.exit(f"error in --set: {exc}")
    return overrides


def run_main(main: Callable[[], None]) -> None:
    """Run a benchmark's `main`, turning the library's user errors into one line and exit status 1."""
    try:
        main()
    except SiameseError as exc:
        sys.exit(f"error: {exc}")


def require_dir(path: Path, what: str) -> None:
    """Exit (status 0, so CI without the data passes) with a message when `path` is not a folder."""
    if not path.is_dir():
        print(f"skipped: {what} not found at {path}", file=sys.stderr)
        sys.exit(0)


def setup_logging() -> None:
    """INFO messages of the library and the benchmarks, with timestamps."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def parse_args(
    parser: argparse.ArgumentParser,
    what: str | None = None,
    folders: Sequence[str] = ("",),
    preset: str | None = None,
    **data: str,
) -> argparse.Namespace:
    """Parse the options, set up logging, skip when the data is absent, and check `--set` on our recipe.

    Args:
        parser: the script's parser (`base_parser` plus its own options).
        what: the data set, named when a folder is missing (default: "<preset> data").
        folders: sub-folders of `data_root` that must exist ("" is `data_root` itself).
        preset: our recipe's preset (default: the script's `--preset` option).
        data: our recipe's data options (`root=`, `forgeries=`) as sub-folders of `data_root`.
    """
    args = parser.parse_args()
    setup_logging()
    preset = preset or args.preset
    what = what or f"{preset} data"
    for sub in folders:
        require_dir(args.data_root / sub, f"{what} {sub}/ folder" if sub else f"{what} folder")
    checked_overrides(args, preset, **{key: str(args.data_root / sub) for key, sub in data.items()})
    return args


def reference_counts(args: argparse.Namespace) -> tuple[int, ...]:
    """Parse `--references` ("1,5,10" or "none"); () when the script has no such option."""
    raw = getattr(args, "references", None)
    if raw is None or raw.strip() == "none":
        return ()
    try:
        counts = tuple(sorted({int(c) for c in raw.split(",") if c.strip()}))
    except ValueError:
        sys.exit(f"--references must be comma-separated integers or none, got {raw!r}")
    if not counts or counts[0] < 1:
        sys.exit(f"--references counts must be >= 1, got {raw!r}")
    return counts


def peer_names(arg: str, known: Sequence[str] = ("pairbce", "pml")) -> list[str]:
    """Parse `--peers` (names out of `known`, or none)."""
    names = [n.strip() for n in arg.split(",") if n.strip() and n.strip() != "none"]
    unknown = sorted(set(names) - set(known))
    if unknown:
        sys.exit(f"unknown peer recipe(s): {', '.join(unknown)}; choose from {', '.join(known)}, none")
    return names


# --------------------------------------------------------------------------------------- folds/pairs


def identity_folds(identities: Sequence[str], k: int, seed: int) -> list[tuple[str, ...]]:
    """`k` disjoint groups of test identities covering all `identities` (seeded shuffle, sizes +/-1)."""
    order = np.random.default_rng(seed).permutation(len(identities))
    return [tuple(sorted(identities[i] for i in part)) for part in np.array_split(order, k)]


def fold_split(identities: Sequence[str], test: Sequence[str], n_val: int, seed: int) -> Split:
    """Train/val/test split of one fold: `n_val` seeded validation identities out of the non-test ones."""
    rest = sorted(set(identities) - set(test))
    rng = np.random.default_rng(seed)
    val = set(rng.choice(len(rest), size=n_val, replace=False).tolist())
    return Split(
        train=[n for i, n in enumerate(rest) if i not in val],
        val=[n for i, n in enumerate(rest) if i in val],
        test=sorted(test),
    )


def smoke_sample(items: Sequence[str], size: int, args: argparse.Namespace) -> list[str]:
    """`items`; with `--smoke`, `size` of them drawn with `--seed`, sorted."""
    if not args.smoke:
        return list(items)
    return sorted(np.random.default_rng(args.seed).choice(items, size=size, replace=False).tolist())


FoldRunner = Callable[[argparse.Namespace, ImageIndex, int, tuple[str, ...], list[str]], dict[str, Any]]
"""`run_fold(args, index, k, test identities, all identities)` -> the fold's result, with `split`
(its `Split.to_dict()`) and `methods` (one result per method)."""


def run_identity_folds(
    args: argparse.Namespace,
    index: ImageIndex,
    total: int,
    smoke_identities: int,
    run_fold: FoldRunner,
    flatten: Callable[[dict[str, Any]], dict[str, float]],
    keys: Sequence[str],
    kind: str,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Run the first `--folds` of `total` identity-disjoint folds (one fold with `--smoke`, over
    `smoke_identities` seeded identities) and summarise each method over them.

    Returns:
        The folds' results, the summary (per method: mean and std of `keys` of `flatten(result)`)
        and the protocol facts `folds_total`, `folds_run` and `val_<kind>` (e.g. `val_people`).
    """
    identities = smoke_sample(list(index.identities), smoke_identities, args)
    n_folds = 1 if args.smoke else min(args.folds, total)
    groups = identity_folds(identities, total, args.seed)
    folds = [run_fold(args, index, k, groups[k], identities) for k in range(n_folds)]
    summary = {m: mean_std([flatten(f["methods"][m]) for f in folds], keys) for m in folds[0]["methods"]}
    protocol = {"folds_total": total, "folds_run": n_folds, f"val_{kind}": len(folds[0]["split"]["val"])}
    return folds, summary, protocol


@dataclass(frozen=True)
class Pairs:
    """Image pairs `(i[k], j[k])` indexing a list of paths, and whether each pair is genuine."""

    i: np.ndarray  # (P,) int64
    j: np.ndarray  # (P,) int64
    is_same: np.ndarray  # (P,) bool

    def __len__(self) -> int:
        return len(self.i)

    @property
    def counts(self) -> dict[str, int]:
        """Numbers of genuine and impostor pairs."""
        n_same = int(self.is_same.sum())
        return {"genuine": n_same, "impostor": len(self) - n_same}

    @staticmethod
    def concat(*parts: Pairs) -> Pairs:
        """All pairs of `parts`, in order."""
        return Pairs(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("i", "j", "is_same")))


def all_pairs(labels: Sequence[Any]) -> Pairs:
    """Every unordered pair `i < j` among images with these labels; genuine when the labels match."""
    lab = np.asarray(labels)
    i, j = np.triu_indices(len(lab), k=1)
    return Pairs(i.astype(np.int64), j.astype(np.int64), lab[i] == lab[j])


def cross_pairs(left: Sequence[int], right: Sequence[int], is_same: bool) -> Pairs:
    """Every pair `(l, r)` with `l` in `left` and `r` in `right`, all with the same `is_same`."""
    i, j = np.meshgrid(np.asarray(left, np.int64), np.asarray(right, np.int64), indexing="ij")
    return Pairs(i.ravel(), j.ravel(), np.full(i.size, is_same))


def subsample(pairs: Pairs, n: int, seed: int) -> Pairs:
    """`n` pairs drawn without replacement (seeded), in their original order; all when `n >= len`."""
    if n >= len(pairs):
        return pairs
    keep = np.sort(np.random.default_rng(seed).choice(len(pairs), size=n, replace=False))
    return Pairs(pairs.i[keep], pairs.j[keep], pairs.is_same[keep])


def genuine_paths(index: ImageIndex, identities: Sequence[str]) -> tuple[list[str], list[str]]:
    """Paths and identity labels of the genuine images of `identities` (index order)."""
    wanted = set(identities)
    recs = [r for r in index.records if not r.forgery and r.identity in wanted]
    return [r.path for r in recs], [r.identity for r in recs]


# ------------------------------------------------------------------------------------------- scoring


class Scorer(Protocol):
    """Something that turns images into per-image features and scores pairs of them."""

    def features(self, paths: Sequence[str]) -> np.ndarray:
        """Per-image features `(N, F)`."""
        ...

    def score(self, feats: np.ndarray, pairs: Pairs) -> np.ndarray:
        """Pair scores `(P,)`, higher = more likely the same."""
        ...

    @property
    def reference_distance(self) -> Distance:
        """The distance the R-reference fusion rules use on `features` (a name or a pair metric)."""
        ...


def embed_paths(
    encoder: torch.nn.Module, paths: Sequence[str], transform: Callable, channels: int, device: str
) -> np.ndarray:
    """`embed_files` in eval mode, `EMBED_BATCH` images at a time; an unreadable image stops the benchmark."""
    return embed_files(
        encoder.eval(), list(paths), transform, channels, batch_size=EMBED_BATCH, device=device
    )


@dataclass
class EmbeddingScorer:
    """Score = -distance between embeddings (the library's own distance)."""

    encoder: torch.nn.Module
    transform: Callable
    channels: int
    distance: str = "euclidean"
    normalize: bool = False
    device: str = "cpu"

    def features(self, paths: Sequence[str]) -> np.ndarray:
        emb = embed_paths(self.encoder, paths, self.transform, self.channels, self.device)
        if self.normalize:
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    def score(self, feats: np.ndarray, pairs: Pairs) -> np.ndarray:
        e = torch.from_numpy(feats)
        d = pair_distance(e[torch.from_numpy(pairs.i)], e[torch.from_numpy(pairs.j)], self.distance)  # (P,)
        return as_scores(d.numpy())

    @property
    def reference_distance(self) -> Distance:
        return self.distance


def verification_metrics(scores: np.ndarray, is_same: np.ndarray, threshold: float) -> dict[str, float]:
    """EER, AUC, TAR@FAR=1e-2, and accuracy/FAR/FRR at a score threshold chosen elsewhere."""
    report = verification_report(scores, is_same, threshold=threshold, fars=(TEST_FAR,))
    return {k: report[k] for k in ("eer", "auc", far_key(TEST_FAR), "accuracy", "far", "frr")}


@dataclass(frozen=True)
class PairSet:
    """Images and the pair sets to score among them (each image is embedded once).

    `identities` (per path) and `forged` (per path: a skilled forgery of that identity) are what the
    R-reference protocol needs; without them a set is scored by its pairs only.
    """

    paths: list[str]
    sets: dict[str, Pairs]
    identities: list[str] | None = None
    forged: np.ndarray | None = None

    def only(self, *names: str) -> PairSet:
        """The same images with only the pair sets `names`."""
        return PairSet(self.paths, {n: self.sets[n] for n in names}, self.identities, self.forged)

    def enrolment(self, feats: np.ndarray) -> Enrolled:
        """The images' features split as the R-reference protocol takes them."""
        if self.identities is None:
            raise ValueError("this pair set has no identities: the references protocol cannot use it")
        who = np.asarray(self.identities)
        forged = np.zeros(len(who), bool) if self.forged is None else np.asarray(self.forged, bool)
        forgeries = (feats[forged], who[forged]) if forged.any() else None
        paths = [p for p, f in zip(self.paths, forged, strict=True) if not f]
        return Enrolled(feats[~forged], who[~forged], forgeries, paths)


class Enrolled(NamedTuple):
    """Genuine features `(N, F)`, their identities and paths, and skilled forgeries `(features,
    imitated identities)` or None."""

    features: np.ndarray
    identities: np.ndarray
    forgeries: tuple[np.ndarray, np.ndarray] | None
    paths: list[str]


def evaluate_method(
    scorer: Scorer,
    val: PairSet,
    test: PairSet,
    val_set: str = "val",
    references: Sequence[int] = (),
    seed: int = 0,
) -> dict[str, Any]:
    """Threshold from the validation pairs (EER rule), then metrics on every test pair set; with
    `references`, also the R-reference protocol (`reference_results`) on the same features.

    Returns:
        `threshold`, `val_eer`, one `verification_metrics` dict per test set name, and with
        `references` a "references" entry.
    """
    val_feats, test_feats = scorer.features(val.paths), scorer.features(test.paths)
    val_pairs = val.sets[val_set]
    val_eer, threshold = eer(scorer.score(val_feats, val_pairs), val_pairs.is_same)
    out: dict[str, Any] = {"threshold": threshold, "val_eer": val_eer}
    for name, pairs in test.sets.items():
        out[name] = verification_metrics(scorer.score(test_feats, pairs), pairs.is_same, threshold)
    if references:
        out["references"] = reference_results(
            scorer.reference_distance, val.enrolment(val_feats), test.enrolment(test_feats), references, seed
        )
    return out


REFERENCE_KEYS = ("eer", "auc", "accuracy", "far", "frr")
"""What `reference_results` keeps of each `distance_report` (the full report is the CLI's)."""


def reference_results(
    distance: Distance,
    val: Enrolled,
    test: Enrolled,
    counts: Sequence[int],
    seed: int,
) -> dict[str, Any]:
    """The R-reference protocol of `siamese.evaluation.references` for one method on one fold.

    Thresholds per fusion rule and R come from the validation identities (EER rule over their
    genuine, random and skilled trials); test identities never touch them. A count the validation
    identities cannot serve (fewer than two with R + 1 images) is reported without accuracy.

    Args:
        distance: the method's distance on its features (`Scorer.reference_distance`).
        val, test: `PairSet.enrolment(features)` of the validation and test images.
        counts: reference counts R.
        seed: seed of the reference choice (the same for every method of a fold).

    Returns:
        `{"counts": {str(R): {"n_identities", "n_queries", "fusion": {rule: {"threshold",
        kind: {eer, auc, accuracy, far, frr}}}}}, "references": {str(R): {identity: [paths]}}}`
        (the test images enrolled as references).
    """
    usable = [c for c in counts if c <= calibratable_count(val.identities)]
    if len(usable) < len(counts):
        missing = sorted(set(counts) - set(usable))
        logger.warning("the validation identities cannot calibrate R=%s: no accuracy there", missing)
    thresholds = (
        calibrate_references(*val[:2], usable, distance=distance, seed=seed, forgeries=val.forgeries)
        if usable
        else {}
    )
    report = reference_metrics(
        *test[:2],
        counts,
        distance=distance,
        seed=seed,
        forgeries=test.forgeries,
        thresholds=thresholds,
        names=test.paths,
    )
    out: dict[str, Any] = {"counts": {}, "references": {}}
    for count, part in report["counts"].items():
        out["references"][count] = part["references"]
        entry: dict[str, Any] = {k: part[k] for k in ("n_identities", "n_queries") if k in part}
        if "error" in part:
            out["counts"][count] = {**entry, "error": part["error"]}
            continue
        entry["fusion"] = {
            rule: {
                "threshold": res["threshold"],
                **{kind: {k: res[kind].get(k) for k in REFERENCE_KEYS} for kind in KINDS if kind in res},
            }
            for rule, res in part["fusion"].items()
        }
        out["counts"][count] = entry
    return out


def reference_flat(result: dict[str, Any], counts: Sequence[int], kinds: Sequence[str]) -> dict[str, float]:
    """`R<count>/<fusion>/<kind>_<eer|accuracy>` columns of a method's `references` result (NaN where
    a count or kind is missing, e.g. a smoke run's too few images)."""
    out: dict[str, float] = {}
    counts_done = result.get("references", {}).get("counts", {})
    for count in counts:
        fusions = counts_done.get(str(count), {}).get("fusion", {})
        for rule in FUSIONS:
            for kind in kinds:
                got = fusions.get(rule, {}).get(kind, {})
                for key in ("eer", "accuracy"):
                    value = got.get(key)
                    out[f"R{count}/{rule}/{kind}_{key}"] = float("nan") if value is None else float(value)
    return out


def reference_table(
    title: str,
    summary: dict[str, Any],
    labels: dict[str, str],
    counts: Sequence[int],
    kinds: Sequence[str],
) -> str:
    """Markdown: per method and fusion rule, test EER (mean ± std over folds) per R and impostor kind."""
    heads = [f"R={c} {kind} EER %" for c in counts for kind in kinds]
    rows = [
        [labels[m], rule, *(fmt_mean_std(summary[m][f"R{c}/{rule}/{k}_eer"]) for c in counts for k in kinds)]
        for m in summary
        for rule in FUSIONS
        if f"R{counts[0]}/{rule}/{kinds[0]}_eer" in summary[m]
    ]
    return f"#### {title}\n\n" + markdown_table(["method", "fusion", *heads], rows)


# ---------------------------------------------------------------------------------------- our recipe


@dataclass
class ModelScorer:
    """Score = -distance between the embeddings of a trained checkpoint (`EmbeddingModel`: its
    preprocessing, test-time augmentation and distance)."""

    model: EmbeddingModel

    def features(self, paths: Sequence[str]) -> np.ndarray:
        return self.model.embed(list(paths), batch_size=EMBED_BATCH)  # (N, D)

    def score(self, feats: np.ndarray, pairs: Pairs) -> np.ndarray:
        return as_scores(self.model.pair_distance(feats[pairs.i], feats[pairs.j]))  # (P,)

    @property
    def reference_distance(self) -> Distance:
        return self.model.distance

    @property
    def distance(self) -> str:
        return self.model.distance

    @property
    def encoder(self) -> torch.nn.Module:
        return self.model.encoder


@dataclass
class OursResult:
    """Our recipe trained on one fold."""

    summary: dict[str, Any]
    config: TrainConfig
    scorer: ModelScorer
    train_time_s: float
    checkpoint: dict[str, Any] = field(default_factory=dict)


def train_ours(
    preset: str, split: Split, run_dir: Path, overrides: dict[str, Any], device: str, **data: Any
) -> OursResult:
    """Train the preset's recipe (`build_train_config(preset, ...)`) on `split` and load its best model.

    Args:
        preset: "face", "signature" or "omniglot".
        split: the fold's identities.
        run_dir: the run directory `train` writes.
        overrides: flat training options (`--set`), applied over the preset defaults.
        device: "cpu" or "cuda".
        data: `root=` and optionally `forgeries=`.
    """
    config = build_train_config(preset, **{**data, "device": device, "out": str(run_dir), **overrides})
    start = time.perf_counter()
    summary = train(config, split=split)
    elapsed = time.perf_counter() - start
    model = EmbeddingModel.from_checkpoint(run_dir, device=device)
    keep = ("epoch", "val_eer", "threshold", "calibration")
    return OursResult(summary, config, ModelScorer(model), elapsed, {k: model.metadata.get(k) for k in keep})


def input_shape(config: TrainConfig) -> tuple[tuple[int, int], int]:
    """(image size (H, W), channels) our recipe trained on, for the peers' transforms."""
    preset = PRESETS[config.data.preset]
    return tuple(config.data.image_size or preset.image_size), config.data.channels or preset.channels


# ------------------------------------------------------------------------------------------- results


def mean_std(rows: Sequence[dict[str, float]], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per key: mean and standard deviation (ddof=0) over rows (folds)."""
    out = {}
    for k in keys:
        vals = np.array([r[k] for r in rows], dtype=np.float64)
        out[k] = {"mean": float(vals.mean()), "std": float(vals.std())}
    return out


def fmt(value: float, kind: str = "pct") -> str:
    """Format a metric: rates as percentages, AUC with 4 decimals, seconds as integers."""
    if kind == "pct":
        return f"{100 * value:.2f}"
    if kind == "auc":
        return f"{value:.4f}"
    return f"{value:.0f}"


def fmt_mean_std(stats: dict[str, float], kind: str = "pct") -> str:
    """`mean ± std` in the metric's format ("n/a" when not measured, e.g. too few images for an R)."""
    if not np.isfinite(stats["mean"]):
        return "n/a"
    return f"{fmt(stats['mean'], kind)} ± {fmt(stats['std'], kind)}"


def fold_tables(
    title: str,
    folds: list[dict[str, Any]],
    summary: dict[str, Any],
    columns: Sequence[tuple[str, str, str]],
    labels: dict[str, str],
    flatten: Callable[[dict[str, Any]], dict[str, float]],
    unit: str = "fold",
) -> str:
    """Summary (mean ± std over folds) and per-fold markdown tables of a k-fold benchmark.

    `columns` are `(metric key, heading, format kind)`; `labels` name the methods; `flatten` turns
    one method's fold result into the columns' values; `unit` heads the per-fold table's first
    column (e.g. "split").
    """
    heads = [h for _, h, _ in columns]
    rows = [[labels[m], *(fmt_mean_std(summary[m][key], kind) for key, _, kind in columns)] for m in summary]
    per_fold = [
        [f["fold"], labels[m], *(fmt(flatten(r)[key], kind) for key, _, kind in columns)]
        for f in folds
        for m, r in f["methods"].items()
    ]
    return "\n\n".join(
        [
            f"### {title}",
            markdown_table(["method", *heads], rows),
            markdown_table([unit, "method", *heads], per_fold),
        ]
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def git_state(cwd: Path = Path(__file__).resolve().parent) -> dict[str, Any] | None:
    """`{"commit": HEAD's hash, "dirty": uncommitted changes to tracked files}` of the checkout holding
    `cwd`, or None outside a git checkout (or without git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True
        )
    except OSError:
        return None
    if head.returncode != 0 or status.returncode != 0:
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def script_path(argv0: str) -> str:
    """The script as run from the repository root (`benchmarks/orl.py`), wherever it was started from."""
    script = Path(argv0).resolve()
    try:
        return script.relative_to(Path(__file__).resolve().parent.parent).as_posix()
    except ValueError:
        return Path(argv0).as_posix()


def result_stem(out_dir: Path, name: str, smoke: bool, finished: datetime) -> Path:
    """Where `write_results` puts `<stem>.json` and `<stem>.md`.

    `--out` left at `RESULTS_DIR` (the default) files a result as an experiment,
    `experiments/<name>/<name>_<UTC time>`, so no run overwrites another or a published result, and a
    smoke run as `smoke/<name>`; any other folder (e.g. `benchmarks/results/canonical` to refresh a
    published result) gets `<name>` (`<name>-smoke` for smoke runs), as given.
    """
    if out_dir.resolve() != RESULTS_DIR.resolve():
        return out_dir / (f"{name}-smoke" if smoke else name)
    if smoke:
        return RESULTS_DIR / "smoke" / name
    return RESULTS_DIR / "experiments" / name / f"{name}_{finished:%Y%m%d-%H%M%S}"


def write_results(out_dir: Path, name: str, payload: dict[str, Any], markdown: str, smoke: bool) -> Path:
    """Write the result's `.json` envelope and `.md` table (where: `result_stem`), print the table.

    The envelope records the benchmark, the command, the finish time, the machine and the git commit
    (`git_state`) before the payload. A result written under `RESULTS_DIR` (not a smoke run) also
    regenerates `RESULTS_DIR/INDEX.md`.
    """
    finished = datetime.now(timezone.utc)
    stem = result_stem(out_dir, name, smoke, finished)
    stem.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "smoke": smoke,
        "command": " ".join([script_path(sys.argv[0]), *sys.argv[1:]]),
        "finished": finished.isoformat(timespec="seconds"),
        "machine": machine(),
        "git": git_state(),
        **payload,
    }
    # not `with_suffix`: a stem may hold a dot of its own (`finetune_orl_share-0.25`)
    json_path, md_path = stem.parent / f"{stem.name}.json", stem.parent / f"{stem.name}.md"
    json_path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    md_path.write_text(markdown + "\n")
    print(markdown)
    print(f"\nresults: {json_path}, {md_path}")
    if not smoke and stem.resolve().is_relative_to(RESULTS_DIR.resolve()):
        from results_index import write_index  # beside this file, like `common` for the scripts

        print(f"index: {write_index(RESULTS_DIR)}")
    return stem


def write_protocol_results(
    args: argparse.Namespace,
    name: str,
    protocol: dict[str, Any],
    summary: dict[str, Any],
    markdown: str,
    **results: Any,
) -> Path:
    """`write_results` of `protocol` (plus seed, `--set` overrides, data root), `summary` and `results`."""
    run = {"seed": args.seed, "overrides": parse_overrides(args.overrides), "data_root": Path(args.data_root)}
    payload = {"protocol": {**protocol, **run}, "summary": summary, **results}
    return write_results(args.out, name, payload, markdown, args.smoke)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")

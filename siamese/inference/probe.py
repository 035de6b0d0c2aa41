"""`siamese probe`: the standard representation checks of any run, supervised or self-supervised.

On a labelled folder (one folder per identity, searched recursively), the frozen embeddings are
split per identity (`siamese.evaluation.probe.stratified_split`) into a labelled part and queries,
then scored by weighted k-NN (InstDisc votes, `siamese.evaluation.knn`) and by a linear probe
(scikit-learn logistic regression). Given Omniglot-style runs, N-way one-shot accuracy too.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from siamese.data.inputs import list_inputs
from siamese.data.oneshot_runs import list_oneshot_runs, read_oneshot_run
from siamese.errors import DataError
from siamese.evaluation.knn import KNN_K, KNN_TEMPERATURE, embedding_spread, knn_accuracy
from siamese.evaluation.oneshot import n_way_one_shot_accuracy
from siamese.evaluation.probe import linear_probe_accuracy, stratified_split
from siamese.inference.model import EmbeddingModel

logger = logging.getLogger(__name__)

TEST_FRACTION = 0.5
PROBE_C = 1.0


@dataclass(frozen=True)
class ProbeOptions:
    """The knobs of a probe; the defaults are the documented ones of `siamese probe`.

    Attributes:
        k: neighbours of the k-NN vote.
        knn_temperature: vote weight `exp(cos / T)`.
        test_fraction: share of each identity's images held out as queries.
        c: inverse regularisation strength of the logistic regression.
        seed: seed of the split.
        batch_size: images per forward pass.
    """

    k: int = KNN_K
    knn_temperature: float = KNN_TEMPERATURE
    test_fraction: float = TEST_FRACTION
    c: float = PROBE_C
    seed: int = 0
    batch_size: int = 128


@dataclass
class ProbeReport:
    """What `probe` measured; the accuracies of a missing input are None."""

    model: str
    identities: int = 0
    images: int = 0
    skipped: int = 0
    memory: int = 0
    queries: int = 0
    knn_accuracy: float | None = None
    linear_accuracy: float | None = None
    spread: float | None = None
    one_shot_accuracy: float | None = None
    one_shot_runs: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict with exactly the attribute names as keys."""
        return asdict(self)


def labelled_images(data: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """The images of an identity folder and their labels (the index of their sorted identity).

    Raises:
        DataError: fewer than two identities.
    """
    inputs = list_inputs(data)
    identities = sorted({x.identity for x in inputs})
    if len(identities) < 2:
        raise DataError(f"{data} needs one folder per identity (found {len(identities)} identity)")
    index = {name: i for i, name in enumerate(identities)}
    return [x.path for x in inputs], np.array([index[x.identity] for x in inputs], dtype=np.int64)


def _probe_folder(
    model: EmbeddingModel,
    data: str | os.PathLike,
    options: ProbeOptions,
    report: ProbeReport,
    on_batch: Callable[[int], None] | None,
) -> None:
    paths, labels = labelled_images(data)
    emb, failed = model.embed_all(paths, options.batch_size, on_batch=on_batch)
    keep = np.setdiff1d(np.arange(len(paths)), [i for i, _ in failed])
    if failed:
        logger.warning("skipped %d unreadable images; first: %s", len(failed), failed[0][1])
    emb, labels = emb[keep], labels[keep]
    train, test = stratified_split(labels, options.test_fraction, options.seed)
    report.identities, report.images, report.skipped = len(np.unique(labels)), len(keep), len(failed)
    report.memory, report.queries = len(train), len(test)
    report.spread = embedding_spread(emb)
    report.knn_accuracy = knn_accuracy(
        emb[train], labels[train], emb[test], labels[test], options.k, options.knn_temperature
    )
    report.linear_accuracy = linear_probe_accuracy(
        emb[train], labels[train], emb[test], labels[test], c=options.c
    )


def one_shot_runs(
    features: Callable[[Sequence[str]], np.ndarray], run_dirs: Sequence[str | os.PathLike], distance: str
) -> list[dict[str, Any]]:
    """N-way one-shot accuracy of each run folder (1-NN with `distance`).

    Args:
        features: image paths -> `(N, D)` embeddings, e.g. `EmbeddingModel.embed`.
        run_dirs: run folders (`runNN/class_labels.txt`), e.g. from `list_oneshot_runs`.
        distance: "euclidean" or "cosine".
    """
    results = []
    for run_dir in run_dirs:
        run = read_oneshot_run(run_dir)
        support = features(run.support_paths)  # (N, D)
        queries = features(run.query_paths)  # (Q, D)
        acc = n_way_one_shot_accuracy(support, run.support_labels, queries, run.query_labels, distance)
        results.append({"run": run.name, "n_way": run.n_way, "accuracy": acc})
    return results


def probe(
    model: str | os.PathLike,
    data: str | os.PathLike | None = None,
    oneshot: str | os.PathLike | None = None,
    options: ProbeOptions | None = None,
    device: str = "auto",
    on_batch: Callable[[int], None] | None = None,
) -> ProbeReport:
    """Probe a run's frozen encoder on a labelled folder and/or Omniglot-style one-shot runs.

    Args:
        model: run directory or checkpoint (`siamese train` or `siamese pretrain`).
        data: identity-folder root for k-NN and linear-probe accuracy.
        oneshot: folder of N-way one-shot runs (`runNN/class_labels.txt`).
        options: k-NN, split and probe settings.
        device: where the encoder runs.
        on_batch: called with the number of images after each embedded batch of `data`.

    Raises:
        DataError: neither input given, or an input unusable for a probe.
        CheckpointError: the model cannot be loaded.
    """
    if data is None and oneshot is None:
        raise DataError("give a labelled DATA folder, --oneshot-runs, or both")
    options = options or ProbeOptions()
    start = time.perf_counter()
    loaded = EmbeddingModel.from_checkpoint(model, device=device)
    report = ProbeReport(model=loaded.source, options=asdict(options))
    if data is not None:
        _probe_folder(loaded, data, options, report, on_batch)
    if oneshot is not None:
        runs = list_oneshot_runs(oneshot)
        report.one_shot_runs = one_shot_runs(loaded.embed, runs, loaded.distance)
        report.one_shot_accuracy = float(np.mean([r["accuracy"] for r in report.one_shot_runs]))
    report.seconds = time.perf_counter() - start
    return report

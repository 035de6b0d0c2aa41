"""Verification with R enrolled references per identity: the protocol, on embeddings and labels.

For a reference count R, every identity with at least R + 1 genuine images enrols R of them,
drawn from a seed (`choose_references`); the others are skipped. Every remaining genuine image is a
query: against its own identity it is a genuine trial, against every other enrolled identity a
random-forgery trial. Skilled forgeries of an identity (optional) are skilled-forgery trials against
that identity only. A reference is never a query, so the SVM's negatives (other identities'
references) are never scored. Each trial gets one fused distance (`siamese.evaluation.fusion`).

Thresholds are DISTANCES like everywhere else (`siamese.evaluation.distances`): `calibrate` chooses
one per fusion rule and reference count on a calibration (validation) set, and `reference_metrics`
reports a test set at those thresholds. `reference_metrics` is the library entry point of the
protocol (the `evaluate --references` pipeline and the benchmarks call it).

>>> emb = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
>>> labels = ["a", "a", "a", "b", "b", "b"]
>>> report = reference_metrics(emb, labels, counts=[2], fusions=["mean"], seed=0)
>>> part = report["counts"]["2"]
>>> part["n_identities"], part["fusion"]["mean"]["random"]["eer"]
(2, 0.0)
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from siamese.errors import ConfigError, DataError
from siamese.evaluation.calibration import fit_confidence
from siamese.evaluation.distances import choose_threshold, distance_report
from siamese.evaluation.fusion import SPREAD_WEIGHT, Distance, fit_identity_svms, fused_matrix
from siamese.names import FUSIONS, check_choice

logger = logging.getLogger(__name__)

REPORT_FARS = (1e-1, 1e-2, 1e-3)
IMPOSTOR_KINDS = ("random", "skilled")


@dataclass(frozen=True)
class Enrolment:
    """Which rows are references and which are queries, for one reference count.

    Attributes:
        count: R, the references per enrolled identity.
        identities: the enrolled identities, sorted.
        references: per enrolled identity (same order), its R reference rows.
        queries: the genuine rows of enrolled identities that are not references, ascending.
        skipped: identities with fewer than R + 1 genuine images, sorted.
    """

    count: int
    identities: tuple[str, ...]
    references: tuple[np.ndarray, ...]
    queries: np.ndarray
    skipped: tuple[str, ...]


def reference_order(n: int, identity: str, seed: int) -> np.ndarray:
    """The seeded order in which an identity's `n` images become references (a permutation of n).

    It depends only on the seed, the identity's name and `n`, so the references of R = 3 are the
    first three of the same order as those of R = 5 (nested), whatever the other identities are.

    >>> sorted(reference_order(4, "s1", 0).tolist())
    [0, 1, 2, 3]
    """
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(identity.encode("utf-8"))])
    return rng.permutation(n)


def choose_references(labels: Sequence[str] | np.ndarray, count: int, seed: int = 0) -> Enrolment:
    """Enrol `count` seeded references per identity; the other genuine images become queries.

    Args:
        labels: `(N,)` identity of each genuine row.
        count: R >= 1.
        seed: seed of the choice (see `reference_order`).

    Raises:
        ConfigError: R < 1.

    >>> e = choose_references(["a", "a", "b", "b", "c"], 1, seed=0)
    >>> e.identities, e.skipped, [len(r) for r in e.references], len(e.queries)
    (('a', 'b'), ('c',), [1, 1], 2)
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ConfigError(f"a reference count must be an integer >= 1, got {count!r}")
    lab = np.asarray(labels).astype(str)
    enrolled, refs, queries, skipped = [], [], [], []
    for name in sorted(set(lab.tolist())):
        rows = np.flatnonzero(lab == name)
        if len(rows) < count + 1:
            skipped.append(name)
            continue
        order = rows[reference_order(len(rows), name, seed)]
        enrolled.append(name)
        refs.append(np.sort(order[:count]))
        queries.append(order[count:])
    q = np.sort(np.concatenate(queries)) if queries else np.zeros(0, dtype=np.int64)
    return Enrolment(int(count), tuple(enrolled), tuple(refs), q, tuple(skipped))


@dataclass(frozen=True)
class Trials:
    """The scored comparisons of one enrolment under one fusion rule.

    Attributes:
        distances: `(T,)` fused distances.
        is_same: `(T,)` True for genuine trials.
        kind: `(T,)` "genuine", "random" (another identity's image) or "skilled" (a forgery).
    """

    distances: np.ndarray
    is_same: np.ndarray
    kind: np.ndarray

    def subset(self, impostors: str) -> tuple[np.ndarray, np.ndarray]:
        """(distances, is_same): the genuine trials and the impostors of one kind ("all": every kind)."""
        if impostors == "all":
            return self.distances, self.is_same
        keep = self.is_same | (self.kind == impostors)
        return self.distances[keep], self.is_same[keep]


def check_fusions(fusions: Sequence[str] | None) -> tuple[str, ...]:
    """The chosen fusion rules in `FUSIONS` order (None or empty: all of them).

    Raises:
        ConfigError: an unknown rule.

    >>> check_fusions(["svm", "mean", "svm"])
    ('mean', 'svm')
    """
    chosen = tuple(fusions) if fusions else FUSIONS
    for rule in chosen:
        check_choice(rule, FUSIONS, "fusion")
    return tuple(f for f in FUSIONS if f in chosen)


def reference_trials(
    embeddings: npt.ArrayLike,
    labels: Sequence[str] | np.ndarray,
    enrolment: Enrolment,
    rule: str,
    distance: Distance = "euclidean",
    forgeries: tuple[npt.ArrayLike, Sequence[str] | np.ndarray] | None = None,
    svm_c: float = 1.0,
    spread_weight: float = SPREAD_WEIGHT,
) -> Trials:
    """Score every query (and forgery) of an enrolment against the enrolled identities.

    Args:
        embeddings: `(N, D)` genuine embeddings, row i labelled `labels[i]`.
        labels: `(N,)` identities.
        enrolment: `choose_references(labels, R, seed)`.
        rule: one of `FUSIONS`; "svm" fits one classifier per enrolled identity on its references
            against the other enrolled identities' references.
        distance: "euclidean", "cosine" or a `PairMetric` (`siamese.evaluation.fusion`).
        forgeries: optional `(F, D)` skilled-forgery embeddings and `(F,)` the identity each
            imitates; forgeries of identities that are not enrolled are left out.
        svm_c: C of the SVMs.
        spread_weight: the weight of the reference spread in "adaptive".

    Raises:
        DataError: fewer than two enrolled identities (no impostor trials).
    """
    if len(enrolment.identities) < 2:
        raise DataError(
            f"{len(enrolment.identities)} identity has at least {enrolment.count + 1} images; "
            f"{enrolment.count} references need two such identities"
        )
    emb = np.asarray(embeddings, dtype=np.float64)
    lab = np.asarray(labels).astype(str)
    refs = [emb[r] for r in enrolment.references]
    scorers = fit_identity_svms(refs, svm_c) if rule == "svm" else None
    column = {name: k for k, name in enumerate(enrolment.identities)}
    q = enrolment.queries
    fused = fused_matrix(emb[q], refs, rule, distance, scorers, spread_weight)  # (Q, K)
    own = np.array([column[name] for name in lab[q]])  # (Q,)
    genuine = fused[np.arange(len(q)), own]  # (Q,)
    impostor = fused[np.arange(fused.shape[1])[None, :] != own[:, None]]  # (Q * (K - 1),)
    parts = [(genuine, "genuine"), (impostor, "random")]
    if forgeries is not None:
        f_emb, f_lab = np.asarray(forgeries[0], dtype=np.float64), np.asarray(forgeries[1]).astype(str)
        keep = np.flatnonzero(np.isin(f_lab, enrolment.identities))
        if len(keep):
            f_fused = fused_matrix(f_emb[keep], refs, rule, distance, scorers, spread_weight)  # (F, K)
            cols = np.array([column[name] for name in f_lab[keep]])
            parts.append((f_fused[np.arange(len(keep)), cols], "skilled"))
    distances = np.concatenate([d for d, _ in parts])
    kind = np.concatenate([np.full(len(d), k) for d, k in parts])
    return Trials(distances=distances, is_same=kind == "genuine", kind=kind)


def calibrate(trials: Trials, rule: str = "eer", target_far: float = 1e-3) -> dict[str, Any]:
    """The distance threshold of `rule` on calibration trials (genuine vs all impostors).

    Returns:
        `threshold` (-inf when the "far" rule's target cannot be met: reject everything), `eer`
        (of the calibration trials), `calibration` (the logistic
        distance -> P(same) fit of `siamese.evaluation.calibration`), `n_genuine`, `n_impostor`.
    """
    err, threshold = choose_threshold(trials.distances, trials.is_same, rule, target_far)
    if not np.isfinite(threshold):
        logger.warning("the %s rule cannot be met on the calibration trials: threshold %s", rule, threshold)
    return {
        "threshold": threshold,
        "eer": err,
        "calibration": fit_confidence(trials.distances, trials.is_same),
        "n_genuine": int(trials.is_same.sum()),
        "n_impostor": int((~trials.is_same).sum()),
    }


def trials_report(
    trials: Trials, threshold: float | None = None, fars: tuple[float, ...] = REPORT_FARS
) -> dict[str, Any]:
    """`distance_report` of the genuine trials against each kind of impostor present."""
    return {
        kind: distance_report(*trials.subset(kind), threshold=threshold, fars=fars)
        for kind in IMPOSTOR_KINDS
        if (trials.kind == kind).any()
    }


def calibratable_count(labels: Sequence[str] | np.ndarray) -> int:
    """The largest R for which at least two identities have R + 1 images (0 if there is none).

    >>> calibratable_count(["a"] * 6 + ["b"] * 4 + ["c"] * 9)
    5
    """
    counts = sorted(np.unique(np.asarray(labels).astype(str), return_counts=True)[1].tolist(), reverse=True)
    return counts[1] - 1 if len(counts) >= 2 else 0


def calibrate_references(
    embeddings: npt.ArrayLike,
    labels: Sequence[str] | np.ndarray,
    counts: Sequence[int],
    fusions: Sequence[str] | None = None,
    distance: Distance = "euclidean",
    rule: str = "eer",
    target_far: float = 1e-3,
    seed: int = 0,
    forgeries: tuple[npt.ArrayLike, Sequence[str] | np.ndarray] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Thresholds per fusion rule and reference count, chosen on calibration (validation) identities.

    Args:
        embeddings, labels, distance, seed, forgeries: the calibration set, as for `reference_trials`.
        counts: the reference counts to calibrate (each needs two identities with R + 1 images).
        fusions: rules to calibrate (default: all of `FUSIONS`).
        rule: the threshold rule of `choose_threshold` ("eer", "accuracy", "far").
        target_far: the FAR target of the "far" rule.

    Returns:
        `{fusion: {str(R): calibrate(...) plus n_identities, skipped}}`.

    Raises:
        DataError: a count the calibration set cannot serve.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {f: {} for f in check_fusions(fusions)}
    for count in sorted(set(counts)):
        enrolment = choose_references(labels, count, seed)
        for fusion in out:
            trials = reference_trials(embeddings, labels, enrolment, fusion, distance, forgeries)
            out[fusion][str(count)] = {
                **calibrate(trials, rule, target_far),
                "n_identities": len(enrolment.identities),
                "skipped": len(enrolment.skipped),
            }
    return out


def reference_metrics(
    embeddings: npt.ArrayLike,
    labels: Sequence[str] | np.ndarray,
    counts: Sequence[int],
    fusions: Sequence[str] | None = None,
    distance: Distance = "euclidean",
    seed: int = 0,
    forgeries: tuple[npt.ArrayLike, Sequence[str] | np.ndarray] | None = None,
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
    names: Sequence[str] | None = None,
    fars: tuple[float, ...] = REPORT_FARS,
) -> dict[str, Any]:
    """The R-reference protocol's metrics per reference count and fusion rule.

    Args:
        embeddings: `(N, D)` genuine embeddings of the evaluated identities.
        labels: `(N,)` their identities.
        counts: reference counts R (e.g. 1, 3, 5, 10).
        fusions: rules (default: all of `FUSIONS`).
        distance: "euclidean", "cosine" or a `PairMetric`.
        seed: seed of the reference choice.
        forgeries: optional skilled forgeries `((F, D) embeddings, (F,) imitated identities)`.
        thresholds: calibrated thresholds `{fusion: {str(R): {"threshold": t, ...}}}` (what
            `calibrate_references` returns, on OTHER identities); a missing entry reports no
            accuracy for that rule and count.
        names: `(N,)` names of the rows (e.g. file paths) to list the references by; default
            their row numbers.
        fars: target FARs of the TAR@FAR entries.

    Returns:
        `{"seed", "fusions", "counts": {str(R): {"n_identities", "skipped", "n_queries",
        "references": {identity: [names]}, "fusion": {rule: {"threshold", "random", "skilled"?}}}}}`
        where "random" / "skilled" are `distance_report`s (with accuracy/FAR/FRR at the calibrated
        threshold when there is one). A count that leaves fewer than two identities is reported
        with `"error"` instead of "fusion".
    """
    chosen = check_fusions(fusions)
    row_names = list(names) if names is not None else None
    out: dict[str, Any] = {"seed": int(seed), "fusions": list(chosen), "counts": {}}
    for count in sorted(set(int(c) for c in counts)):
        enrolment = choose_references(labels, count, seed)
        part: dict[str, Any] = {
            "n_identities": len(enrolment.identities),
            "skipped": len(enrolment.skipped),
            "n_queries": int(len(enrolment.queries)),
            "references": {
                name: [row_names[i] if row_names is not None else int(i) for i in rows]
                for name, rows in zip(enrolment.identities, enrolment.references, strict=True)
            },
        }
        if enrolment.skipped:
            logger.warning(
                "%d of %d identities have fewer than %d genuine images and are skipped at R=%d",
                len(enrolment.skipped),
                len(enrolment.skipped) + len(enrolment.identities),
                count + 1,
                count,
            )
        if len(enrolment.identities) < 2:
            part["error"] = f"fewer than two identities have {count + 1} genuine images"
            out["counts"][str(count)] = part
            continue
        part["fusion"] = {}
        for fusion in chosen:
            trials = reference_trials(embeddings, labels, enrolment, fusion, distance, forgeries)
            entry = (thresholds or {}).get(fusion, {}).get(str(count))
            threshold = None if entry is None else float(entry["threshold"])
            part["fusion"][fusion] = {"threshold": threshold, **trials_report(trials, threshold, fars)}
        out["counts"][str(count)] = part
    return out

"""Verifying a claimed identity ("this is X", 1:1) against a gallery or an ad-hoc set of references."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from siamese.errors import CheckpointError, ConfigError
from siamese.evaluation.calibration import confidence as calibrated_confidence
from siamese.evaluation.fusion import fused_distances
from siamese.galleries.gallery import Gallery
from siamese.inference.verifier import Verifier
from siamese.names import FUSIONS, check_choice


@dataclass
class ClaimResult:
    """The decision on a claim "this query is identity X", made against X's references.

    Attributes:
        same: True when `distance <= threshold` (the claim is accepted).
        distance: the fused distance (for svm: the negated decision value).
        threshold: the distance threshold used.
        confidence: calibrated probability that the claim is genuine, or None without a calibration.
        model: the checkpoint used (its path stem).
        seconds: wall time of the verification (decoding, preprocessing, forward pass, scoring).
        claim: the claimed identity.
        fusion: the fusion rule.
        references: how many references the claim was compared with.
        calibrated_references: the reference count the threshold was calibrated for.
        gallery: the gallery folder, or None for an ad-hoc reference folder.
    """

    same: bool
    distance: float
    threshold: float
    confidence: float | None
    model: str
    seconds: float
    claim: str
    fusion: str
    references: int
    calibrated_references: int
    gallery: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict with exactly the attribute names as keys."""
        return asdict(self)


def verify_claim(
    verifier: Verifier,
    gallery: Gallery,
    query: str | os.PathLike,
    claim: str,
    fusion: str | None = None,
    threshold: float | None = None,
    source: str | os.PathLike | None = None,
) -> ClaimResult:
    """Decide whether `query` is the enrolled identity `claim`.

    Args:
        verifier: the gallery's model (checked by fingerprint).
        gallery: the enrolled identities.
        query: image file.
        claim: the claimed identity.
        fusion: a rule the gallery was built for (default: `Gallery.default_fusion`, the one
            with the lowest calibration EER at the claim's reference count).
        threshold: distance threshold overriding the calibrated one.
        source: the gallery folder, for the result.

    Raises:
        CheckpointError: the verifier's model is not the gallery's.
        DataError: unknown identity, nothing calibrated. ImageError: unreadable query.
        ConfigError: a rule the gallery was not built for.
    """
    start = time.perf_counter()
    gallery.check_model(verifier.source, verifier.metadata)
    check_claim(gallery, claim, fusion)  # before embedding: a bad claim fails at once
    emb = verifier.embed([query], batch_size=1)  # (1, D)
    return decide_claim(gallery, emb, claim, fusion, threshold, verifier.source, source, start)


def check_claim(
    gallery: Gallery, claim: str, fusion: str | None = None
) -> tuple[int, str, int, dict[str, Any]]:
    """What a claim is decided with: (reference count, fusion rule, calibrated count, calibration entry).

    Raises:
        DataError: unknown identity, nothing calibrated. ConfigError: a rule the gallery was not built for.
    """
    count = len(gallery.references[gallery.position(claim)])
    rule = gallery.check_fusion(fusion or gallery.default_fusion(count))
    used, entry = gallery.calibrated(rule, count)
    return count, rule, used, entry


def decide_claim(
    gallery: Gallery,
    embedding: np.ndarray,
    claim: str,
    fusion: str | None = None,
    threshold: float | None = None,
    model: str = "",
    source: str | os.PathLike | None = None,
    start: float | None = None,
) -> ClaimResult:
    """The decision on a claim whose query is already embedded, `(1, D)` (`verify_claim` after embedding).

    Args:
        gallery, claim, fusion, threshold, source: as for `verify_claim`.
        embedding: the query's embedding by the gallery's model.
        model: the checkpoint that embedded it (its stem), for the result.
        start: `time.perf_counter()` when the work on this claim began (for `seconds`).
    """
    count, rule, used, entry = check_claim(gallery, claim, fusion)
    dist = float(gallery.distances(embedding, claim, rule)[0])
    thr = float(entry["threshold"]) if threshold is None else float(threshold)
    cal = entry.get("calibration")
    return ClaimResult(
        same=dist <= thr,
        distance=dist,
        threshold=thr,
        confidence=float(calibrated_confidence(dist, cal)) if isinstance(cal, dict) else None,
        model=model,
        seconds=0.0 if start is None else time.perf_counter() - start,
        claim=claim,
        fusion=rule,
        references=count,
        calibrated_references=used,
        gallery=None if source is None else str(source),
    )


def verify_against_references(
    verifier: Verifier,
    query: str | os.PathLike,
    references: Sequence[str | os.PathLike],
    fusion: str = "mean",
    threshold: float | None = None,
    claim: str = "",
) -> ClaimResult:
    """Decide whether `query` shows the identity of an ad-hoc set of reference images.

    Without a gallery there is no threshold calibrated for R references: the model's own threshold
    (calibrated on single validation pairs, i.e. for one reference) is used unless `threshold` is
    given, and the confidence is reported only for one reference. svm fusion needs other
    identities' references as negatives, so it needs a gallery.

    Args:
        verifier: the model.
        query: image file.
        references: the claimed identity's image files (embedded in one batch with the query).
        fusion: "mean", "min", "template" or "adaptive".
        threshold: distance threshold overriding the model's.
        claim: a name for the claimed identity (shown in the result).

    Raises:
        ConfigError: svm fusion, or no references. CheckpointError: no threshold anywhere.
        ImageError: an unreadable image.
    """
    start = time.perf_counter()
    check_choice(fusion, FUSIONS, "fusion")
    if fusion == "svm":
        raise ConfigError(
            "svm fusion needs other identities' references: enrol a gallery with `siamese enroll`"
        )
    if not references:
        raise ConfigError("the reference folder holds no images")
    thr = verifier.threshold if threshold is None else float(threshold)
    if thr is None:
        raise CheckpointError(f"{verifier.source}.json has no decision threshold; pass one explicitly")
    emb = verifier.embed([query, *references])  # (1 + R, D)
    dist = float(fused_distances(emb[:1], emb[1:], fusion, verifier.distance)[0])
    return ClaimResult(
        same=dist <= thr,
        distance=dist,
        threshold=thr,
        confidence=verifier.confidence(dist) if len(references) == 1 else None,
        model=verifier.source,
        seconds=time.perf_counter() - start,
        claim=claim,
        fusion=fusion,
        references=len(references),
        calibrated_references=1,
        gallery=None,
    )

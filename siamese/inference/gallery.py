"""A gallery of enrolled identities, and verifying a claimed identity against it.

A gallery is a folder of two files written by `siamese enroll` (`siamese.inference.references.enroll`):

* `gallery.json`: the model it was made with (checkpoint stem and a fingerprint of its weights and
  preprocessing), the distance, per identity its reference image files, the fusion rules it was
  built for, and per fusion rule and reference count the calibrated distance threshold (chosen on
  calibration identities, never the enrolled ones) with the logistic confidence calibration;
* `gallery.safetensors`: the reference embeddings `(M, D)` (rows in identity order) and, for svm
  fusion, each identity's linear classifier as weights `(K, D)` and biases `(K,)` - never a pickle.

Like `verifier`, this module imports torch and the lightweight siamese modules only (never
scikit-learn: a stored SVM is scored as `x @ w + b`), so `siamese verify --claim` starts fast.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from siamese.errors import CheckpointError, ConfigError, DataError
from siamese.evaluation.calibration import confidence as calibrated_confidence
from siamese.evaluation.fusion import LinearScorer, fused_distances
from siamese.inference.verifier import Verifier
from siamese.models.checkpoint import atomic_write, weights_file
from siamese.names import FUSIONS, check_choice

FORMAT = "siamese-gallery"
VERSION = 1
GALLERY_FILE = "gallery.json"
ARRAYS_FILE = "gallery.safetensors"

# the metadata that changes what an image embeds to (with the weights); "tta" if a model records one
_EMBEDDING_KEYS = (
    "encoder",
    "distance",
    "embedding_dim",
    "preprocessing",
    "preset",
    "image_size",
    "channels",
    "tta",
)


def model_fingerprint(stem: str | os.PathLike, metadata: Mapping[str, Any]) -> str:
    """`sha256:<hex>` of a checkpoint's weights file and the metadata that shapes its embeddings.

    Re-calibrating a model (its threshold, confidence) keeps the fingerprint; other weights, another
    preprocessing or another distance change it.

    Raises:
        CheckpointError: no weights beside the stem.
    """
    weights = weights_file(Path(stem))
    if weights is None:
        raise CheckpointError(f"no weights beside {stem}.json")
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    facts = {k: metadata.get(k) for k in _EMBEDDING_KEYS}
    digest.update(json.dumps(facts, sort_keys=True, default=str).encode("utf-8"))
    return f"sha256:{digest.hexdigest()}"


@dataclass
class Gallery:
    """Enrolled identities, their reference embeddings, classifiers and calibrated thresholds.

    Attributes:
        model: the checkpoint stem the gallery was made with.
        fingerprint: `model_fingerprint` of that checkpoint.
        distance: the model's distance.
        identities: enrolled identity names, sorted.
        files: per identity, its reference image files.
        references: per identity, its `(R_k, D)` float32 reference embeddings.
        fusions: the fusion rules the gallery was built (and calibrated) for.
        thresholds: `{fusion: {str(R): {"threshold", "eer", "calibration", ...}}}`.
        scorers: per identity its linear SVM (only when "svm" is among `fusions`).
        info: how it was made: data, seed, reference cap, calibration set and rule.
    """

    model: str
    fingerprint: str
    distance: str
    identities: tuple[str, ...]
    files: tuple[tuple[str, ...], ...]
    references: tuple[np.ndarray, ...]
    fusions: tuple[str, ...]
    thresholds: dict[str, dict[str, dict[str, Any]]]
    scorers: tuple[LinearScorer, ...] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def embedding_dim(self) -> int:
        """D, the size of an embedding."""
        return int(self.references[0].shape[1])

    def position(self, identity: str) -> int:
        """Index of an enrolled identity.

        Raises:
            DataError: the identity is not enrolled.
        """
        try:
            return self.identities.index(identity)
        except ValueError:
            shown = ", ".join(self.identities[:5]) + (", ..." if len(self.identities) > 5 else "")
            raise DataError(
                f"{identity!r} is not enrolled in this gallery ({len(self.identities)} identities: {shown})"
            ) from None

    def check_fusion(self, fusion: str) -> str:
        """`fusion` if the gallery was built for it, else a `ConfigError` naming the ones it was."""
        check_choice(fusion, FUSIONS, "fusion")
        if fusion not in self.fusions:
            raise ConfigError(
                f"the gallery was built for {', '.join(self.fusions)} fusion, not {fusion}; "
                f"enrol again with --fusion {fusion}"
            )
        return fusion

    def calibrated(self, fusion: str, count: int) -> tuple[int, dict[str, Any]]:
        """The calibration entry for `count` references: the largest calibrated count <= `count`,
        else the smallest calibrated one.

        Returns:
            (the calibrated reference count used, its entry with "threshold" and "calibration").

        Raises:
            DataError: nothing calibrated for `fusion`.
        """
        entries = self.thresholds.get(fusion) or {}
        if not entries:
            raise DataError(f"the gallery has no calibrated threshold for {fusion} fusion")
        counts = sorted(int(c) for c in entries)
        below = [c for c in counts if c <= count]
        used = below[-1] if below else counts[0]
        return used, entries[str(used)]

    def default_fusion(self, count: int) -> str:
        """The rule to use when none is asked for: the built rule whose calibration (on identities
        that are not enrolled) had the lowest EER at `count` references; ties go to the first built.
        Rules with no recorded EER (galleries from before it was stored) fall back to "mean"."""
        eers = {}
        for rule in self.fusions:
            if self.thresholds.get(rule):
                eer = self.calibrated(rule, count)[1].get("eer")
                if eer is not None and math.isfinite(float(eer)):
                    eers[rule] = float(eer)
        if not eers:
            return "mean" if "mean" in self.fusions else self.fusions[0]
        return min(self.fusions, key=lambda r: eers.get(r, float("inf")))

    def distances(self, queries: np.ndarray, identity: str, fusion: str) -> np.ndarray:
        """Fused distances `(Q,)` of `(Q, D)` query embeddings to one enrolled identity."""
        k = self.position(identity)
        scorer = self.scorers[k] if self.scorers is not None and fusion == "svm" else None
        return fused_distances(queries, self.references[k], self.check_fusion(fusion), self.distance, scorer)

    def check_model(self, stem: str | os.PathLike, metadata: Mapping[str, Any]) -> None:
        """Refuse a model other than the one the gallery was made with.

        Raises:
            CheckpointError: the fingerprints differ.
        """
        found = model_fingerprint(stem, metadata)
        if found != self.fingerprint:
            raise CheckpointError(
                f"the gallery was enrolled with the model {self.model} ({self.fingerprint[:19]}...), "
                f"not {stem} ({found[:19]}...); enrol again with this model"
            )

    def save(self, directory: str | os.PathLike) -> Path:
        """Write `gallery.json` and `gallery.safetensors` into `directory` (created), atomically each."""
        out = Path(directory)
        arrays = {"references": np.concatenate(self.references).astype(np.float32)}  # (M, D)
        if self.scorers is not None:
            arrays["svm_weights"] = np.stack([s.weights for s in self.scorers]).astype(np.float64)  # (K, D)
            arrays["svm_bias"] = np.array([s.bias for s in self.scorers], dtype=np.float64)  # (K,)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "model": {"path": self.model, "fingerprint": self.fingerprint},
            "distance": self.distance,
            "embedding_dim": self.embedding_dim,
            "fusions": list(self.fusions),
            "identities": [
                {"name": n, "references": list(f)} for n, f in zip(self.identities, self.files, strict=True)
            ],
            "thresholds": self.thresholds,
            **self.info,
        }
        atomic_write(out / ARRAYS_FILE, lambda p: save_file(arrays, str(p)))
        text = json.dumps(meta, indent=2) + "\n"  # a threshold may be -Infinity: reject every claim
        atomic_write(out / GALLERY_FILE, lambda p: p.write_text(text, encoding="utf-8"))
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Gallery:
        """Read a gallery folder written by `save` (its JSON validated before use, no pickles).

        Raises:
            DataError: missing, corrupt or inconsistent gallery files.
        """
        root = Path(directory)
        meta = _read_json(root)
        try:
            arrays = load_file(str(root / ARRAYS_FILE))
        except (SafetensorError, OSError, ValueError) as exc:
            raise DataError(f"unreadable gallery arrays {root / ARRAYS_FILE}: {exc}") from None
        return cls._from_parts(root, meta, arrays)

    @classmethod
    def _from_parts(cls, root: Path, meta: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> Gallery:
        where = root / GALLERY_FILE
        try:
            entries = meta["identities"]
            names = tuple(str(e["name"]) for e in entries)
            files = tuple(tuple(str(p) for p in e["references"]) for e in entries)
            fusions = tuple(check_choice(f, FUSIONS, "fusion") for f in meta["fusions"])
            thresholds = {
                f: {str(int(c)): {**e, "threshold": float(e["threshold"])} for c, e in per.items()}
                for f, per in meta["thresholds"].items()
            }
            model = meta["model"]
            stem, fingerprint = str(model["path"]), str(model["fingerprint"])
            distance = str(meta["distance"])
        except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
            raise DataError(f"{where} is not a valid gallery: {type(exc).__name__}: {exc}") from None
        flat = np.asarray(arrays.get("references"))
        sizes = [len(f) for f in files]
        if flat.ndim != 2 or flat.shape[0] != sum(sizes) or not names or min(sizes) < 1:
            raise DataError(
                f"{where} lists {sum(sizes)} references but {root / ARRAYS_FILE} holds {flat.shape}"
            )
        bounds = np.cumsum([0, *sizes])
        refs = tuple(flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
        scorers = None
        if "svm" in fusions:
            w, b = np.asarray(arrays.get("svm_weights")), np.asarray(arrays.get("svm_bias"))
            if w.shape != (len(names), flat.shape[1]) or b.shape != (len(names),):
                raise DataError(f"{root / ARRAYS_FILE} has no classifier for every identity")
            scorers = tuple(LinearScorer(weights=w[k], bias=float(b[k])) for k in range(len(names)))
        known = {
            "format",
            "version",
            "model",
            "distance",
            "embedding_dim",
            "fusions",
            "identities",
            "thresholds",
        }
        info = {k: v for k, v in meta.items() if k not in known}
        return cls(stem, fingerprint, distance, names, files, refs, fusions, thresholds, scorers, info)


def _read_json(root: Path) -> dict[str, Any]:
    path = root / GALLERY_FILE
    if not path.is_file():
        what = "folder has no" if root.is_dir() else "does not exist, expected a folder with"
        raise DataError(f"gallery {root} {what} {GALLERY_FILE} (make one with `siamese enroll`)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"corrupt gallery file {path}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{path} is not a siamese gallery")
    if meta.get("version") != VERSION:
        raise DataError(f"{path} has gallery version {meta.get('version')!r}; this siamese reads {VERSION}")
    return meta


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
    count = len(gallery.references[gallery.position(claim)])
    rule = gallery.check_fusion(fusion or gallery.default_fusion(count))
    used, entry = gallery.calibrated(rule, count)
    emb = verifier.embed([query], batch_size=1)  # (1, D)
    dist = float(gallery.distances(emb, claim, rule)[0])
    thr = float(entry["threshold"]) if threshold is None else float(threshold)
    cal = entry.get("calibration")
    return ClaimResult(
        same=dist <= thr,
        distance=dist,
        threshold=thr,
        confidence=float(calibrated_confidence(dist, cal)) if isinstance(cal, dict) else None,
        model=verifier.source,
        seconds=time.perf_counter() - start,
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

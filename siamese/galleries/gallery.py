"""The gallery: enrolled identities, their references, calibrated thresholds - the one owner of its files.

A gallery is a folder written by `siamese enroll` (`siamese.galleries.enroll`):

* `gallery.json` (the commit point): the model it was made with (checkpoint stem and a fingerprint
  of its weights and preprocessing), the distance, per identity its reference image files, the
  fusion rules it was built for, per fusion rule and reference count the calibrated 1:1 distance
  threshold (chosen on calibration identities, never the enrolled ones) with the logistic confidence
  calibration, the open-set operating point (FPIR), the search backend, and the name of its arrays file;
* `gallery-<token>.safetensors` (never a pickle): the reference embeddings `(M, D)` (rows in
  identity order) with their stable ids `(M,)`; for svm fusion each identity's linear classifier
  `(K, D)`, `(K,)`; the calibration set's embeddings and labels; and per fusion rule the best
  fused distance of every non-mated search (a calibration image searched against this gallery),
  from which the identification threshold at any FPIR is read;
* the search backend's own files, if any (e.g. `gallery.faiss`).

Writes are atomic as a whole: a new arrays file is written under a new name, then `gallery.json`
is replaced in one rename (the commit), then the old arrays file is removed. A killed write leaves
the previous gallery readable. Galleries written before identification (`gallery.safetensors`,
no calibration arrays) still verify claims; identifying with them asks to enrol again.

Like `siamese.inference.verifier`, this module imports NumPy, safetensors and the lightweight
siamese modules only (never scikit-learn: a stored SVM is scored as `x @ w + b`).
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from siamese.errors import CheckpointError, ConfigError, DataError
from siamese.evaluation.fusion import LinearScorer, fused_distances
from siamese.models.checkpoint import atomic_write, model_fingerprint
from siamese.names import FUSIONS, check_choice

FORMAT = "siamese-gallery"
VERSION = 1
GALLERY_FILE = "gallery.json"
ARRAYS_FILE = "gallery.safetensors"  # the arrays file of galleries written before identification
_ARRAYS_GLOB = "gallery*.safetensors"
DEFAULT_FPIR = 0.01


@dataclass(frozen=True)
class CalibrationSet:
    """Embeddings of the calibration identities (never enrolled), kept so thresholds can be redone
    when the gallery changes without embedding anything again.

    Attributes:
        embeddings: `(S, D)` genuine images; `labels` `(S,)` their identities.
        forgery_embeddings: `(F, D)` skilled forgeries; `forgery_labels` `(F,)` whom they imitate.
    """

    embeddings: np.ndarray
    labels: np.ndarray
    forgery_embeddings: np.ndarray | None = None
    forgery_labels: np.ndarray | None = None

    @property
    def forgeries(self) -> tuple[np.ndarray, np.ndarray] | None:
        """`(embeddings, labels)` of the forgeries, or None."""
        if self.forgery_embeddings is None or self.forgery_labels is None or not len(self.forgery_labels):
            return None
        return self.forgery_embeddings, self.forgery_labels

    @property
    def label_names(self) -> list[str]:
        """Every identity named by a genuine image or a forgery, sorted (the arrays store their codes)."""
        forged = [] if self.forgery_labels is None else self.forgery_labels.tolist()
        return sorted(set(self.labels.tolist()) | set(forged))


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
        thresholds: 1:1 thresholds, `{fusion: {str(R): {"threshold", "eer", "calibration", ...}}}`.
        scorers: per identity its linear SVM (only when "svm" is among `fusions`).
        info: how it was made: data, seed, reference cap, calibration set and rule, search backend.
        reference_ids: per identity, the stable int64 ids of its references (what search backends hold).
        calibration: the calibration identities' embeddings, or None (galleries from before 1:N).
        nonmated: per fusion, `(S,)` best fused distance of each calibration image searched
            against this gallery (what FPIR thresholds are read from).
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
    reference_ids: tuple[np.ndarray, ...] = ()
    calibration: CalibrationSet | None = None
    nonmated: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.reference_ids:  # number the references in order
            bounds = np.cumsum([0, *(len(r) for r in self.references)])
            self.reference_ids = tuple(
                np.arange(a, b, dtype=np.int64) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            )

    @property
    def embedding_dim(self) -> int:
        """D, the size of an embedding."""
        return int(self.references[0].shape[1])

    @property
    def size(self) -> int:
        """N, the number of enrolled identities."""
        return len(self.identities)

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
        if fusion == "svm" and self.scorers is None:
            raise ConfigError(
                "svm fusion needs two enrolled identities or more (the others are its negatives)"
            )
        return fusion

    @property
    def usable_fusions(self) -> tuple[str, ...]:
        """The built rules that can score now (svm needs two identities or more)."""
        return tuple(f for f in self.fusions if f != "svm" or self.scorers is not None)

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
        for rule in self.usable_fusions:
            if self.thresholds.get(rule):
                eer = self.calibrated(rule, count)[1].get("eer")
                if eer is not None and math.isfinite(float(eer)):
                    eers[rule] = float(eer)
        if not self.usable_fusions:  # only svm, with one identity: say why it cannot score yet
            return self.check_fusion(self.fusions[0])
        if not eers:
            return "mean" if "mean" in self.fusions else self.usable_fusions[0]
        return min(self.usable_fusions, key=lambda r: eers.get(r, float("inf")))

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
        self.check_fingerprint(model_fingerprint(stem, metadata), str(stem))

    def check_fingerprint(self, found: str, what: str) -> None:
        """Refuse embeddings of a model whose fingerprint is `found` (`what` names it in the error).

        Raises:
            CheckpointError: the fingerprints differ.
        """
        if found != self.fingerprint:
            raise CheckpointError(
                f"the gallery was enrolled with the model {self.model} ({self.fingerprint[:19]}...), "
                f"not {what} ({found[:19]}...); enrol again with this model"
            )

    # -- changing the enrolled identities (thresholds are redone by siamese.galleries.enroll) --

    def with_references(
        self, names: Sequence[str], files: Sequence[Sequence[str]], references: Sequence[np.ndarray]
    ) -> Gallery:
        """A copy with these references added: new identities enrolled, known ones given more
        references (appended after theirs). Ids continue after the largest id held."""
        next_id = int(max((int(i.max()) for i in self.reference_ids if len(i)), default=-1)) + 1
        merged: dict[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]] = {
            n: (f, r, i)
            for n, f, r, i in zip(
                self.identities, self.files, self.references, self.reference_ids, strict=True
            )
        }
        for name, new_files, refs in zip(names, files, references, strict=True):
            refs = np.asarray(refs, dtype=np.float32).reshape(len(new_files), self.embedding_dim)
            ids = np.arange(next_id, next_id + len(refs), dtype=np.int64)
            next_id += len(refs)
            old_files, old_refs, old_ids = merged.get(name, ((), refs[:0], ids[:0]))
            merged[name] = (
                (*old_files, *(str(f) for f in new_files)),
                np.concatenate([old_refs, refs]),
                np.concatenate([old_ids, ids]),
            )
        return self._with(merged)

    def without(self, names: Sequence[str]) -> Gallery:
        """A copy without these identities (each must be enrolled).

        Raises:
            DataError: a name that is not enrolled, or removing every identity.
        """
        for name in names:
            self.position(name)
        keep = [n for n in self.identities if n not in set(names)]
        if not keep:
            raise DataError("cannot remove every identity: a gallery holds at least one")
        rows = {n: k for k, n in enumerate(self.identities)}
        out = self._with(
            {n: (self.files[rows[n]], self.references[rows[n]], self.reference_ids[rows[n]]) for n in keep}
        )
        if self.scorers is not None:  # the others' classifiers stay valid: fewer negatives, same positives
            out.scorers = tuple(self.scorers[rows[n]] for n in keep)
        return out

    def _with(self, entries: Mapping[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]]) -> Gallery:
        names = tuple(sorted(entries))
        return replace(
            self,
            identities=names,
            files=tuple(entries[n][0] for n in names),
            references=tuple(entries[n][1] for n in names),
            reference_ids=tuple(entries[n][2] for n in names),
            scorers=None,
            nonmated={},
        )

    # -- the open-set operating point --

    def fpir(self, fpir: float | None = None) -> float:
        """The FPIR asked for, else the gallery's (`--fpir` at enrolment, default 1%).

        Raises:
            ConfigError: outside (0, 1).
        """
        value = float(self.info.get("identification", {}).get("fpir", DEFAULT_FPIR) if fpir is None else fpir)
        if not 0.0 < value < 1.0:
            raise ConfigError(f"--fpir must be between 0 and 1 (exclusive), got {value}")
        return value

    def nonmated_distances(self, fusion: str) -> np.ndarray:
        """`(S,)` best fused distances of the non-mated calibration searches for `fusion`.

        Raises:
            DataError: the gallery holds none (made before identification).
        """
        found = self.nonmated.get(self.check_fusion(fusion))
        if found is None or not len(found):
            raise DataError(
                "this gallery has no open-set calibration (it was enrolled before identification); "
                "enrol it again with `siamese enroll`"
            )
        return found

    # -- files --

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the gallery into `directory` (created): a new arrays file, then `gallery.json` in one
        rename (the commit), then old arrays files are removed. A kill at any point leaves a readable
        gallery, the old or the new."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        arrays_name = f"gallery-{secrets.token_hex(4)}.safetensors"
        atomic_write(out / arrays_name, lambda p: save_file(self._arrays(), str(p)))
        text = json.dumps(self._meta(arrays_name), indent=2) + "\n"  # a threshold may be -Infinity
        atomic_write(out / GALLERY_FILE, lambda p: p.write_text(text, encoding="utf-8"))
        for stale in out.glob(_ARRAYS_GLOB):
            if stale.name != arrays_name:
                stale.unlink(missing_ok=True)
        return out

    @staticmethod
    def erase(directory: str | os.PathLike) -> None:
        """Delete the gallery files in `directory`: `gallery.json` first (from then on no gallery is
        there), then its arrays. Other files in the folder are left alone."""
        out = Path(directory)
        (out / GALLERY_FILE).unlink(missing_ok=True)
        for stale in out.glob(_ARRAYS_GLOB):
            stale.unlink(missing_ok=True)

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {
            "references": np.concatenate(self.references).astype(np.float32),  # (M, D)
            "reference_ids": np.concatenate(self.reference_ids).astype(np.int64),  # (M,)
        }
        if self.scorers is not None:
            arrays["svm_weights"] = np.stack([s.weights for s in self.scorers]).astype(np.float64)  # (K, D)
            arrays["svm_bias"] = np.array([s.bias for s in self.scorers], dtype=np.float64)  # (K,)
        cal = self.calibration
        if cal is not None:
            code = {n: i for i, n in enumerate(cal.label_names)}
            arrays["calibration_embeddings"] = np.asarray(cal.embeddings, np.float32)
            arrays["calibration_labels"] = np.array([code[n] for n in cal.labels.tolist()], np.int64)
            if cal.forgeries is not None:
                f_emb, f_lab = cal.forgeries
                arrays["calibration_forgeries"] = np.asarray(f_emb, np.float32)
                arrays["calibration_forgery_labels"] = np.array([code[n] for n in f_lab.tolist()], np.int64)
        for fusion, values in self.nonmated.items():
            arrays[f"nonmated_{fusion}"] = np.asarray(values, np.float64)
        return arrays

    def _meta(self, arrays_name: str) -> dict[str, Any]:
        info = dict(self.info)
        cal = self.calibration
        if cal is not None:
            info["calibration"] = {**info.get("calibration", {}), "label_names": cal.label_names}
        return {
            "format": FORMAT,
            "version": VERSION,
            "arrays": arrays_name,
            "model": {"path": self.model, "fingerprint": self.fingerprint},
            "distance": self.distance,
            "embedding_dim": self.embedding_dim,
            "fusions": list(self.fusions),
            "identities": [
                {"name": n, "references": list(f)} for n, f in zip(self.identities, self.files, strict=True)
            ],
            "thresholds": self.thresholds,
            **info,
        }

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Gallery:
        """Read a gallery folder written by `save` (its JSON validated before use, no pickles).

        Raises:
            DataError: missing, corrupt or inconsistent gallery files.
        """
        root = Path(directory)
        meta = _read_json(root)
        name = meta.get("arrays", ARRAYS_FILE)
        if not isinstance(name, str) or Path(name).name != name:
            raise DataError(f"{root / GALLERY_FILE} names an invalid arrays file {name!r}")
        try:
            arrays = load_file(str(root / name))
        except (SafetensorError, OSError, ValueError) as exc:
            raise DataError(f"unreadable gallery arrays {root / name}: {exc}") from None
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
            label_names = list(meta.get("calibration", {}).get("label_names", []))
        except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
            raise DataError(f"{where} is not a valid gallery: {type(exc).__name__}: {exc}") from None
        flat = np.asarray(arrays.get("references"))
        sizes = [len(f) for f in files]
        if flat.ndim != 2 or flat.shape[0] != sum(sizes) or not names or min(sizes) < 1:
            raise DataError(f"{where} lists {sum(sizes)} references but its arrays hold {flat.shape}")
        ids = np.asarray(arrays.get("reference_ids", np.arange(len(flat))), dtype=np.int64)
        if ids.shape != (len(flat),):
            raise DataError(f"{where}: the arrays hold {ids.shape} reference ids for {len(flat)} references")
        bounds = np.cumsum([0, *sizes])
        spans = list(zip(bounds[:-1], bounds[1:], strict=True))
        scorers = None
        if "svm" in fusions and "svm_weights" in arrays:  # none while one identity is enrolled
            w, b = np.asarray(arrays.get("svm_weights")), np.asarray(arrays.get("svm_bias"))
            if w.shape != (len(names), flat.shape[1]) or b.shape != (len(names),):
                raise DataError(f"{where}: the arrays hold no classifier for every identity")
            scorers = tuple(LinearScorer(weights=w[k], bias=float(b[k])) for k in range(len(names)))
        known = {
            "format",
            "version",
            "arrays",
            "model",
            "distance",
            "embedding_dim",
            "fusions",
            "identities",
            "thresholds",
        }
        info = {k: v for k, v in meta.items() if k not in known}
        return cls(
            stem,
            fingerprint,
            distance,
            names,
            files,
            tuple(flat[a:b] for a, b in spans),
            fusions,
            thresholds,
            scorers,
            info,
            reference_ids=tuple(ids[a:b] for a, b in spans),
            calibration=_calibration(arrays, label_names, where),
            nonmated={f: np.asarray(arrays[f"nonmated_{f}"]) for f in fusions if f"nonmated_{f}" in arrays},
        )


def _calibration(
    arrays: Mapping[str, np.ndarray], label_names: list[str], where: Path
) -> CalibrationSet | None:
    if "calibration_embeddings" not in arrays:
        return None
    names = np.array(label_names, dtype=str)
    try:
        labels = names[np.asarray(arrays["calibration_labels"])]
        forgeries = arrays.get("calibration_forgeries")
        f_labels = names[np.asarray(arrays["calibration_forgery_labels"])] if forgeries is not None else None
    except (KeyError, IndexError) as exc:
        raise DataError(f"{where}: inconsistent calibration arrays ({exc})") from None
    return CalibrationSet(np.asarray(arrays["calibration_embeddings"]), labels, forgeries, f_labels)


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

"""Enrolling identities into a gallery, adding to it, removing from it - and redoing its thresholds.

Every change ends in `calibrate_gallery`: the 1:1 thresholds per fusion rule and reference count
(calibrated on the calibration identities, never the enrolled ones), the per-identity SVMs, and the
open-set calibration - every calibration image searched against the gallery as it now is (its
size N included), the non-mated distances the FPIR thresholds are read from. The calibration
identities' embeddings live in the gallery, so adding or removing never embeds them again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from siamese.data import scan_folder
from siamese.errors import ConfigError, DataError
from siamese.evaluation.fusion import fit_identity_svms
from siamese.evaluation.references import (
    calibratable_count,
    calibrate_references,
    check_fusions,
    reference_order,
)
from siamese.galleries.gallery import CalibrationSet, Gallery
from siamese.galleries.identify import Identifier
from siamese.galleries.index import save_gallery
from siamese.inference.embedding import ProgressCallback
from siamese.inference.model import EmbeddingModel
from siamese.inference.references import EmbeddedSet, calibration_index, embed_indexes
from siamese.inference.references import shared_images as _shared
from siamese.models.checkpoint import model_fingerprint

logger = logging.getLogger(__name__)


def _gallery_references(data: EmbeddedSet, cap: int | None, seed: int) -> tuple[list[str], list[np.ndarray]]:
    """Per identity (sorted), the rows of its references: at most `cap`, in `reference_order`."""
    names, rows = sorted(set(data.labels.tolist())), []
    for name in names:
        own = np.flatnonzero(data.labels == name)
        take = len(own) if cap is None else min(cap, len(own))
        rows.append(np.sort(own[reference_order(len(own), name, seed)[:take]]))
    return names, rows


def calibrate_gallery(gallery: Gallery) -> Gallery:
    """The gallery with its thresholds, classifiers and open-set calibration redone for its references.

    Raises:
        DataError: no calibration set, or one with fewer than two identities of two images.
    """
    cal = gallery.calibration
    if cal is None:
        raise DataError(
            "the gallery keeps no calibration set (enrolled before identification); enrol it again"
        )
    reachable = calibratable_count(cal.labels)
    if reachable < 1:
        raise DataError("the calibration set needs at least two identities with two or more images")
    how = gallery.info.get("calibration", {})
    rule, target_far, seed = how.get("rule", "eer"), how.get("target_far") or 1e-3, int(how.get("seed", 0))
    counts = sorted({min(len(r), reachable) for r in gallery.references})
    thresholds = calibrate_references(
        cal.embeddings,
        cal.labels,
        counts,
        gallery.fusions,
        gallery.distance,
        rule,
        target_far,
        seed,
        cal.forgeries,
    )
    scorers = gallery.scorers
    if "svm" in gallery.fusions and (scorers is None or len(scorers) != gallery.size):
        scorers = tuple(fit_identity_svms(gallery.references)) if gallery.size > 1 else None
        if scorers is None:
            logger.warning("svm fusion waits for a second identity: it has no negatives yet")
    out = replace(gallery, thresholds=thresholds, scorers=scorers, nonmated={})
    out.nonmated = {f: Identifier(out, f).best_distances(cal.embeddings) for f in out.usable_fusions}
    return out


def _new_references(
    model: EmbeddingModel,
    embed: Any,
    data_root: str | os.PathLike | None,
    embeddings: str | os.PathLike | None,
) -> tuple[EmbeddedSet, Any]:
    """The images to enrol, embedded: from a folder (embedded now) or from `siamese embed` output."""
    if (data_root is None) == (embeddings is None):
        raise ConfigError("enrol from a DATA folder or from --embeddings FILE (one of them)")
    if data_root is not None:
        index = scan_folder(data_root, min_identities=1)
        (data,) = embed_indexes(embed, index)
        return data, index
    from siamese.inference.writers import read_embeddings

    table = read_embeddings(embeddings)  # type: ignore[arg-type]
    mine = model_fingerprint(Path(model.source), model.metadata)
    if table.fingerprint is not None and table.fingerprint != mine:
        raise ConfigError(f"{embeddings} was embedded with another model ({table.model}), not {model.source}")
    if table.fingerprint is None:
        logger.warning("%s records no model: trusting that %s embedded it", embeddings, model.source)
    if table.embeddings.shape[1:] != (model.embedding_dim,):
        raise DataError(
            f"{embeddings} holds {table.embeddings.shape[1]}-d rows; the model makes {model.embedding_dim}"
        )
    empty = np.zeros((0, model.embedding_dim), np.float32)
    data = EmbeddedSet(
        list(table.paths),
        table.embeddings,
        np.array(table.identities, dtype=str),
        [],
        empty,
        np.array([], str),
    )
    return data, None


def _calibration(
    model: EmbeddingModel, embed: Any, calibration: Any, index: Any
) -> tuple[CalibrationSet, dict]:
    cal_index, cal_info = calibration_index(model.run.path, calibration)
    shared = 0 if index is None else _shared(index, cal_index)
    if shared:
        logger.warning(
            "%d enrolled images are also calibration images: decisions on their identities are "
            "calibrated on themselves (pass --calibration DIR with other identities)",
            shared,
        )
    (cal,) = embed_indexes(embed, cal_index)
    forgeries = cal.forgeries
    return CalibrationSet(
        cal.embeddings,
        cal.labels,
        None if forgeries is None else forgeries[0],
        None if forgeries is None else forgeries[1],
    ), {**cal_info, "identities": sorted(set(cal.labels.tolist()))}


def enroll(
    model_path: str | os.PathLike,
    data_root: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    embeddings: str | os.PathLike | None = None,
    add: bool = False,
    references: int | None = None,
    fusions: Sequence[str] | None = None,
    calibration: str | os.PathLike | None = None,
    seed: int = 0,
    fpir: float | None = None,
    backend: str | None = None,
    backend_options: dict[str, Any] | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    workers: int = 0,
    on_progress: ProgressCallback | None = None,
    detect: bool = False,
) -> Gallery:
    """Enrol every identity of `data_root` (or of an embeddings file) into a gallery, or add them to one.

    Args:
        model_path: run directory, checkpoint stem or file.
        data_root: identity folders to enrol, `data_root/<identity>/<image>`; None with `embeddings`.
        out_dir: the gallery folder.
        embeddings: `siamese embed` output (file or manifest) to enrol instead of images.
        add: add to the gallery in `out_dir` (new identities enrolled, known ones given more
            references) instead of replacing it; the model must be the gallery's.
        references: at most this many references per identity from this data (a seeded choice).
        fusions: the rules to build and calibrate (default all; with `add`, the gallery's).
        calibration: a labelled folder of other identities; default the run's validation identities.
        seed: seed of the reference choice and calibration.
        fpir: the gallery's default open-set operating point (default 1%).
        backend: the search backend (default "exact"; with `add`, the gallery's).
        backend_options: its options.
        device, batch_size, workers, on_progress: how images are embedded.
        detect: embed each image's largest face, not the whole image (`EmbeddingModel`'s `detect`);
            a new gallery records it in its `info["detect"]`.

    Raises:
        ConfigError: bad options, no calibration set, or `detect` without OpenCV. DataError: bad data.
        CheckpointError: bad model, or (with `add`) not the gallery's model.
    """
    if references is not None and (isinstance(references, bool) or references < 1):
        raise ConfigError(f"--references must be an integer >= 1, got {references!r}")
    model = EmbeddingModel.from_checkpoint(model_path, device=device, detect=detect)
    existing = Gallery.load(out_dir) if add else None
    if existing is not None:
        existing.check_model(model.source, model.metadata)
        if fusions and tuple(check_fusions(fusions)) != existing.fusions:
            raise ConfigError(
                f"the gallery is built for {', '.join(existing.fusions)} fusion: --add keeps it"
            )
        if calibration is not None:
            raise ConfigError(
                "the gallery keeps the calibration set it was enrolled with: no --calibration with --add"
            )
    chosen = existing.fusions if existing is not None else check_fusions(fusions)
    embed = model.embedder(batch_size, workers, on_progress)
    data, index = _new_references(model, embed, data_root, embeddings)
    names, rows = _gallery_references(data, references, seed)
    files = [[data.paths[i] for i in r] for r in rows]
    refs = [np.asarray(data.embeddings[r], dtype=np.float32) for r in rows]
    if existing is not None and existing.calibration is not None:
        gallery = existing.with_references(names, files, refs)
    else:
        cal, cal_info = _calibration(model, embed, calibration, index)
        gallery = _new_gallery(model, chosen, cal, cal_info, names, files, refs, seed)
        if existing is not None:  # a gallery from before 1:N: keep its identities, calibrate anew
            gallery = replace(
                existing, calibration=cal, info={**existing.info, **gallery.info}
            ).with_references(names, files, refs)
    source = str(Path(data_root if data_root is not None else embeddings).absolute())  # type: ignore[arg-type]
    if existing is None:
        gallery.info.update(data=source, max_references=references, detect=detect)
    else:
        gallery.info["added"] = [*gallery.info.get("added", []), source]
    written = _commit(gallery, out_dir, existing, fpir, backend, backend_options)
    logger.info(
        "%s %d identities: %s now holds %d", "added" if add else "enrolled", len(names), out_dir, written.size
    )
    return written


def _commit(
    gallery: Gallery,
    out_dir: str | os.PathLike,
    existing: Gallery | None,
    fpir: float | None = None,
    backend: str | None = None,
    backend_options: dict[str, Any] | None = None,
) -> Gallery:
    """Recalibrate `gallery` and write it over `existing` (the gallery in `out_dir`, if any)."""
    gallery.info["identification"] = {**gallery.info.get("identification", {}), "fpir": gallery.fpir(fpir)}
    gallery = calibrate_gallery(gallery)
    return save_gallery(gallery, out_dir, previous=existing, backend=backend, options=backend_options)


def calibration_set(
    model: EmbeddingModel,
    calibration: str | os.PathLike | None = None,
    batch_size: int = 64,
    on_progress: ProgressCallback | None = None,
) -> tuple[CalibrationSet, dict[str, Any]]:
    """The calibration identities a new gallery is calibrated on, embedded: `calibration`
    (a labelled folder) or the model's run's validation identities, and how they were chosen.

    Raises:
        ConfigError: no calibration folder and the run records no validation identities.
    """
    return _calibration(model, model.embedder(batch_size, 0, on_progress), calibration, None)


def add_embedded(
    directory: str | os.PathLike,
    existing: Gallery,
    names: Sequence[str],
    references: Sequence[np.ndarray],
    files: Sequence[Sequence[str]],
) -> Gallery:
    """Add already-embedded references to the gallery in `directory` (new identities enrolled, known
    ones given more references), recalibrate and write it atomically.

    Args:
        directory: the gallery folder.
        existing: the gallery as it is in `directory`.
        names: an identity per entry.
        references: per identity its `(R, D)` embeddings by the gallery's model.
        files: per identity a name for each reference (what the gallery records as its source).
    """
    gallery = existing.with_references(list(names), [list(f) for f in files], list(references))
    return _commit(gallery, directory, existing)


def create_embedded(
    model: EmbeddingModel,
    directory: str | os.PathLike,
    calibration: tuple[CalibrationSet, dict[str, Any]],
    names: Sequence[str],
    references: Sequence[np.ndarray],
    files: Sequence[Sequence[str]],
    seed: int = 0,
) -> Gallery:
    """A new gallery in `directory` from already-embedded references (every fusion rule, the exact
    backend, the default FPIR), calibrated on `calibration` (`calibration_set`)."""
    cal, cal_info = calibration
    lists = [list(f) for f in files]
    gallery = _new_gallery(
        model, check_fusions(None), cal, cal_info, list(names), lists, list(references), seed
    )
    return _commit(gallery, directory, None)


def _new_gallery(
    model: EmbeddingModel,
    fusions: Sequence[str],
    cal: CalibrationSet,
    cal_info: dict[str, Any],
    names: list[str],
    files: list[list[str]],
    refs: list[np.ndarray],
    seed: int,
) -> Gallery:
    stem = Path(model.source)
    rule, target_far = model.info.threshold_rule, model.info.target_far
    return Gallery(
        model=str(stem.absolute()),
        fingerprint=model_fingerprint(stem, model.metadata),
        distance=model.distance,
        identities=tuple(names),
        files=tuple(tuple(f) for f in files),
        references=tuple(refs),
        fusions=tuple(fusions),
        thresholds={},
        info={
            "seed": int(seed),
            "svm": {"kernel": "linear", "C": 1.0, "class_weight": "balanced"} if "svm" in fusions else None,
            "calibration": {
                **cal_info,
                "rule": rule,
                "target_far": target_far if rule == "far" else None,
                "seed": int(seed),
            },
        },
        calibration=cal,
    )


def remove_identities(
    directory: str | os.PathLike, names: Sequence[str], existing: Gallery | None = None
) -> Gallery:
    """Remove enrolled identities from the gallery in `directory` (thresholds redone, index updated).

    Args:
        directory: the gallery folder.
        names: the identities to remove.
        existing: the gallery as it is in `directory`, when the caller holds it (read otherwise).

    Raises:
        DataError: a name that is not enrolled, or removing every identity.
    """
    if not names:
        raise ConfigError("name at least one identity to remove")
    existing = Gallery.load(directory) if existing is None else existing
    return _commit(existing.without(list(dict.fromkeys(names))), directory, existing)

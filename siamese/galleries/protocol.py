"""The open-set identification protocol on labelled embeddings (`siamese evaluate --protocol identify`,
`benchmarks/identify.py`).

The identities are split by a seeded shuffle: half are enrolled (each with R references, a seeded
choice; its other images are the mated searches), a quarter are the *calibration strangers* (their
images searched against the gallery set the FPIR thresholds, as at enrolment) and a quarter the
*fresh strangers* (people no threshold ever saw, on whom the FPIR actually reached is measured).
Every rule scores every enrolled identity exactly, with the same gallery code `siamese identify` uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from siamese.errors import DataError
from siamese.evaluation.fusion import fused_matrix
from siamese.evaluation.identification import FPIRS, RANKS, dir_fpir_curve, identification_report, mate_ranks
from siamese.evaluation.references import check_fusions, reference_order
from siamese.galleries.enroll import calibrate_gallery
from siamese.galleries.gallery import CalibrationSet, Gallery


def split_identities(
    labels: Sequence[str] | np.ndarray, seed: int = 0
) -> tuple[list[str], list[str], list[str]]:
    """(enrolled, calibration strangers, fresh strangers): a seeded half, quarter and quarter.

    Raises:
        DataError: fewer than 8 identities (two calibration strangers are the fewest that calibrate).
    """
    names = sorted(set(np.asarray(labels).tolist()))
    if len(names) < 8:
        raise DataError(f"the identification protocol needs at least 8 identities, got {len(names)}")
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    half, three = len(order) // 2, (3 * len(order)) // 4
    return sorted(order[:half]), sorted(order[half:three]), sorted(order[three:])


def identification_protocol(
    embeddings: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    distance: str,
    counts: Sequence[int] = (1, 5),
    fusions: Sequence[str] | None = None,
    seed: int = 0,
    fpirs: Sequence[float] = FPIRS,
    ranks: Sequence[int] = RANKS,
    curves: bool = False,
) -> dict[str, Any]:
    """CMC and FNIR at FPIR per reference count R and fusion rule, with the gallery size N.

    Args:
        embeddings: `(N_images, D)`.
        labels: `(N_images,)` identities.
        distance: "euclidean" or "cosine".
        counts: reference counts R; an R enrols the enrolled identities with at least R + 1 images.
        fusions: rules scored (default all).
        seed: the identity split and the reference choice.
        fpirs, ranks: the operating points and CMC ranks reported.
        curves: also return the DIR/FPIR curve points (under "curve") for plotting.

    Raises:
        DataError: too few identities, or no identity with R + 1 images for some R.
    """
    labels = np.asarray(labels).astype(str)
    emb = np.asarray(embeddings, dtype=np.float32)
    enrolled, cal_names, fresh_names = split_identities(labels, seed)
    cal_rows = np.flatnonzero(np.isin(labels, cal_names))
    fresh_rows = np.flatnonzero(np.isin(labels, fresh_names))
    chosen = check_fusions(fusions)
    out: dict[str, Any] = {
        "identities": {"enrolled": len(enrolled), "calibration": len(cal_names), "fresh": len(fresh_names)},
        "seed": int(seed),
        "counts": {},
    }
    for count in counts:
        gallery, probes, mates = _gallery(emb, labels, enrolled, count, seed, distance, chosen)
        gallery.calibration = CalibrationSet(emb[cal_rows], labels[cal_rows])
        gallery = calibrate_gallery(gallery)
        per: dict[str, Any] = {}
        for fusion in chosen:
            scorers = list(gallery.scorers) if fusion == "svm" and gallery.scorers else None
            mated = fused_matrix(probes, gallery.references, fusion, distance, scorers)  # (Q, N)
            fresh = fused_matrix(emb[fresh_rows], gallery.references, fusion, distance, scorers).min(axis=1)
            r = mate_ranks(mated, mates)
            mate_d = mated[np.arange(len(mates)), mates]
            per[fusion] = identification_report(
                r, mate_d, gallery.nonmated[fusion], fresh, gallery.size, fpirs, ranks
            )
            if curves:
                fpir, dir_, _ = dir_fpir_curve(r, mate_d, fresh)
                per[fusion]["curve"] = {"fpir": fpir.tolist(), "dir": dir_.tolist()}
        out["counts"][str(count)] = per
    return out


def _gallery(
    emb: np.ndarray,
    labels: np.ndarray,
    enrolled: list[str],
    count: int,
    seed: int,
    distance: str,
    fusions: tuple[str, ...],
) -> tuple[Gallery, np.ndarray, np.ndarray]:
    """An in-memory gallery of the enrolled identities with `count` + 1 images or more, and its
    mated searches `(Q, D)` with the gallery column of each one's mate `(Q,)`."""
    names, refs, probes, mates = [], [], [], []
    for name in enrolled:
        own = np.flatnonzero(labels == name)
        if len(own) <= count:
            continue
        order = own[reference_order(len(own), name, seed)]
        names.append(name)
        refs.append(emb[np.sort(order[:count])])
        probes.append(emb[order[count:]])
        mates += [len(names) - 1] * (len(own) - count)
    if len(names) < 2:
        raise DataError(
            f"fewer than two enrolled identities have {count + 1} images (R = {count} plus a search)"
        )
    gallery = Gallery(
        model="",
        fingerprint="",
        distance=distance,
        identities=tuple(names),
        files=tuple(tuple(f"{n}#{i}" for i in range(count)) for n in names),
        references=tuple(refs),
        fusions=fusions,
        thresholds={},
        info={"calibration": {"rule": "eer", "seed": int(seed)}},
    )
    return gallery, np.concatenate(probes), np.array(mates, dtype=np.int64)

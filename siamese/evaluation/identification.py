"""1:N identification metrics (NIST FRTE 1:N's definitions), pure functions on distances.

A *mated* search is a query whose identity is enrolled; a *non-mated* search one whose identity is
not. Distances are fused distances (lower = more alike) and a candidate is returned when its
distance is <= the threshold T.

- CMC (closed set): the share of mated searches whose mate is ranked at or above rank r.
- FPIR(N, T): the share of non-mated searches that return any candidate, i.e. whose nearest
  identity's distance is <= T.
- FNIR(N, R, T): the share of mated searches whose mate is not returned at rank <= R with a
  distance <= T (identification mode: R = 1).
- DIR = 1 - FNIR, the detection and identification rate; the DIR/FPIR curve sweeps T.

>>> cmc([1, 1, 2, 7], (1, 5))
{'rank-1': 0.5, 'rank-5': 0.75}
>>> t = fpir_threshold([0.2, 0.5, 0.9, 1.0], 0.25)
>>> t, fpir_at([0.2, 0.5, 0.9, 1.0], t)
(0.2, 0.25)
>>> fnir_at([1, 1, 2], [0.1, 0.3, 0.1], 0.2)
0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from siamese.errors import ConfigError, DataError

FPIRS = (0.003, 0.01, 0.1)
"""The FPIRs reported by default (those NIST FRTE 1:N tabulates)."""
RANKS = (1, 5, 10)


def _vector(x: npt.ArrayLike, what: str) -> np.ndarray:
    out = np.asarray(x, dtype=np.float64).reshape(-1)
    if not len(out):
        raise DataError(f"no {what}")
    if np.isnan(out).any():
        raise DataError(f"{what} contain NaN")
    return out


def _check_rate(rate: float) -> float:
    if not 0.0 < float(rate) < 1.0:
        raise ConfigError(f"an FPIR must be between 0 and 1 (exclusive), got {rate!r}")
    return float(rate)


def mate_ranks(distances: npt.ArrayLike, mates: npt.ArrayLike) -> np.ndarray:
    """1-based rank of each query's mate among all identities.

    Args:
        distances: `(Q, N)` fused distances of each mated query to every enrolled identity.
        mates: `(Q,)` the column of each query's own identity.

    Ties are ranked by column (identities sorted by name, as `Identifier` ranks them).

    >>> mate_ranks([[0.3, 0.1, 0.3], [0.2, 0.2, 0.5]], [2, 1]).tolist()
    [3, 2]
    """
    d = np.asarray(distances, dtype=np.float64)
    m = np.asarray(mates, dtype=np.int64)
    own = d[np.arange(len(m)), m][:, None]  # (Q, 1)
    cols = np.arange(d.shape[1])[None, :]
    ahead = (d < own) | ((d == own) & (cols < m[:, None]))
    return 1 + ahead.sum(axis=1)


def cmc(ranks: npt.ArrayLike, at: Sequence[int] = RANKS) -> dict[str, float]:
    """Closed-set identification rate at each rank of `at`: the share of mate ranks <= r."""
    r = _vector(ranks, "mated searches")
    return {f"rank-{k}": float(np.mean(r <= k)) for k in at}


def fpir_at(nonmated: npt.ArrayLike, threshold: float) -> float:
    """The share of non-mated searches whose nearest identity's distance is <= `threshold`."""
    return float(np.mean(_vector(nonmated, "non-mated searches") <= threshold))


def fpir_threshold(nonmated: npt.ArrayLike, fpir: float) -> float:
    """The loosest distance threshold whose FPIR on these non-mated searches is at most `fpir`.

    Args:
        nonmated: `(S,)` the nearest identity's distance of each non-mated search.
        fpir: the target false-positive identification rate.

    Returns:
        The largest of the searches' distances that keeps `fpir_at <= fpir`, or just below the
        smallest when even one accepted search is too many (S * fpir < 1).

    >>> fpir_threshold([0.4, 0.1, 0.1, 0.9], 0.5)
    0.1
    >>> fpir_threshold([0.4, 0.1, 0.1, 0.9], 0.4) < 0.1  # the tie at 0.1 would accept two of four
    True
    """
    s = np.sort(_vector(nonmated, "non-mated searches"))
    allowed = int(np.floor(_check_rate(fpir) * len(s) + 1e-9))
    accepted = np.searchsorted(s, s, side="right")  # searches accepted at each value as threshold
    ok = s[accepted <= allowed]
    return float(ok[-1]) if len(ok) else float(np.nextafter(s[0], -np.inf))


def fnir_at(ranks: npt.ArrayLike, mate_distances: npt.ArrayLike, threshold: float, rank: int = 1) -> float:
    """The share of mated searches whose mate is not at rank <= `rank` with distance <= `threshold`."""
    r = _vector(ranks, "mated searches")
    d = _vector(mate_distances, "mated searches")
    if r.shape != d.shape:
        raise DataError(f"{len(r)} mate ranks but {len(d)} mate distances")
    return float(np.mean(~((r <= rank) & (d <= threshold))))


def dir_fpir_curve(
    ranks: npt.ArrayLike, mate_distances: npt.ArrayLike, nonmated: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DIR (rank 1) against FPIR as the threshold sweeps every non-mated distance.

    Returns:
        `(fpir, dir, thresholds)`, FPIR increasing.
    """
    s = np.sort(_vector(nonmated, "non-mated searches"))
    thresholds = np.concatenate([[np.nextafter(s[0], -np.inf)], np.unique(s)])
    fpir = np.array([np.mean(s <= t) for t in thresholds])
    dir_ = np.array([1.0 - fnir_at(ranks, mate_distances, t) for t in thresholds])
    return fpir, dir_, thresholds


def identification_report(
    ranks: npt.ArrayLike,
    mate_distances: npt.ArrayLike,
    calibration: npt.ArrayLike,
    fresh: npt.ArrayLike,
    gallery_size: int,
    fpirs: Sequence[float] = FPIRS,
    at: Sequence[int] = RANKS,
) -> dict[str, Any]:
    """CMC, and per target FPIR the threshold set on `calibration` non-mated searches with the FNIR of
    the mated searches and the FPIR measured on `fresh` non-mated searches (other people).

    Args:
        ranks, mate_distances: `(Q,)` per mated search, its mate's rank and fused distance.
        calibration: `(S,)` nearest distances of non-mated searches that set the thresholds.
        fresh: `(S',)` nearest distances of non-mated searches by people the thresholds never saw.
        gallery_size: N, the enrolled identities.
    """
    cal = _vector(calibration, "calibration non-mated searches")
    out: dict[str, Any] = {
        "gallery_size": int(gallery_size),
        "mated_searches": len(_vector(ranks, "mated searches")),
        "nonmated_calibration": len(cal),
        "nonmated_fresh": len(_vector(fresh, "fresh non-mated searches")),
        "cmc": cmc(ranks, at),
        "open_set": {},
    }
    for rate in fpirs:
        t = fpir_threshold(cal, rate)
        out["open_set"][f"fpir={rate:g}"] = {
            "threshold": t,
            "fnir": fnir_at(ranks, mate_distances, t),
            "fpir_calibration": fpir_at(cal, t),
            "fpir_fresh": fpir_at(fresh, t),
            "resolvable": bool(rate * len(cal) >= 1.0),
        }
    return out

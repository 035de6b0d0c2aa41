"""1:N metrics against hand-computed cases and their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from siamese.errors import ConfigError, DataError
from siamese.evaluation.identification import (
    cmc,
    dir_fpir_curve,
    fnir_at,
    fpir_at,
    fpir_threshold,
    identification_report,
    mate_ranks,
)


def test_mate_ranks_by_hand_with_ties_broken_by_column() -> None:
    d = np.array(
        [
            [0.5, 0.2, 0.9],  # mate 0: one identity nearer -> rank 2
            [0.3, 0.3, 0.3],  # mate 2: all tied, columns 0 and 1 first -> rank 3
            [0.1, 0.4, 0.4],  # mate 0: nearest -> rank 1
            [0.4, 0.4, 0.1],  # mate 1: tied with column 0 (ahead) and column 2 nearer -> rank 3
        ]
    )
    assert mate_ranks(d, [0, 2, 0, 1]).tolist() == [2, 3, 1, 3]


def test_cmc_by_hand() -> None:
    assert cmc([1, 2, 2, 6, 11], (1, 5, 10)) == {"rank-1": 0.2, "rank-5": 0.6, "rank-10": 0.8}


def test_fpir_threshold_is_the_loosest_that_keeps_the_rate() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        s = np.round(rng.uniform(0, 1, size=int(rng.integers(5, 60))), 2)  # ties on purpose
        rate = float(rng.choice([0.01, 0.05, 0.1, 0.3]))
        t = fpir_threshold(s, rate)
        assert fpir_at(s, t) <= rate + 1e-12
        looser = s[s > t]
        if len(looser):  # the next value up would accept too many
            assert fpir_at(s, looser.min()) > rate


def test_fpir_threshold_below_every_search_when_unresolvable() -> None:
    s = [0.3, 0.5, 0.7]
    t = fpir_threshold(s, 0.1)  # 0.1 * 3 < 1: no search may pass
    assert t < 0.3 and fpir_at(s, t) == 0.0
    with pytest.raises(ConfigError):
        fpir_threshold(s, 0.0)
    with pytest.raises(DataError):
        fpir_threshold([], 0.1)


def test_fnir_counts_rank_and_threshold() -> None:
    ranks = [1, 1, 1, 2, 3]
    dist = [0.1, 0.25, 0.4, 0.1, 0.1]
    # at T = 0.3: returned at rank 1 within T are searches 0 and 1 -> FNIR 3/5
    assert fnir_at(ranks, dist, 0.3) == pytest.approx(0.6)
    assert fnir_at(ranks, dist, 0.3, rank=3) == pytest.approx(0.2)  # investigation mode (R = 3)
    assert fnir_at(ranks, dist, np.inf) == pytest.approx(0.4)  # closed set: 1 - rank-1 rate


def test_dir_fpir_curve_is_monotone_and_ends_at_the_closed_set_rate() -> None:
    rng = np.random.default_rng(1)
    ranks = rng.integers(1, 4, size=40)
    mate = rng.uniform(0, 1, size=40)
    nonmated = rng.uniform(0.3, 1.2, size=30)
    fpir, dir_, thr = dir_fpir_curve(ranks, mate, nonmated)
    assert fpir[0] == 0.0 and fpir[-1] == 1.0
    assert np.all(np.diff(fpir) >= 0) and np.all(np.diff(dir_) >= 0) and np.all(np.diff(thr) > 0)
    assert dir_[-1] == pytest.approx(np.mean((ranks == 1) & (mate <= nonmated.max())))


def test_identification_report_measures_fresh_strangers_at_calibrated_thresholds() -> None:
    cal = np.linspace(0.2, 1.2, 100)
    fresh = np.linspace(0.25, 1.25, 100)
    out = identification_report(
        [1, 1, 2, 1], [0.1, 0.3, 0.1, 0.5], cal, fresh, gallery_size=7, fpirs=(0.01, 0.1)
    )
    assert out["gallery_size"] == 7 and out["mated_searches"] == 4
    assert out["cmc"]["rank-1"] == 0.75
    at10 = out["open_set"]["fpir=0.1"]
    assert at10["threshold"] == pytest.approx(cal[9]) and at10["fpir_calibration"] == pytest.approx(0.1)
    assert at10["fpir_fresh"] == pytest.approx(np.mean(fresh <= cal[9]))
    assert at10["fnir"] == pytest.approx(0.75)  # T = 0.2909: only search 0 is at rank 1 within T
    assert out["open_set"]["fpir=0.01"]["resolvable"] is True

"""The epoch-selection rule on constructed validation histories."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from siamese.training import selection
from siamese.training.selection import SELECT_RULES, eer_standard_error, select_epoch

NAN = float("nan")


def test_doctests() -> None:
    assert doctest.testmod(selection).failed == 0


def test_standard_error_by_hand() -> None:
    # p(1-p)/n = 0.04 * 0.96 / 1000 = 3.84e-5
    assert eer_standard_error(0.04, 1000) == pytest.approx(math.sqrt(3.84e-5))
    assert eer_standard_error(0.5, 100) == pytest.approx(0.05)
    assert eer_standard_error(0.0, 1000) == 0.0
    assert eer_standard_error(1.0, 1000) == 0.0


def test_standard_error_of_few_identities_by_hand() -> None:
    # 48 identities: genuine draws min(500, 48) = 48, impostor draws min(500, 48 * 47 / 2) = 500
    expected = 0.5 * math.sqrt(0.04 * 0.96 * (1 / 48 + 1 / 500))
    assert eer_standard_error(0.04, 1000, identities=48) == pytest.approx(expected)
    # 6 identities: 6 genuine and 15 impostor draws, however many pairs are scored
    expected = 0.5 * math.sqrt(0.04 * 0.96 * (1 / 6 + 1 / 15))
    assert eer_standard_error(0.04, 1000, identities=6) == pytest.approx(expected)
    assert eer_standard_error(0.04, 100_000, identities=6) == pytest.approx(expected)


def test_many_identities_are_independent_pairs() -> None:
    assert eer_standard_error(0.04, 1000, identities=2000) == pytest.approx(eer_standard_error(0.04, 1000))


def test_standard_error_shrinks_with_pairs() -> None:
    assert eer_standard_error(0.04, 100_000) == pytest.approx(eer_standard_error(0.04, 1000) / 10)


def test_standard_error_needs_pairs_and_identities() -> None:
    with pytest.raises(ValueError, match="n_pairs"):
        eer_standard_error(0.1, 0)
    with pytest.raises(ValueError, match="identities"):
        eer_standard_error(0.1, 1000, identities=0)
    # two pairs of one identity: one draw on each side
    assert eer_standard_error(0.5, 2, identities=1) == pytest.approx(0.5 * math.sqrt(0.25 * 2))


def test_noise_only_dips_keep_the_last_epoch() -> None:
    # the omniglot run's shape: epoch 2 at 3.6% against 4.0% at the end, 0.4 points on 1,000 pairs
    history = [0.080, 0.036, 0.052, 0.045, 0.041, 0.043, 0.038, 0.042, 0.039, 0.041, 0.037, 0.040]
    assert select_epoch(history, 1000) == 11
    assert select_epoch(history, 1000, "best") == 1  # what the lowest value alone would keep


def test_a_real_improvement_that_degrades_keeps_the_earlier_epoch() -> None:
    history = [0.20, 0.08, 0.03, 0.05, 0.07, 0.09]  # 6 points, ~7 standard errors of the last
    assert select_epoch(history, 1000) == 2


def test_the_same_gap_counts_with_more_pairs() -> None:
    history = [0.036, 0.050, 0.040]
    assert select_epoch(history, 1000) == 2  # se(0.04, 1000) = 0.0062 > 0.004
    assert select_epoch(history, 100_000) == 0  # se = 0.00062 < 0.004


def test_few_validation_identities_keep_the_last_epoch() -> None:
    # an ORL run (6 validation people): the validation EER dips to 1% mid-run and settles at 3.2%
    # while the test EER keeps improving; 2.2 points is ~7 standard errors of independent pairs
    # but half of one of 6 identities
    history = [0.15, 0.088, 0.042, 0.028, 0.010, 0.014, 0.030, 0.010, 0.034, 0.030, 0.032, 0.032]
    assert select_epoch(history, 1000) == 4
    assert select_epoch(history, 1000, identities=6) == 11


def test_margin_in_standard_errors() -> None:
    # last 0.5 on 100 pairs: one standard error is 0.05
    assert select_epoch([0.44, 0.5], 100) == 0  # 0.06 > 0.05
    assert select_epoch([0.46, 0.5], 100) == 1  # 0.04 < 0.05
    assert select_epoch([0.44, 0.5], 100, margin=2.0) == 1  # 0.06 < 0.10
    assert select_epoch([0.46, 0.5], 100, margin=0.0) == 0  # any improvement
    # 0.5 on 4 identities: 4 genuine and 6 impostor draws, one standard error ~0.16
    assert select_epoch([0.40, 0.5], 100, identities=4) == 1


def test_ties() -> None:
    assert select_epoch([0.04, 0.05, 0.04], 1000) == 2  # no better than the last
    assert select_epoch([0.04, 0.05, 0.04], 1000, "best") == 0  # earliest of ties
    assert select_epoch([0.01, 0.01, 0.09], 1000) == 0  # earliest of the tied lowest
    assert select_epoch([0.03, 0.03, 0.03], 1000, "last") == 2


def test_one_epoch() -> None:
    for rule in SELECT_RULES:
        assert select_epoch([0.1], 1000, rule) == 0
        assert select_epoch([NAN], 1000, rule) == 0


def test_unmeasured_epochs_are_never_kept_by_the_measured_rules() -> None:
    history = [None, NAN, 0.03, NAN]
    assert select_epoch(history, 1000) == 2
    assert select_epoch(history, 1000, "best") == 2
    assert select_epoch(history, 1000, "last") == 3
    # a run that ends without a measurement compares against its last measured epoch
    assert select_epoch([0.02, 0.06, None], 1000) == 0
    assert select_epoch([0.05, 0.045, math.inf], 1000) == 1


def test_no_measurement_keeps_the_last_epoch() -> None:
    for rule in SELECT_RULES:
        assert select_epoch([None, NAN, NAN], 1000, rule) == 2


def test_stable_keeps_either_the_best_or_the_last_measured_epoch() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        history: list[float | None] = list(rng.uniform(0.0, 0.3, size=int(rng.integers(1, 15))))
        history = [None if rng.random() < 0.2 else v for v in history]
        measured = [i for i, v in enumerate(history) if v is not None]
        kept = select_epoch(history, int(rng.integers(10, 5000)))
        if measured:
            assert kept in (select_epoch(history, 1000, "best"), measured[-1])
        else:
            assert kept == len(history) - 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no epochs"):
        select_epoch([], 1000)
    with pytest.raises(ValueError, match="unknown selection rule"):
        select_epoch([0.1], 1000, "median")

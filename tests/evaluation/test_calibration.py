import doctest

import numpy as np
import pytest

from siamese.evaluation import calibration
from siamese.evaluation.calibration import confidence, fit_confidence


def test_confidence_is_monotone_and_matches_sklearn_probabilities():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    d = np.concatenate([rng.normal(0.4, 0.1, 200), rng.normal(0.9, 0.15, 200)])
    same = np.r_[np.ones(200, bool), np.zeros(200, bool)]
    cal = fit_confidence(d, same)
    ref = LogisticRegression(C=10.0).fit(d.reshape(-1, 1), same)
    for x in (0.2, 0.65, 1.2):
        assert confidence(x, cal) == pytest.approx(ref.predict_proba([[x]])[0, 1], abs=1e-9)
    assert confidence(0.2, cal) > confidence(0.65, cal) > confidence(1.2, cal)


def test_confidence_is_stable_for_extreme_scores():
    assert confidence(1e6, {"coef": -50.0, "intercept": 0.0}) == 0.0
    assert confidence(-1e6, {"coef": -50.0, "intercept": 0.0}) == 1.0


def test_doctest():
    assert doctest.testmod(calibration).failed == 0

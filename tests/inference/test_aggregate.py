import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dfd_kit.inference.aggregate import RULES, aggregate, confident
from dfd_kit.errors import NoScoreError


def test_mean_and_clip():
    assert aggregate(np.array([0.2, 0.4]), "mean") == pytest.approx(0.3)
    assert aggregate(np.array([1.0, 1.0]), "mean", clip=(0.05, 0.95)) == 0.95
    assert aggregate(np.array([0.0]), "mean", clip=(0.05, 0.95)) == 0.05


def test_median():
    assert aggregate(np.array([0.1, 0.2, 0.9]), "median") == pytest.approx(0.2)


def test_confident_averages_confident_fakes():
    scores = np.array([0.9, 0.95, 0.85, 0.1, 0.2])  # 3 of 5 > 0.8: more than 40 %
    assert confident(scores) == pytest.approx(0.9)


def test_confident_averages_confident_reals():
    scores = np.array([0.01] * 19 + [0.5])  # 95 % < 0.2
    assert confident(scores) == pytest.approx(0.01)


def test_confident_falls_back_to_mean():
    scores = np.array([0.9, 0.1, 0.5, 0.4, 0.3])
    assert confident(scores) == pytest.approx(scores.mean())


def test_non_finite_scores_are_dropped():
    assert aggregate(np.array([np.nan, 0.3, np.inf, 0.5]), "mean") == pytest.approx(0.4)
    with pytest.raises(NoScoreError):
        aggregate(np.array([np.nan, -np.inf]))
    with pytest.raises(NoScoreError):
        aggregate(np.array([]))


def test_bad_arguments():
    with pytest.raises(ValueError):
        aggregate(np.array([0.5]), "max")
    with pytest.raises(ValueError):
        aggregate(np.array([0.5]), clip=(0.9, 0.1))


scores_st = st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=200)


@given(scores=scores_st, rule=st.sampled_from(sorted(RULES)))
def test_result_is_finite_and_clipped_or_no_score(scores, rule):
    arr = np.array(scores, dtype=np.float64)
    try:
        p = aggregate(arr, rule, clip=(0.01, 0.99))
    except NoScoreError:
        assert not np.isfinite(arr).any()
        return
    assert math.isfinite(p) and 0.01 <= p <= 0.99

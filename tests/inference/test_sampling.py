import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dfd_kit.inference.sampling import POLICIES, sample_indices


def test_even_spreads_over_whole_clip():
    idx = sample_indices(300, 17)
    assert len(idx) == 17
    assert idx[0] == 0 and idx[-1] == 299
    gaps = np.diff(idx)
    assert gaps.min() >= 18 and gaps.max() <= 19


def test_short_clip_returns_every_frame():
    assert sample_indices(5, 17).tolist() == [0, 1, 2, 3, 4]


def test_empty_and_invalid():
    assert sample_indices(0, 17).size == 0
    assert sample_indices(-3, 17).size == 0
    with pytest.raises(ValueError):
        sample_indices(100, 0)
    with pytest.raises(ValueError):
        sample_indices(100, 5, "nope")


def test_head_policy():
    assert sample_indices(100, 4, "head").tolist() == [0, 1, 2, 3]


@given(n_total=st.integers(-5, 100_000), n=st.integers(1, 400), policy=st.sampled_from(sorted(POLICIES)))
def test_indices_sorted_unique_in_range(n_total, n, policy):
    idx = sample_indices(n_total, n, policy)
    assert idx.dtype == np.int64
    assert len(idx) <= max(0, min(n, n_total))
    if n_total > 0:
        assert len(idx) >= 1
        assert idx.min() >= 0 and idx.max() < n_total
        assert np.all(np.diff(idx) > 0)

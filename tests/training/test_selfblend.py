"""Self-blended pseudo-fakes: the blend is confined to a soft face mask, reproducible from a seed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfd_kit.training.selfblend import box_in_crop, face_mask, self_blend, self_blend_seeded, source_transform

S = 96


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A textured 96x96 'face' crop: smooth colour gradient plus noise, uint8 RGB."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    base = np.stack([xx * 2, yy * 2, 255 - xx - yy], axis=-1)
    return np.clip(base + rng.normal(0, 12, (S, S, 3)), 0, 255).astype(np.uint8)


BOX = np.array([16, 12, 80, 88], np.float32)


def test_box_in_crop_maps_frame_pixels_to_crop_pixels():
    box = np.array([[110.0, 220.0, 190.0, 320.0]])
    window = np.array([[100, 200, 300, 400]])  # 200 px square, saved at 100 px: scale 0.5
    np.testing.assert_allclose(box_in_crop(box, window, 100), [[5.0, 10.0, 45.0, 60.0]])


def test_face_mask_is_soft_centred_on_the_face_and_zero_far_from_it():
    mask = face_mask(S, BOX, np.random.default_rng(1))
    assert mask.shape == (S, S) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() == pytest.approx(1.0)
    assert mask[50, 48] > 0.9  # the face centre is inside
    assert max(mask[0, 0], mask[0, -1], mask[-1, 0], mask[-1, -1]) < 0.05
    assert ((mask > 0.05) & (mask < 0.95)).sum() > 50  # a soft edge, not a hard one


def test_self_blend_changes_only_where_the_mask_weighs(crop):
    for seed in range(20):
        fake, weight = self_blend(crop, BOX, np.random.default_rng(seed))
        assert fake.shape == crop.shape and fake.dtype == np.uint8
        assert 0.0 <= weight.min() and weight.max() <= 1.0 and weight.max() >= 0.25 - 1e-6
        inside = weight > 0.2
        assert np.abs(fake.astype(int) - crop)[inside].mean() > 1.0, "the blend must change the face"


def test_outside_the_mask_one_of_the_two_copies_shows_unchanged(crop):
    """fake = source * w + target * (1 - w): where w == 0 the pixels are the target's, either the
    untouched crop or the transformed copy; over many seeds both happen."""
    untouched, changed = 0, 0
    for seed in range(20):
        fake, weight = self_blend(crop, BOX, np.random.default_rng(seed))
        outside = weight == 0
        if not outside.any():  # a dilated, widely blurred mask may reach every pixel
            continue
        if np.array_equal(fake[outside], crop[outside]):
            untouched += 1
        else:
            changed += 1
    assert untouched > 0 and changed > 0


def test_seeded_blend_is_reproducible_and_seed_dependent(crop):
    a = self_blend_seeded(crop, BOX, 7)
    np.testing.assert_array_equal(a, self_blend_seeded(crop, BOX, 7))
    assert not np.array_equal(a, self_blend_seeded(crop, BOX, 8))
    np.testing.assert_array_equal(self_blend_seeded(crop, BOX, -3), self_blend_seeded(crop, BOX, np.int64(-3)))


def test_source_transform_keeps_range_and_shape(crop):
    out = source_transform(crop, BOX, np.random.default_rng(3))
    assert out.shape == crop.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0


@settings(max_examples=40, deadline=None)
@given(
    x1=st.floats(0, 40), y1=st.floats(0, 40), w=st.floats(12, 56), h=st.floats(12, 56), seed=st.integers(0, 2**31 - 1)
)
def test_any_box_and_seed_give_a_valid_fake(crop, x1, y1, w, h, seed):
    box = np.array([x1, y1, x1 + w, y1 + h], np.float32)
    fake, weight = self_blend(crop, box, np.random.default_rng(seed))
    assert fake.shape == crop.shape and fake.dtype == np.uint8
    assert np.isfinite(weight).all() and 0.0 <= weight.min() and weight.max() <= 1.0


def test_lower_face_mask_leaves_the_eyes_and_covers_the_mouth():
    """Region "lower" cuts the ellipse 45-65 % down the box: nothing above the cut (eyes, brows),
    the mouth (80 % down) inside, and still a soft edge."""
    y1, h = BOX[1], BOX[3] - BOX[1]
    for seed in range(10):
        mask = face_mask(S, BOX, np.random.default_rng(seed), region="lower")
        whole = face_mask(S, BOX, np.random.default_rng(seed))
        eyes = int(y1 + 0.3 * h)
        assert mask[eyes].max() < 0.2 < whole[eyes].max(), seed
        assert mask[int(y1 + 0.8 * h), 48] > 0.5, seed
        assert ((mask > 0.05) & (mask < 0.95)).sum() > 50, seed
    with pytest.raises(ValueError, match="region"):
        face_mask(S, BOX, np.random.default_rng(0), region="eyes")


def test_lower_share_chooses_the_region_and_zero_keeps_the_old_stream(crop):
    """lower=0 draws nothing extra (the blends that trained earlier weights stay reproducible), while
    any positive share draws the region first and so shifts every later draw; lower=1 confines every
    blend below the cut; the seeded form passes the share through."""
    for seed in range(5):
        old, _ = self_blend(crop, BOX, np.random.default_rng(seed))
        same, _ = self_blend(crop, BOX, np.random.default_rng(seed), lower=0.0)
        np.testing.assert_array_equal(old, same)
        drawn, _ = self_blend(crop, BOX, np.random.default_rng(seed), lower=1e-12)  # "face", one draw later
        assert not np.array_equal(old, drawn), seed
        _, weight = self_blend(crop, BOX, np.random.default_rng(seed), lower=1.0)
        assert weight[: int(BOX[1] + 0.45 * (BOX[3] - BOX[1])) - 6].max() < 0.2, seed
    entropy = np.atleast_1d(np.asarray(7, np.int64)).view(np.uint64).tolist()
    expected, _ = self_blend(crop, BOX, np.random.default_rng(entropy), lower=1.0)
    np.testing.assert_array_equal(self_blend_seeded(crop, BOX, 7, 1.0), expected)
    assert not np.array_equal(self_blend_seeded(crop, BOX, 7, 1.0), self_blend_seeded(crop, BOX, 7))

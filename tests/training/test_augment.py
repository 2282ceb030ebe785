"""The training augmentation (`dfd_kit.training.augment`): reproducible from its seed, shapes kept, and the
motion blur smears along its direction only."""

import math

import numpy as np
import pytest

from dfd_kit.device import import_tensorflow

tf = import_tensorflow()

from dfd_kit.training.augment import augment, motion_blur  # noqa: E402


@pytest.fixture(scope="module")
def face():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:64, :64]
    image = np.stack([x * 3, y * 3, (x + y) * 2], axis=-1) + rng.integers(0, 20, (64, 64, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def test_augment_is_a_function_of_image_and_seed(face):
    outputs = [augment(tf.constant(face), tf.constant([3, i % 2], tf.int64)).numpy() for i in range(3)]
    assert outputs[0].shape == face.shape and outputs[0].dtype == np.uint8
    np.testing.assert_array_equal(outputs[0], outputs[2])
    assert np.abs(outputs[0].astype(int) - outputs[1]).mean() > 1.0
    assert np.abs(outputs[0].astype(int) - face).mean() > 1.0


def test_motion_blur_smears_along_its_direction():
    image = np.zeros((33, 33, 3), np.float32)
    image[16, 16] = 1.0
    horizontal = motion_blur(tf.constant(image), tf.constant(8.0), tf.constant(0.0)).numpy()[..., 0]
    rows, cols = np.nonzero(horizontal > 1e-3)
    assert set(rows) == {16}
    assert cols.min() == 12 and cols.max() == 20
    assert horizontal.sum() == pytest.approx(1.0, abs=1e-4)
    vertical = motion_blur(tf.constant(image), tf.constant(8.0), tf.constant(math.pi / 2)).numpy()[..., 0]
    rows, cols = np.nonzero(vertical > 1e-3)
    assert set(cols) == {16} and rows.min() == 12 and rows.max() == 20


def detail(images) -> float:
    """Mean variance of the Laplacian: the fine detail left in uint8 RGB images."""
    import cv2

    return float(np.mean([cv2.Laplacian(cv2.cvtColor(o, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for o in images]))


def test_c40_strength_degrades_further_than_video(face):
    def degraded(strength):  # the geometry is the same per seed
        return [augment(tf.constant(face), tf.constant([7, i], tf.int64), strength).numpy() for i in range(48)]

    assert detail(degraded("c40")) < detail(degraded("video")) * 0.9
    with pytest.raises(ValueError, match="strength"):
        augment(tf.constant(face), tf.constant([0, 0], tf.int64), "c23")


def test_blocking_leaves_half_size_blocks(face):
    from dfd_kit.training.augment import _blocking

    smooth = tf.constant(face.astype(np.float32) / 255.0)
    coded = _blocking(smooth, tf.constant([1, 2], tf.int64), 64).numpy()
    assert coded.shape == (64, 64, 3)
    assert np.abs(coded - smooth.numpy()).mean() > 0.005  # coded at quality <= 35, then scaled back


def test_h264_code_loses_more_at_a_higher_rate_factor(face):
    from dfd_kit.training.augment import h264_code

    fine, coarse = h264_code(face, 23), h264_code(face, 45)
    assert fine.shape == coarse.shape == face.shape and coarse.dtype == np.uint8
    np.testing.assert_array_equal(coarse, h264_code(face, 45))  # one thread: the same bytes every time
    error = [np.abs(out.astype(int) - face).mean() for out in (fine, coarse)]
    assert 0.5 < error[0] < error[1]
    with pytest.raises(ValueError, match="even"):
        h264_code(face[:63], 30)


def test_h264_strength_codes_with_the_codec_and_keeps_video_unchanged(face):
    from dfd_kit.training.augment import STRENGTHS

    seeds = [tf.constant([11, i], tf.int64) for i in range(12)]
    video = [augment(tf.constant(face), s, "video").numpy() for s in seeds]
    h264 = [augment(tf.constant(face), s, "h264").numpy() for s in seeds]
    again = [augment(tf.constant(face), s, "h264").numpy() for s in seeds]
    for a, b in zip(h264, again):
        np.testing.assert_array_equal(a, b)
    assert all(o.shape == face.shape and o.dtype == np.uint8 for o in h264)
    changed = sum(np.abs(a.astype(int) - b).mean() > 0.5 for a, b in zip(video, h264))
    assert 3 <= changed <= 11  # the H.264 step replaces the JPEG one with probability 0.6
    assert STRENGTHS["video"][-1] == 0.0


def test_h264c40_codes_coarser_in_both_chroma_formats_and_keeps_h264_unchanged(face):
    from dfd_kit.training.augment import H264_STEPS, h264_code

    assert h264_code(face[:63], 40, "yuv444p").shape == (63, 64, 3)  # full-resolution chroma needs no even side
    y, x = np.mgrid[:64, :64]
    stripes = np.where(((x + y) % 2 == 0)[..., None], [200, 60, 120], [60, 120, 200]).astype(np.uint8)  # 1-px colour detail
    error = {c: np.abs(h264_code(stripes, 40, c).astype(int) - stripes).mean() for c in ("yuv444p", "yuv420p")}
    assert error["yuv444p"] < error["yuv420p"] / 2  # yuv420p averages the colours of each 2x2 block away
    with pytest.raises(ValueError, match="chroma"):
        h264_code(face, 40, "nv12")
    seeds = [tf.constant([11, i], tf.int64) for i in range(12)]
    before = [augment(tf.constant(face), s, "h264").numpy() for s in seeds]
    c40 = [augment(tf.constant(face), s, "h264c40").numpy() for s in seeds]
    np.testing.assert_array_equal(c40[0], augment(tf.constant(face), seeds[0], "h264c40").numpy())
    assert H264_STEPS["h264"][2] == 0.0 and H264_STEPS["h264c40"][2] > 0
    assert sum(np.abs(a.astype(int) - b).mean() > 0.5 for a, b in zip(before, c40)) >= 6
    assert detail(c40) < detail(before)

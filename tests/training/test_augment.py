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


def test_c40_strength_degrades_further_than_video(face):
    import cv2

    def detail(strength):  # mean variance of the Laplacian: the fine detail left (the geometry is the same per seed)
        outs = [augment(tf.constant(face), tf.constant([7, i], tf.int64), strength).numpy() for i in range(48)]
        return np.mean([cv2.Laplacian(cv2.cvtColor(o, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for o in outs])

    assert detail("c40") < detail("video") * 0.9
    with pytest.raises(ValueError, match="strength"):
        augment(tf.constant(face), tf.constant([0, 0], tf.int64), "c23")


def test_blocking_leaves_half_size_blocks(face):
    from dfd_kit.training.augment import _blocking

    smooth = tf.constant(face.astype(np.float32) / 255.0)
    coded = _blocking(smooth, tf.constant([1, 2], tf.int64), 64).numpy()
    assert coded.shape == (64, 64, 3)
    assert np.abs(coded - smooth.numpy()).mean() > 0.005  # coded at quality <= 35, then scaled back

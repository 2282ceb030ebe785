"""EfficientNet-Lite in Keras: the port against the original PyTorch network, the registry configs,
the classifier on both runtimes, calibration and flip test-time augmentation."""

import numpy as np
import pytest

from dfd_kit.models.efficientnet_lite import VARIANTS, EfficientNetLite, imagenet_weights_file, load_imagenet, stages
from dfd_kit.errors import WeightsError
from configs import LITE_96

from dfd_kit.models import Classifier, build_classifier, get_config, imagenet_classifier, last_features_layer

PICTURES = ("chelsea", "coffee", "astronaut", "rocket")


def pictures(size: int) -> np.ndarray:
    """scikit-image's test pictures, resized to ``size``: uint8 ``[4, size, size, 3]`` RGB."""
    import cv2
    import skimage.data

    return np.stack([cv2.resize(getattr(skimage.data, n)()[..., :3], (size, size), interpolation=cv2.INTER_AREA) for n in PICTURES])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_port_matches_the_pytorch_original(variant):
    import torch

    original = pytest.importorskip("efficientnet_lite_pytorch")
    size = VARIANTS[variant][2]
    config = f"efficientnet_{variant}"
    assert get_config(config).input_size == size
    x = pictures(size).astype(np.float32) / 127.5 - 1.0
    reference = original.EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=str(imagenet_weights_file(variant))).eval()
    with torch.no_grad():
        expected = reference(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    logits = imagenet_classifier(config).predict(x, verbose=0)
    assert logits.shape == (len(PICTURES), 1000)
    np.testing.assert_allclose(logits, expected, atol=1e-3)
    for got, want in zip(logits, expected):
        assert list(np.argsort(-got)[:5]) == list(np.argsort(-want)[:5])
    assert expected[0].argmax() == 285 and expected[1].argmax() == 967  # Egyptian cat, espresso


def test_widths_and_depths_follow_the_variant():
    lite0, lite2 = stages("lite0"), stages("lite2")
    assert [s["repeats"] for s in lite0] == [1, 2, 2, 3, 3, 4, 1]
    assert [s["repeats"] for s in lite2] == [1, 3, 3, 4, 4, 5, 1]  # first and last fixed, the rest x1.2
    assert [s["channels"] for s in lite2] == [16, 24, 48, 88, 120, 208, 352]
    assert lite2[0]["in"] == 32  # the stem stays at 32 channels


def test_weights_of_another_variant_are_rejected():
    model = EfficientNetLite("lite2", include_top=False, input_shape=(64, 64, 3))
    with pytest.raises(WeightsError, match="shapes|no layer"):
        load_imagenet(model, "lite2", imagenet_weights_file("lite0"))


def test_classifier_head_on_an_imagenet_backbone():
    model = build_classifier(LITE_96, init="imagenet")
    assert model.output_shape == (None, 1)
    reference = EfficientNetLite("lite0", include_top=False, input_shape=(96, 96, 3), weights="imagenet")
    np.testing.assert_array_equal(model.get_layer("top_conv").get_weights()[0], reference.get_layer("top_conv").get_weights()[0])
    assert model.get_layer(last_features_layer(LITE_96)).output.shape[1:] == (3, 3, 1280)


def test_xception_imagenet_without_internet_names_both_ways_out(monkeypatch):
    from urllib.error import URLError

    from keras.src.applications import xception as keras_xception

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(keras_xception.file_utils, "get_file", offline)
    with pytest.raises(WeightsError) as err:
        build_classifier("xception_96", init="imagenet")
    assert "--init FILE" in str(err.value) and "efficientnet_lite0" in str(err.value)


@pytest.fixture(scope="module")
def lite_weights(tmp_path_factory):
    import keras

    from dfd_kit.models.weights import save_weights

    keras.utils.set_random_seed(0)
    model = build_classifier(LITE_96, init="imagenet")
    return save_weights(model, tmp_path_factory.mktemp("lite") / "lite.weights.h5", LITE_96, trained=False)


def test_lite_scores_are_the_same_on_onnx_runtime(lite_weights, tmp_path, monkeypatch):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    crops = pictures(96)
    tf_scores = Classifier(LITE_96, lite_weights).predict(crops)
    np.testing.assert_allclose(Classifier(LITE_96, lite_weights, backend="onnx").predict(crops), tf_scores, atol=1e-5)


def test_flip_averages_a_crop_with_its_mirror(lite_weights):
    crops = pictures(96)
    plain = Classifier(LITE_96, lite_weights)
    flipped = Classifier(LITE_96, lite_weights, flip=True)
    mirror = np.ascontiguousarray(crops[:, :, ::-1])
    np.testing.assert_allclose(flipped.predict(crops), (plain.predict(crops) + plain.predict(mirror)) / 2, atol=1e-6)
    np.testing.assert_allclose(flipped.predict(crops), flipped.predict(mirror), atol=1e-6)


def test_calibration_scales_the_logit(lite_weights):
    crops = pictures(96)
    raw = Classifier(LITE_96, lite_weights).predict(crops).astype(np.float64)
    logit = np.log(raw / (1 - raw))
    for a, b in [(1.0, 0.0), (0.5, 0.3), (2.0, -1.0)]:
        calibrated = Classifier(LITE_96, lite_weights, calibration=(a, b)).predict(crops)
        np.testing.assert_allclose(calibrated, 1 / (1 + np.exp(-(a * logit + b))), atol=1e-5)

"""Grad-CAM: the feature map is found by shape in any backbone, and the heat lands where the answer is."""

import numpy as np
import pytest

from dfd_kit.models.gradcam import GradCam, feature_layer, overlay

SIZE, PATCH = 64, 12


def _preprocess(x):
    """uint8 RGB → float32 in [-1, 1], the patch model's input."""
    return np.asarray(x, np.float32) / 127.5 - 1.0


def _images(rng, n: int, patch_at: list[tuple[int, int]] | None = None) -> np.ndarray:
    """Dark noise, uint8 [n, 64, 64, 3]; a white 12x12 patch at each (row, col) of ``patch_at``."""
    x = rng.integers(0, 110, (n, SIZE, SIZE, 3), dtype=np.uint8)
    for img, (r, c) in zip(x, patch_at or []):
        img[r : r + PATCH, c : c + PATCH] = 255
    return x


@pytest.fixture(scope="module")
def patch_model():
    """A small CNN (64 px input, [-1, 1] pixels like dfd_kit's models) trained to say FAKE when a bright
    patch is anywhere in the image: its last rank-4 map is conv2's activation."""
    from dfd_kit.device import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="head")(x))
    rng = np.random.default_rng(0)
    n = 512
    corners = [tuple(rng.integers(0, SIZE - PATCH, 2)) for _ in range(n // 2)]
    x_train = np.concatenate([_images(rng, n // 2, corners), _images(rng, n // 2)])
    y_train = np.concatenate([np.ones(n // 2), np.zeros(n // 2)]).astype(np.float32)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(_preprocess(x_train), y_train, batch_size=32, epochs=4, shuffle=True, verbose=0)
    assert history.history["accuracy"][-1] > 0.95, history.history
    return model


@pytest.mark.parametrize("config", ["xception_96", "efficientnet_lite0_192"])
def test_feature_layer_is_the_backbones_last_map(config):
    from dfd_kit.models import create_model, last_features_layer

    model = create_model(config)
    assert feature_layer(model) == last_features_layer(config)
    assert feature_layer(model) in ("block14_sepconv2_act", "top_activation")


def test_feature_layer_is_the_last_map_before_pooling(patch_model):
    assert feature_layer(patch_model) == "conv2"

    import keras

    # the EfficientNet family names its last convolutional activation top_activation
    backbone = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(64, 64, 3), pooling="avg")
    model = keras.Model(backbone.input, keras.layers.Dense(1, activation="sigmoid")(backbone.output))
    assert feature_layer(model) == "top_activation"


def test_heat_map_peaks_on_the_patch(patch_model, report):
    rng = np.random.default_rng(1)
    where = [(8, 40), (44, 6), (26, 26)]  # top right, bottom left, centre
    crops = _images(rng, len(where), where)
    assert (patch_model.predict(_preprocess(crops), verbose=0) > 0.9).all()
    heat = GradCam(patch_model, _preprocess)(crops)
    assert heat.shape == (3, SIZE, SIZE) and heat.dtype == np.float32
    assert np.allclose(heat.max(axis=(1, 2)), 1.0) and heat.min() >= 0.0
    ratios, peaks = [], []
    for h, (r, c) in zip(heat, where):
        peak = np.unravel_index(np.argmax(h), h.shape)
        peaks.append((int(peak[0]), int(peak[1])))
        # the peak lies on the patch (give or take the 2-pixel cell of the pooled feature map)
        assert r - 2 <= peak[0] < r + PATCH + 2 and c - 2 <= peak[1] < c + PATCH + 2, (peak, (r, c))
        inside = np.zeros_like(h, bool)
        inside[r : r + PATCH, c : c + PATCH] = True
        ratios.append(h[inside].mean() / max(h[~inside].mean(), 1e-6))
    report(
        "Grad-CAM on a 12 px patch: patch top-left corners " + str(where) + ", heat peaks " + str(peaks)
        + ", mean heat inside/outside the patch " + ", ".join(f"{x:.1f}" for x in ratios)
    )
    assert min(ratios) > 3.0, ratios  # the heat is on the patch, not spread over the noise


def test_classifier_model_is_explained_at_its_input_size(predictor):
    from dfd_kit.models import preprocess_for

    classifier = predictor.classifier
    crops = np.random.default_rng(0).integers(0, 255, (2, 96, 96, 3), dtype=np.uint8)
    cam = GradCam(classifier.model, preprocess_for(classifier.config))  # Keras, even when scoring runs on ONNX Runtime
    assert cam.layer == "block14_sepconv2_act"
    heat = cam(crops)
    assert heat.shape == (2, 96, 96) and np.isfinite(heat).all() and heat.max() <= 1.0
    shown = overlay(crops, heat)
    assert shown.shape == crops.shape and shown.dtype == np.uint8 and not np.array_equal(shown, crops)

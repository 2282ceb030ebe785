import json

import numpy as np
import pytest

from dfd_kit.errors import WeightsError
from dfd_kit.models import MODEL_CONFIGS, Classifier, ModelConfig, build_xception, get_config, preprocess_input, register_model
from dfd_kit.weights import resolve_weights, save_weights, sha256


@pytest.fixture(scope="module")
def classifier(tiny_weights):
    return Classifier("xception_96", tiny_weights)


def test_preprocess_input_range():
    x = np.array([[[0, 127.5, 255]]], dtype=np.float32)
    assert preprocess_input(x).tolist() == [[[-1.0, 0.0, 1.0]]]
    assert preprocess_input(np.zeros((1, 8, 8, 3), np.uint8)).dtype == np.float32


def test_builder_shape_matches_keras_xception():
    model = build_xception(96)
    assert model.input_shape == (None, 96, 96, 3)
    assert model.output_shape == (None, 1)
    assert model.layers[-1].activation.__name__ == "sigmoid"
    assert any(layer.name == "block14_sepconv2" for layer in model.layers)  # the Keras Xception body


def test_registry():
    assert get_config("xception").input_size == 299
    with pytest.raises(KeyError):
        get_config("resnet")
    with pytest.raises(ValueError):
        register_model(ModelConfig("xception", input_size=128))
    assert "xception_96" in MODEL_CONFIGS


def test_predict_scores_batch_and_single(classifier):
    crops = np.random.default_rng(0).integers(0, 256, (5, 96, 96, 3), dtype=np.uint8)
    scores = classifier.predict(crops)
    assert scores.shape == (5,) and scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))
    assert classifier.predict(crops[0]).shape == (1,)
    assert classifier.predict(crops[:0]).shape == (0,)
    with pytest.raises(ValueError):
        classifier.predict(np.zeros((2, 64, 64, 3), np.uint8))


def test_batching_does_not_change_scores(tiny_weights):
    crops = np.random.default_rng(1).integers(0, 256, (7, 96, 96, 3), dtype=np.uint8)
    a = Classifier("xception_96", tiny_weights, batch_size=2).predict(crops)
    b = Classifier("xception_96", tiny_weights, batch_size=32).predict(crops)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_weights_round_trip_fp16_with_manifest(tmp_path, classifier):
    path = save_weights(classifier.model, tmp_path / "copy.weights.h5", classifier.config, trained=False, seed=0)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = manifest["files"]["copy.weights.h5"]
    assert manifest["default"] == "copy.weights.h5"
    assert entry["sha256"] == sha256(path) and entry["storage"] == "float16"
    assert entry["config"]["input_size"] == 96
    info = resolve_weights(path)
    assert info.config == classifier.config and not info.trained
    crops = np.random.default_rng(2).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    np.testing.assert_allclose(Classifier(info.config, info.path).predict(crops), classifier.predict(crops), atol=2e-3)


def test_weights_for_another_config_are_rejected(tiny_weights, tmp_path):
    with pytest.raises(WeightsError, match="xception_96"):
        resolve_weights(tiny_weights, config="xception")
    lone = tmp_path / "lone.weights.h5"
    lone.write_bytes(tiny_weights.read_bytes())  # no manifest beside it
    with pytest.raises(WeightsError, match="config"):
        resolve_weights(lone)
    import keras

    other = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    other.save_weights(tmp_path / "other.weights.h5")
    with pytest.raises(WeightsError, match="could not be loaded"):
        Classifier("xception_96", tmp_path / "other.weights.h5")  # another architecture
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(WeightsError):
        Classifier("xception_96", junk)
    with pytest.raises(WeightsError):
        resolve_weights(tmp_path / "missing.weights.h5")

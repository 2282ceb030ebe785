import json
import subprocess
import sys

import numpy as np
import pytest

from dfd_kit.errors import WeightsError
from dfd_kit.models import MODEL_CONFIGS, Classifier, ModelConfig, build_classifier, get_config, preprocess_for, register_model
from dfd_kit.models.weights import resolve_weights, save_weights, sha256


@pytest.fixture(scope="module")
def classifier(tiny_weights):
    return Classifier("xception_96", tiny_weights)


@pytest.mark.parametrize("config", ["xception", "efficientnet_lite0"])
def test_preprocess_input_range(config):
    preprocess_input = preprocess_for(config)
    x = np.array([[[0, 127.5, 255]]], dtype=np.float32)
    assert preprocess_input(x).tolist() == [[[-1.0, 0.0, 1.0]]]
    assert preprocess_input(np.zeros((1, 8, 8, 3), np.uint8)).dtype == np.float32


def test_builder_shape_matches_keras_xception():
    model = build_classifier("xception_96")
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


def test_every_variable_is_loaded_from_the_file(tiny_weights, classifier):
    import h5py

    with h5py.File(tiny_weights) as f:
        stored = []
        f.visititems(lambda name, obj: stored.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
    loaded = [w.numpy() for w in classifier.model.weights]
    key = lambda a: (a.shape, float(np.abs(a.astype(np.float64)).sum()))  # noqa: E731
    assert len(stored) == len(loaded)
    for s, l in zip(sorted(stored, key=key), sorted(loaded, key=key)):
        np.testing.assert_array_equal(s.astype(np.float32), l)


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


def test_onnx_backend_gives_the_same_scores(tiny_weights, tmp_path, monkeypatch):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    crops = np.random.default_rng(3).integers(0, 256, (5, 96, 96, 3), dtype=np.uint8)
    tf_scores = Classifier("xception_96", tiny_weights).predict(crops)
    onnx = Classifier("xception_96", tiny_weights, backend="onnx")
    np.testing.assert_allclose(onnx.predict(crops), tf_scores, atol=1e-5)
    assert len(list((tmp_path / "dfd_kit" / "onnx").glob("*.onnx"))) == 1  # converted once, cached
    np.testing.assert_allclose(Classifier("xception_96", tiny_weights, backend="onnx").predict(crops[:2]), tf_scores[:2], atol=1e-5)
    with pytest.raises(ValueError):
        Classifier("xception_96", tiny_weights, backend="torch")
    # A fresh process scores from the cache without importing TensorFlow (or building the Keras model).
    np.save(tmp_path / "crops.npy", crops)
    script = (
        "import json, sys\n"
        "import numpy as np\n"
        "from dfd_kit.models.classifier import Classifier\n"
        f"scores = Classifier('xception_96', {str(tiny_weights)!r}, backend='onnx').predict(np.load(sys.argv[1]))\n"
        "print(json.dumps({'scores': scores.tolist(), 'tf': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "crops.npy")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not fresh["tf"] and not fresh["keras"]
    np.testing.assert_allclose(fresh["scores"], tf_scores, atol=1e-5)


def test_onnx_backend_works_without_a_writable_cache(tiny_weights, tmp_path, monkeypatch, caplog):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    crops = np.random.default_rng(4).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    with caplog.at_level("WARNING", logger="dfd_kit.models.onnx_backend"):
        scores = Classifier("xception_96", tiny_weights, backend="onnx").predict(crops)
    np.testing.assert_allclose(scores, Classifier("xception_96", tiny_weights).predict(crops), atol=1e-5)
    assert "cannot cache the ONNX model" in caplog.text


@pytest.mark.slow
def test_onnx_backend_matches_tensorflow_on_the_trained_weights(tmp_path, monkeypatch):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    from dfd_kit.synth import astronaut_face
    from dfd_kit.models.weights import weights_dir

    folder = weights_dir()
    path = folder / "xception_sbi_128.weights.h5" if folder else None
    if path is None or not path.is_file():
        pytest.skip("the trained weights are not in this checkout")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    import cv2

    info = resolve_weights(path)
    rng = np.random.default_rng(4)
    face = cv2.resize(astronaut_face(), (128, 128))
    crops = np.stack([face, face[:, ::-1], *rng.integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)]).astype(np.uint8)
    tf_scores = Classifier(info.config, info.path).predict(crops)
    assert tf_scores.std() > 0.01  # trained weights: scores that differ, so the comparison means something
    np.testing.assert_allclose(Classifier(info.config, info.path, backend="onnx").predict(crops), tf_scores, atol=1e-4)


def test_the_checkout_default_is_a_trained_detector():
    """The default is the measured ensemble of three trained, calibrated members."""
    from dfd_kit.models.weights import ensemble_entry, resolve_members

    members = resolve_members(None)
    assert [m.path.name for m in members] == [
        "efficientnet_lite0_192.weights.h5",
        "efficientnet_lite0_192_ffpp.weights.h5",
        "efficientnet_lite0_192_ffpp2.weights.h5",
    ]
    entry = ensemble_entry(members)
    assert entry["inference"]["frames"] > 0 and entry["default_because"]
    for info in members:
        assert info.trained and info.calibration is not None and info.inference["frames"] > 0
        assert "trained" in info.describe() and info.entry["sha256"][:12] in info.describe()
    with pytest.raises(WeightsError, match="ensemble"):
        resolve_weights(None)


@pytest.mark.parametrize("names", [
    "efficientnet_lite0_192.weights.h5,efficientnet_lite0_192_ffpp.weights.h5",
    "efficientnet_lite0_192.weights.h5,efficientnet_lite0_192_ffpp.weights.h5,efficientnet_lite0_192_ffpp2.weights.h5",
])
def test_the_checkout_ships_its_measured_ensembles(names):
    """Each measured ensemble's entry: every member trained, calibrated and intact, the shares summing to one."""
    from dfd_kit.models.ensemble import COMBINES
    from dfd_kit.models.weights import ensemble_entry, resolve_members

    members = resolve_members(names)
    entry = ensemble_entry(members)
    assert entry["members"] == [m.path.name for m in members] and entry["combine"] in COMBINES
    assert sum(entry["member_weights"]) == pytest.approx(1, abs=1e-3) and entry["inference"]["frames"] > 0
    for m in members:
        assert m.trained and m.calibration is not None and sha256(m.path) == m.entry["sha256"]


def test_the_placeholder_only_when_asked_for_by_name(tmp_path, monkeypatch):
    placeholder = resolve_weights("placeholder", config="xception_96")
    assert placeholder.path is None and not placeholder.trained and "UNTRAINED" in placeholder.describe()
    (tmp_path / "manifest.json").write_text('{"default": null, "files": {}}')
    monkeypatch.setenv("DFD_KIT_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsError, match="no default weights.*'placeholder'"):
        resolve_weights(None)

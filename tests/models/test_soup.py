"""Model soups (`dfd_kit.models.soup`, `dfd soup`): the weighted average of files of one config, with its
ingredients in the manifest, and clear errors for what cannot be averaged."""

import json
import sys

import keras
import numpy as np
import pytest
from configs import LITE_64, LITE_96
from typer.testing import CliRunner

from dfd_kit.cli import app
from dfd_kit.errors import WeightsError
from dfd_kit.models import Classifier, create_model
from dfd_kit.models.soup import soup
from dfd_kit.models.weights import read_manifest, save_weights, sha256


@pytest.fixture(scope="module")
def ingredients(tmp_path_factory):
    """Two EfficientNet-Lite0 64 px files of different random inits (seeds 1, 2) in one folder, and a 96 px one."""
    folder = tmp_path_factory.mktemp("soup")
    paths = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        paths.append(save_weights(create_model(LITE_64), folder / f"s{seed}.weights.h5", LITE_64, trained=True, calibration={"a": 1.0, "b": 0.2}))
    keras.utils.set_random_seed(3)
    other = save_weights(create_model(LITE_96), folder / "other.weights.h5", LITE_96, trained=True)
    return paths, other


def _variables(path, config):
    return create_model(config, path).get_weights()


def test_every_variable_is_the_weighted_mean_and_the_manifest_names_the_ingredients(ingredients, tmp_path):
    (a, b), _ = ingredients
    out = soup([a, b], tmp_path / "soup.weights.h5", shares=[1, 3])
    wa, wb, ws = _variables(a, LITE_64), _variables(b, LITE_64), _variables(out, LITE_64)
    assert len(ws) == len(wa) and any(not np.allclose(x, y) for x, y in zip(wa, wb))
    for x, y, s in zip(wa, wb, ws):  # float16 storage: compare with the stored precision
        np.testing.assert_allclose(s, (0.25 * x + 0.75 * y).astype(np.float16).astype(np.float32), rtol=2e-3, atol=1e-6)
    entry = read_manifest(out.parent)["files"]["soup.weights.h5"]
    assert entry["soup"]["ingredients"] == [{"file": "s1.weights.h5", "sha256": sha256(a), "share": 0.25},
                                            {"file": "s2.weights.h5", "sha256": sha256(b), "share": 0.75}]  # fmt: skip
    assert entry["trained"] and "calibration" not in entry  # the ingredients' fits do not carry over
    assert read_manifest(out.parent).get("default") != "soup.weights.h5"


def test_a_soup_of_one_file_with_itself_scores_as_that_file(ingredients, tmp_path):
    (a, _), _ = ingredients
    out = soup([a, a], tmp_path / "same.weights.h5")
    crops = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), np.uint8)
    np.testing.assert_allclose(Classifier(LITE_64, out).predict(crops), Classifier(LITE_64, a).predict(crops), atol=1e-6)


def test_what_cannot_be_averaged_is_refused(ingredients, tmp_path):
    (a, b), other = ingredients
    with pytest.raises(WeightsError, match="one config"):
        soup([a, other], tmp_path / "x.weights.h5")
    with pytest.raises(WeightsError, match="two or more"):
        soup([a], tmp_path / "x.weights.h5")
    with pytest.raises(WeightsError, match="one of the ingredients"):
        soup([a, b], a)
    with pytest.raises(WeightsError, match="placeholder"):
        soup([a, "placeholder"], tmp_path / "x.weights.h5", config=LITE_64)
    with pytest.raises(ValueError, match="shares"):
        soup([a, b], tmp_path / "x.weights.h5", shares=[1, -1])
    with pytest.raises(ValueError, match="shares"):
        soup([a, b], tmp_path / "x.weights.h5", shares=[1])


def test_the_command_writes_the_soup_and_records_itself(ingredients, tmp_path, monkeypatch):
    (a, b), _ = ingredients
    out = tmp_path / "cli.weights.h5"
    args = ["soup", str(a), str(b), "--out", str(out), "--shares", "0.5,0.5"]
    monkeypatch.setattr(sys, "argv", ["dfd", *args])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "dfd calibrate" in result.output
    entry = json.loads((tmp_path / "manifest.json").read_text())["files"]["cli.weights.h5"]
    assert [i["share"] for i in entry["soup"]["ingredients"]] == [0.5, 0.5] and entry["command"] == "dfd " + " ".join(args)
    for bad, why in ([str(a), str(b), "--shares", "half,half"], "half"), ([str(a), "missing.weights.h5"], "not found"):
        result = CliRunner().invoke(app, ["soup", *bad, "--out", str(tmp_path / "bad.weights.h5")])
        assert result.exit_code == 2 and why in result.output and not (tmp_path / "bad.weights.h5").exists()

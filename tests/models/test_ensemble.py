"""Ensembles (`dfd_kit.models.ensemble`): how members' scores combine, members of different input sizes
and framings, each with its own calibration and flip, and a manifest whose default is a list."""

import json

import numpy as np
import pytest

from dfd_kit.errors import WeightsError
from dfd_kit.models import Classifier
from dfd_kit.models.ensemble import Ensemble, combine_scores
from dfd_kit.models.weights import ensemble_entry, resolve_members, resolve_weights


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_combinations_are_the_weighted_means_of_log_odds_or_of_probabilities():
    p = np.array([[0.9, 0.2, 0.5], [0.6, 0.1, 0.99]])
    logits = np.log(p / (1 - p))
    w = np.array([0.75, 0.25])
    np.testing.assert_allclose(combine_scores(p, "logit_mean", w), _sigmoid(0.75 * logits[0] + 0.25 * logits[1]), rtol=1e-6)
    np.testing.assert_allclose(combine_scores(p, "prob_mean", w), 0.75 * p[0] + 0.25 * p[1], rtol=1e-6)
    assert combine_scores(p[:1], "logit_mean", np.ones(1)).tolist() == p[0].astype(np.float32).tolist()  # one member: unchanged
    with pytest.raises(ValueError, match="combine"):
        Ensemble([object(), object()], "geometric")
    with pytest.raises(ValueError, match="weights"):
        Ensemble([object(), object()], weights=[1.0, -1.0])
    assert Ensemble([object(), object()], weights=[3, 1]).weights.tolist() == [0.75, 0.25]


@pytest.fixture(scope="module")
def members(ensemble_dir):
    return resolve_members(f"{ensemble_dir / 'tiny.weights.h5'},{ensemble_dir / 'lite64.weights.h5'}")


@pytest.mark.slow
def test_members_of_different_sizes_score_their_own_crops_with_their_own_calibration(members):
    ensemble = Ensemble.for_weights(members)
    assert [c.input_size for c in ensemble.configs] == [96, 64] and ensemble.names == ["tiny.weights.h5", "lite64.weights.h5"]
    rng = np.random.default_rng(0)
    big, small = rng.integers(0, 256, (5, 96, 96, 3), np.uint8), rng.integers(0, 256, (5, 64, 64, 3), np.uint8)
    scores = ensemble.member_scores([big, small])
    assert scores.shape == (2, 5)
    np.testing.assert_allclose(scores[0], Classifier("xception_96", members[0].path).predict(big), atol=1e-6)
    lite = members[1]
    assert lite.calibration == (0.8, 0.3) and ensemble.members[1].flip  # the member's own manifest choices
    np.testing.assert_allclose(scores[1], Classifier(lite.config, lite.path, flip=True, calibration=(0.8, 0.3)).predict(small), atol=1e-6)
    assert not np.allclose(scores[1], Classifier(lite.config, lite.path).predict(small), atol=1e-4)
    np.testing.assert_allclose(ensemble.predict([big, small]), combine_scores(scores, "logit_mean", np.array([0.5, 0.5])), atol=1e-6)
    with pytest.raises(ValueError, match="different numbers of faces"):
        ensemble.member_scores([big, small[:3]])


def test_a_manifest_default_may_name_an_ensemble(ensemble_dir, members, monkeypatch):
    monkeypatch.setenv("DFD_KIT_WEIGHTS", str(ensemble_dir))
    default = resolve_members(None)
    assert [m.path.name for m in default] == ["tiny.weights.h5", "lite64.weights.h5"]
    with pytest.raises(WeightsError, match="ensemble"):
        resolve_weights(None)
    with pytest.raises(WeightsError, match="twice"):
        resolve_members([members[0].path, members[0].path])
    assert ensemble_entry(default) == {}
    manifest = json.loads((ensemble_dir / "manifest.json").read_text())
    manifest["ensembles"] = {"tiny.weights.h5+lite64.weights.h5": {"combine": "prob_mean", "member_weights": [0.2, 0.8]}}
    (ensemble_dir / "manifest.json").write_text(json.dumps(manifest))
    try:
        entry = ensemble_entry(resolve_members(None))
        ensemble = Ensemble.for_weights(default, entry)
        assert ensemble.combine == "prob_mean" and ensemble.weights.tolist() == [0.2, 0.8]
    finally:
        del manifest["ensembles"]
        (ensemble_dir / "manifest.json").write_text(json.dumps(manifest))

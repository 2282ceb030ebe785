"""Crop folders as training tables, scoring them, Platt scaling and the inference settings chosen on
validation videos, all written into the weights' manifest and used by Predictor by default."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from configs import LITE_96
from dfdc_folder import blended_face, make_dfdc_folder

from dfd_kit.training.calibrate import calibrate_weights, choose_inference, fit_member_weights
from dfd_kit.training.crops import DFDC_FACE_BOX, import_crops, score_crops
from dfd_kit.models import Classifier, build_classifier
from dfd_kit.inference.predict import Predictor
from dfd_kit.models.weights import resolve_weights, save_weights
from dfd_kit.training.evaluate import fit_platt

pytestmark = pytest.mark.slow


def test_platt_scaling_recovers_a_known_scaling():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    labels = rng.random(z.size) < 1 / (1 + np.exp(-(0.5 * z + 0.8)))
    a, b = fit_platt(1 / (1 + np.exp(-z)), labels, balanced=False)
    assert a == pytest.approx(0.5, abs=0.03) and b == pytest.approx(0.8, abs=0.05)
    a, b = fit_platt(1 / (1 + np.exp(-z)), labels, balanced=True)  # ~70 % FAKE here, weighted to 50/50
    calibrated = 1 / (1 + np.exp(-(a * z + b)))
    # equal class weights: the FAKE mean's shortfall equals the REAL mean's excess (the intercept's optimum)
    assert (1 - calibrated[labels]).mean() == pytest.approx(calibrated[~labels].mean(), abs=1e-3)
    assert labels.mean() > 0.6 and b < 0.8  # the FAKE majority no longer raises every score


@pytest.fixture(scope="module")
def crop_folder(tmp_path_factory):
    """A DFDC-crop-style folder: 224 px crops of the astronaut (REAL) and self-blended copies (FAKE), labels.csv."""
    from skimage import data

    folder = tmp_path_factory.mktemp("crops")
    (folder / "faces_224").mkdir()
    image = data.astronaut()
    rows = []
    for i in range(12):
        shift = 4 * i
        real = image[20 + shift : 220 + shift, 120:320]
        fake = blended_face(image, seed=i)[20 + shift : 220 + shift, 120:320]
        for label, crop, name in (("REAL", real, f"r{i}"), ("FAKE", fake, f"f{i}")):
            cv2.imwrite(str(folder / "faces_224" / f"{name}.jpg"), cv2.cvtColor(cv2.resize(crop, (224, 224)), cv2.COLOR_RGB2BGR))
            rows.append({"file": f"faces_224/{name}.jpg", "video": f"{name}.mp4", "label": label, "original": f"r{i}.mp4" if label == "FAKE" else "", "group": f"r{i}"})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def lite_weights(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    return save_weights(build_classifier(LITE_96, init="imagenet"), tmp_path_factory.mktemp("w") / "lite.weights.h5", LITE_96, trained=False)


def test_imported_crops_make_a_split_training_table(crop_folder, tmp_path):
    table = import_crops(crop_folder / "labels.csv", tmp_path / "new" / "crops.parquet", val_fraction=0.25)  # its folder is made
    assert len(table) == 24 and set(table["split"]) == {"train", "val"}
    assert (table.groupby("group")["split"].nunique() == 1).all()  # a fake stays with its original
    assert all(p.startswith("/") and cv2.imread(p) is not None for p in table["path"])
    cx, cy, w, h = DFDC_FACE_BOX
    assert table["x1"].iloc[0] == pytest.approx((cx - w / 2) * 224) and table["crop_x2"].iloc[0] == 224
    assert pd.read_parquet(tmp_path / "new" / "crops.parquet").equals(table)


def test_scored_crops_are_the_classifiers_scores(crop_folder, lite_weights):
    rows = score_crops(crop_folder, lite_weights, batch_size=5)
    labels = pd.read_csv(crop_folder / "labels.csv")
    assert list(rows["filename"]) == list(labels["video"])
    crops = np.stack([cv2.resize(cv2.cvtColor(cv2.imread(str(crop_folder / f)), cv2.COLOR_BGR2RGB), (96, 96), interpolation=cv2.INTER_AREA) for f in labels["file"]])
    np.testing.assert_allclose(rows["label"], Classifier(LITE_96, lite_weights).predict(crops), atol=1e-6)


def test_calibration_and_chosen_settings_become_the_predictors_defaults(crop_folder, lite_weights, tmp_path):
    table = import_crops(crop_folder / "labels.csv", tmp_path / "crops.parquet", val_fraction=0.5)
    fit = calibrate_weights(lite_weights, [tmp_path / "crops.parquet"])
    assert fit["balanced_log_loss"] <= fit["balanced_log_loss_before"] + 1e-9
    assert fit["data"]["crops"] == int((table["split"] == "val").sum())
    info = resolve_weights(lite_weights)
    assert info.calibration == (fit["a"], fit["b"]) and info.inference["flip"] == fit["flip"]

    videos = make_dfdc_folder(tmp_path / "val_videos", n_real=2, fakes_per_real=1, frames=6, extras=False)
    chosen = choose_inference(lite_weights, videos, frame_counts=(2, 4), device="cpu")
    scored = chosen["validation"]["table"]
    assert len(scored) == 2 * 3 and {r["frames"] for r in scored} == {2, 4} and all(r["videos"] == 4 for r in scored)
    assert scored[0]["log_loss"] == min(r["log_loss"] for r in scored)
    assert (chosen["frames"], chosen["rule"]) == (scored[0]["frames"], scored[0]["rule"])
    entry = json.loads((lite_weights.parent / "manifest.json").read_text())["files"][lite_weights.name]
    assert entry["inference"]["frames"] == chosen["frames"] and entry["calibration"]["a"] == fit["a"]

    predictor = Predictor(lite_weights, device="cpu")
    assert (predictor.frames, predictor.rule, predictor.classifier.flip) == (chosen["frames"], chosen["rule"], fit["flip"])
    assert predictor.classifier.calibration == (fit["a"], fit["b"])
    assert Predictor(lite_weights, device="cpu", frames=3, rule="median", flip=False).frames == 3  # explicit wins


def test_model_selection_metric_ignores_an_offset_that_calibration_removes():
    from dfd_kit.training.train import video_metrics

    rng = np.random.default_rng(1)
    labels = (rng.random(400) < 0.8).astype(float)  # a validation set that is 80 % FAKE, as DFDC's
    logits = 1.5 * (labels - 0.5) + rng.normal(0, 1, labels.size)
    videos = np.arange(labels.size).astype(str)
    shifted = [video_metrics(1 / (1 + np.exp(-(logits + offset))), labels, videos) for offset in (-2.0, 0.0, 2.0)]
    assert len({round(m["video_auc"], 9) for m in shifted}) == 1
    assert max(m["video_log_loss"] for m in shifted) - min(m["video_log_loss"] for m in shifted) > 0.3  # raw: moves a lot
    calibrated = [m["video_calibrated_log_loss"] for m in shifted]
    assert max(calibrated) - min(calibrated) < 0.02  # calibrated: the same ranking scores the same


def test_cell_weights_give_every_source_and_label_the_same_total():
    from dfd_kit.training.evaluate import cell_weights

    labels = np.array([0] * 90 + [1] * 10 + [0] * 3 + [1] * 7)
    sources = np.array(["dfdc"] * 100 + ["ffpp"] * 10)
    w = cell_weights(labels, sources)
    totals = pd.Series(w).groupby([sources, labels]).sum()
    np.testing.assert_allclose(totals.to_numpy(), totals.iloc[0])
    assert w.sum() == pytest.approx(len(labels))


def test_reframe_cuts_what_the_face_sampler_cuts_around_the_same_box():
    """A crop framed otherwise (a face box centred, 0.84 x 1.09 of the side, as FF++'s Haar crops), re-cut to a
    config's framing, shows what FaceSampler cuts from the whole frame around that box."""
    from skimage import data

    from dfd_kit.training.crops import reframe
    from dfd_kit.inference.faces import square_box
    from dfd_kit.models.registry import get_config

    frame = cv2.resize(data.astronaut(), (1024, 1024))
    cfg = get_config("efficientnet_lite0_192")
    box = np.array([380.0, 140.0, 548.0, 358.0])  # a face box of 168 x 218 px
    side = 200.0  # the foreign crop: the box is 0.84 x 1.09 of its side, centred
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x1, y1 = int(cx - side / 2), int(cy - side / 2)
    foreign = frame[y1 : y1 + int(side), x1 : x1 + int(side)]
    face_box = ((cx - x1) / side, (cy - y1) / side, (box[2] - box[0]) / side, (box[3] - box[1]) / side)
    ours = reframe(foreign, face_box, cfg)
    wx1, wy1, wx2, wy2 = square_box(box, cfg.margin, *frame.shape[:2], cfg.shift)
    expected = cv2.resize(frame[wy1:wy2, wx1:wx2], (192, 192), interpolation=cv2.INTER_AREA)
    assert ours.shape == (192, 192, 3)
    rows_inside = slice(0, 180)  # the window reaches past the foreign crop's bottom edge: those rows repeat it
    assert np.abs(ours[rows_inside].astype(int) - expected[rows_inside]).mean() < 4.0
    assert np.abs(cv2.resize(foreign, (192, 192)).astype(int)[rows_inside] - expected[rows_inside]).mean() > 8.0  # unframed, it would differ


def test_imported_crops_take_the_labels_groups_keep_their_columns_and_reframe(crop_folder, tmp_path):
    labels = pd.read_csv(crop_folder / "labels.csv", keep_default_na=False)
    labels["group"] = [f"block{i // 8}" for i in range(len(labels))]  # 3 groups of 8 crops (4 originals with their fakes)
    labels["method"] = np.where(labels["label"] == "FAKE", "Face2Face", "youtube")
    labels.to_csv(crop_folder / "labels_grouped.csv", index=False)
    table = import_crops(crop_folder / "labels_grouped.csv", tmp_path / "g.parquet", val_fraction=0.34, face_box="ffpp", config=LITE_96.name)
    assert set(table["group"]) == {"block0", "block1", "block2"} and (table.groupby("group")["split"].nunique() == 1).all()
    assert list(table["method"]) == list(labels["method"])
    assert all(cv2.imread(p).shape == (96, 96, 3) and "g_crops" in p for p in table["path"])
    assert (table["crop_x2"] == 96).all() and 0 < table["x1"].iloc[0] < table["x2"].iloc[0] <= 110


def test_crops_scored_with_a_face_box_are_reframed_first(crop_folder, lite_weights):
    from dfd_kit.training.crops import FFPP_FACE_BOX, reframe

    rows = score_crops(crop_folder, lite_weights, face_box="ffpp")
    labels = pd.read_csv(crop_folder / "labels.csv")
    crops = np.stack([reframe(cv2.cvtColor(cv2.imread(str(crop_folder / f)), cv2.COLOR_BGR2RGB), FFPP_FACE_BOX, LITE_96) for f in labels["file"]])
    # the classifier as score_crops builds it: the weights' calibration and flip (this module's calibration test set them)
    np.testing.assert_allclose(rows["label"], Classifier.for_weights(resolve_weights(lite_weights)).predict(crops), atol=1e-6)
    assert not np.allclose(rows["label"], score_crops(crop_folder, lite_weights)["label"], atol=1e-4)


def test_an_ensemble_is_chosen_on_validation_data_and_predicts_as_chosen(crop_folder, lite_weights, ensemble_dir, tmp_path):
    from dfd_kit.models.ensemble import COMBINES
    from dfd_kit.training.calibrate import calibrate_ensemble

    second = ensemble_dir / "lite64.weights.h5"  # another input size and framing, calibrated, flip on
    import_crops(crop_folder / "labels.csv", tmp_path / "crops.parquet", val_fraction=0.5)
    videos = make_dfdc_folder(tmp_path / "val_videos", n_real=2, fakes_per_real=1, frames=6, extras=False)
    entry = calibrate_ensemble([lite_weights, second], videos, tables=[tmp_path / "crops.parquet"], frame_counts=(2, 4), device="cpu")
    rows = entry["validation"]["table"]
    assert len(rows) == 2 * len(COMBINES) * 2 * 3 and all(r["videos"] == 4 for r in rows)
    assert {r["ensemble"] for r in rows} == {f"{c}, {w}" for c in COMBINES for w in ("equal", "fitted")}
    assert rows[0]["log_loss"] == min(r["log_loss"] for r in rows)
    assert entry["combine"] == rows[0]["ensemble"].split(",")[0] and sum(entry["member_weights"]) == pytest.approx(1, abs=1e-3)
    stored = json.loads((lite_weights.parent / "manifest.json").read_text())["ensembles"][f"{lite_weights.name}+lite64.weights.h5"]
    assert stored["members"] == [lite_weights.name, "lite64.weights.h5"] and stored["inference"] == entry["inference"]

    predictor = Predictor([lite_weights, second], device="cpu")
    assert predictor.ensemble.combine == entry["combine"]
    np.testing.assert_allclose(predictor.ensemble.weights, entry["member_weights"], atol=1e-3)
    assert (predictor.frames, predictor.rule) == (entry["inference"]["frames"], entry["inference"]["rule"])



def test_fit_member_weights_leave_equal_weights_when_that_pays():
    """Member 0 is strong on source a, member 1 better on source b, so the best weights are near
    0.64/0.36 for the mean of log-odds, where the loss is flat (a gain of 0.005): the fit must still
    get there (scipy's default first steps from equal weights, 0.00025, stopped it after one
    iteration), and for the mean of probabilities near 0.8/0.2."""
    from dfd_kit.models.ensemble import combine_scores
    from dfd_kit.training.evaluate import balanced_log_loss

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    sources = np.repeat(["a", "b"], 1000)

    def member(strength_a: float, strength_b: float) -> np.ndarray:
        strength = np.where(sources == "a", strength_a, strength_b)
        return 1 / (1 + np.exp(-(strength * (2 * labels - 1) + rng.normal(0, 1, 2000))))

    scores = np.stack([member(2.0, 0.5), member(0.5, 1.2)]).astype(np.float32)

    def loss(w: np.ndarray, combine: str) -> float:
        p = combine_scores(scores, combine, w)
        return float(np.mean([balanced_log_loss(labels[sources == s], p[sources == s]) for s in ("a", "b")]))

    for combine, expected in (("logit_mean", 0.64), ("prob_mean", 0.81)):
        weights = fit_member_weights(scores, labels, sources, combine)
        assert weights.sum() == pytest.approx(1)
        assert weights[0] == pytest.approx(expected, abs=0.03), (combine, weights)
        assert loss(weights, combine) < loss(np.array([0.5, 0.5]), combine) - 0.004

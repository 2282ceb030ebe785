"""extract → split → train (interrupted, then resumed) → predict → evaluate, end to end on generated videos.

One small run (``xception_96``, a few steps of 8 crops, CPU) serves every test of this module: it is
interrupted after its first epoch and resumed with the same call, as a user would after a crash.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from configs import LITE_96
from dfdc_folder import make_dfdc_folder
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from dfd_kit.inference.aggregate import aggregate
from dfd_kit.device import import_tensorflow
from dfd_kit.training.dispatch import extract_folders
from dfd_kit.training.extract import ExtractSettings
from dfd_kit.models import Classifier
from dfd_kit.training.split import split_file
from dfd_kit.training.train import (
    TrainSettings,
    VideoCheckpoint,
    choose_strategy,
    source_shares,
    train,
    train_dataset,
    validation_set,
    video_metrics,
)
from dfd_kit.training.evaluate import evaluate
from dfd_kit.training.tables import read_table
from dfd_kit.inference.predict import predict_folder
from dfd_kit.models.weights import resolve_weights

pytestmark = pytest.mark.slow

SETTINGS = TrainSettings(config="xception_96", epochs=2, steps_per_epoch=2, batch_size=8, warmup_steps=1, sbi="mix", patience=5, seed=0)


class Interrupted(Exception):
    """Stands in for a crash or a kill between two epochs."""


@pytest.fixture(scope="module", autouse=True)
def eager():
    """Run Keras' train and predict functions eagerly: for a few steps, tracing Xception costs more."""
    tf = import_tensorflow()
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return make_dfdc_folder(tmp_path_factory.mktemp("dfdc") / "part0", n_real=3, fakes_per_real=2, frames=8)


@pytest.fixture(scope="module")
def table_path(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("faces")
    extract_folders([videos], out, ExtractSettings(image_size=96, margin=0.3, frames=4), workers=0, progress=False)
    split_file(out / "faces.parquet", val_fraction=0.34, seed=0)
    return out / "faces.parquet"


@pytest.fixture(scope="module")
def run(table_path, tmp_path_factory):
    """Train, interrupted at the start of epoch 2, then the same call again; record the epochs run."""
    root = tmp_path_factory.mktemp("run")
    out, run_dir = root / "weights" / "model.weights.h5", root / "run"
    epochs_done: list[list[int]] = [[], []]
    original_end, original_begin = VideoCheckpoint.on_epoch_end, VideoCheckpoint.on_epoch_begin
    attempt = {"n": 0}

    def on_epoch_begin(self, epoch, logs=None):
        if attempt["n"] == 0 and epoch == 1:
            raise Interrupted
        original_begin(self, epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        original_end(self, epoch, logs)
        epochs_done[attempt["n"]].append(epoch)

    mp = pytest.MonkeyPatch()
    mp.setattr(VideoCheckpoint, "on_epoch_begin", on_epoch_begin)
    mp.setattr(VideoCheckpoint, "on_epoch_end", on_epoch_end)
    try:
        with pytest.raises(Interrupted):
            train(table_path, out, run_dir, SETTINGS, command="test", progress=False)
        interrupted_state = json.loads((run_dir / "state.json").read_text())
        backup_after_crash = (run_dir / "backup_all").is_dir()
        attempt["n"] = 1
        state = train(table_path, out, run_dir, SETTINGS, command="test", progress=False)
    finally:
        mp.undo()
    return {"out": out, "run_dir": run_dir, "state": state, "epochs": epochs_done, "interrupted_state": interrupted_state, "backup_after_crash": backup_after_crash}


def test_split_keeps_fakes_with_their_originals(table_path):
    table = pd.read_parquet(table_path)
    assert set(table["split"]) == {"train", "val"}
    assert (table.groupby("group")["split"].nunique() == 1).all()
    fakes = table[table["label"] == "FAKE"]
    assert (fakes["group"] == fakes["original"]).all()
    real_split = table[table["label"] == "REAL"].drop_duplicates("video").set_index("video")["split"]
    assert (fakes["split"].to_numpy() == real_split.loc[fakes["original"]].to_numpy()).all()


def test_training_stream_is_balanced_and_preprocessed(table_path):
    table = read_table(table_path)
    ds = train_dataset(table[table["split"] == "train"], 96, SETTINGS)
    labels = []
    for x, y in ds.take(6):
        assert tuple(x.shape) == (8, 96, 96, 3) and tuple(y.shape) == (8, 1)
        assert -1.0 <= float(np.min(x)) and float(np.max(x)) <= 1.0
        labels.append(y.numpy().ravel())
    share = np.concatenate(labels).mean()
    assert 0.2 < share < 0.8  # 48 draws at p = 1/2


def test_strategy_fits_the_devices():
    strategy = choose_strategy()
    assert strategy.num_replicas_in_sync >= 1


def test_interrupted_run_resumes_where_it_stopped(run):
    assert run["epochs"] == [[0], [1]]
    assert run["backup_after_crash"], "the crash must leave a backup to resume from"
    assert not (run["run_dir"] / "backup").exists(), "a finished run removes its backup"
    log_csv = pd.read_csv(run["run_dir"] / "log.csv")
    assert log_csv["epoch"].tolist() == [0, 1]
    assert {"loss", "val_video_log_loss", "val_video_auc"} <= set(log_csv.columns)
    before = run["interrupted_state"]
    assert before["best_epoch"] == 1
    assert run["state"]["best"] <= before["best"]  # carried over, only ever improved
    assert run["state"]["best"] == pytest.approx(log_csv["val_video_log_loss"].min())


def test_weights_and_manifest(run):
    info = resolve_weights(run["out"])
    assert info.trained and info.config.name == "xception_96"
    entry = info.entry
    assert entry["storage"] == "float16" and entry["epoch"] == run["state"]["best_epoch"] and entry["command"] == "test"
    assert entry["training"]["settings"]["sbi"] == "mix"
    assert entry["metrics"]["validation"]["video_log_loss"] == pytest.approx(run["state"]["best"])
    assert json.loads((run["out"].parent / "manifest.json").read_text())["default"] == run["out"].name


def test_checkpoint_metric_is_the_video_level_log_loss(run, table_path):
    """Recompute the chosen epoch's validation loss from the saved weights: faces averaged per video."""
    table = read_table(table_path)
    crops, labels, videos, sources = validation_set(table[table["split"] == "val"], 96, SETTINGS)
    assert set(sources) == {"part0", "sbi"} and (sources[labels == 0] == "part0").all()
    assert len(set(videos)) < len(videos), "several faces per video, so video and face level differ"
    scores = Classifier("xception_96", run["out"]).predict(crops)
    per_video = pd.DataFrame({"v": videos, "s": scores, "y": labels}).groupby("v").agg(
        y=("y", "first"), p=("s", lambda s: aggregate(s.to_numpy(), "mean", (0.01, 0.99)))
    )
    expected = log_loss(per_video["y"], per_video["p"], labels=[0, 1])
    assert run["state"]["best"] == pytest.approx(expected, abs=2e-3)  # fp16 storage of the weights


def test_predict_then_evaluate_with_the_trained_weights(run, videos, tmp_path):
    submission = tmp_path / "submission.csv"
    summary = predict_folder(videos, submission, weights=run["out"], frames=4, device="cpu", precision="float32", progress=False)
    assert summary.rows == 11 and set(summary.fallbacks) == {"noface.mp4", "corrupt.mp4"}
    result, _ = evaluate(submission, videos / "metadata.json", tmp_path / "eval.png")
    sub = pd.read_csv(submission).set_index("filename")["label"]
    meta = json.loads((videos / "metadata.json").read_text())
    y = np.array([meta[name]["label"] == "FAKE" for name in sub.index], int)
    assert result.videos == 11
    assert result.log_loss == pytest.approx(log_loss(y, sub.to_numpy()))
    assert result.auc == pytest.approx(roc_auc_score(y, sub.to_numpy()))
    assert result.accuracy == pytest.approx(accuracy_score(y, sub.to_numpy() >= 0.5))
    assert result.prior_log_loss == pytest.approx(log_loss(y, np.full(len(y), y.mean())))
    assert (tmp_path / "eval.png").stat().st_size > 0


def test_fine_tuning_from_imagenet_freezes_then_unfreezes(table_path, tmp_path):
    """``init="imagenet"`` on a Lite0: a head-only epoch leaves the backbone as ImageNet made it; the
    next stage changes the convolutions but not the BatchNormalization statistics; the manifest
    records the init; a weights file of the same config works as ``init`` too."""
    import keras

    from dfd_kit.models.efficientnet_lite import EfficientNetLite
    from dfd_kit.models import create_model

    imagenet = EfficientNetLite("lite0", include_top=False, input_shape=(96, 96, 3), weights="imagenet")
    conv = lambda m: m.get_layer("block15_project_conv").get_weights()[0]  # noqa: E731  (in the top quarter)
    bn_mean = lambda m: m.get_layer("block15_project_bn").get_weights()[2]  # noqa: E731
    head_only = TrainSettings(config=LITE_96.name, init="imagenet", epochs=1, head_epochs=1, steps_per_epoch=2, batch_size=8, warmup_steps=1, seed=0)
    out = tmp_path / "w" / "lite.weights.h5"
    state = train(table_path, out, tmp_path / "run_head", head_only, command="test", progress=False)
    assert state["stages_done"] == ["head"]
    model = create_model(LITE_96, out)
    np.testing.assert_allclose(conv(model), conv(imagenet), atol=1e-3)  # fp16 storage
    assert not np.allclose(model.get_layer("head").get_weights()[0], keras.initializers.GlorotUniform(seed=0)((1280, 1)).numpy())
    manifest = json.loads((out.parent / "manifest.json").read_text())["files"]["lite.weights.h5"]
    assert manifest["init"] == "imagenet" and manifest["config"]["arch"] == "efficientnet_lite0"

    staged = TrainSettings(**{**head_only.__dict__, "epochs": 3, "top_epochs": 1, "learning_rate": 1e-2, "patience": 9})
    out2 = tmp_path / "w2" / "lite.weights.h5"
    state = train(table_path, out2, tmp_path / "run_all", staged, command="test", progress=False)
    assert state["stages_done"] == ["head", "top", "all"]
    with np.load(tmp_path / "run_all" / "all.npz") as stored:
        final = create_model(LITE_96)
        final.set_weights([stored[f"arr_{i}"] for i in range(len(stored.files))])
    assert not np.allclose(conv(final), conv(imagenet), atol=1e-4)  # fine-tuned
    np.testing.assert_array_equal(bn_mean(final), bn_mean(imagenet))  # BatchNormalization frozen throughout

    from_file = TrainSettings(**{**head_only.__dict__, "init": str(out)})
    state = train(table_path, tmp_path / "w3" / "lite.weights.h5", tmp_path / "run_file", from_file, command="test", progress=False)
    assert json.loads((tmp_path / "w3" / "manifest.json").read_text())["files"]["lite.weights.h5"]["init"] == "lite.weights.h5"


def _flat_crops(folder, name: str, value: int, n: int, label: str):
    """``n`` rows of one source whose crops are a flat grey ``value``: a source the stream's output shows."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = folder / f"{name}_{label}_{i}.jpg"
        cv2.imwrite(str(path), np.full((32, 32, 3), value, np.uint8))
        rows.append({"folder": name, "video": path.name, "label": label, "path": str(path),
                     "x1": 4.0, "y1": 4.0, "x2": 28.0, "y2": 28.0, "crop_x1": 0, "crop_y1": 0, "crop_x2": 32, "crop_y2": 32})  # fmt: skip
    return rows


def test_source_shares_follow_the_spec():
    table = pd.DataFrame({"folder": ["dfdc"] * 9 + ["ffpp"] * 1})
    assert source_shares(table, "") == {}
    assert source_shares(table, "equal") == {"dfdc": 0.5, "ffpp": 0.5}
    assert source_shares(table, "dfdc=3,ffpp=1,tv=5") == {"dfdc": 0.75, "ffpp": 0.25}  # tv has no rows of this label
    assert source_shares(table, "ffpp=1") == {"ffpp": 1.0}
    with pytest.raises(ValueError, match="sources are"):
        source_shares(table, "celebdf=1")
    with pytest.raises(ValueError, match="name=share"):
        source_shares(table, "dfdc")


def test_a_small_source_gets_its_share_of_every_batch(tmp_path):
    """90 dark REAL crops of one source, 10 bright of another: drawn in proportion, bright is ~10 % of
    the REAL draws; with ``source_weights="equal"``, ~half."""
    rows = _flat_crops(tmp_path, "big", 40, 90, "REAL") + _flat_crops(tmp_path, "small", 215, 10, "REAL") + _flat_crops(tmp_path, "big", 40, 20, "FAKE")
    table = pd.DataFrame(rows)

    def bright_share(spec: str) -> float:
        settings = TrainSettings(config="xception_96", batch_size=16, sbi="off", source_weights=spec, seed=3)
        bright = []
        for x, y in train_dataset(table, 32, settings).take(12):
            real = y.numpy().ravel() == 0
            bright.extend(x.numpy()[real].mean(axis=(1, 2, 3)) > 0)  # preprocessed to [-1, 1]: bright > 0
        return float(np.mean(bright))

    assert bright_share("") < 0.25
    assert 0.35 < bright_share("equal") < 0.65


def test_validation_metrics_per_source_expose_the_weak_one():
    """Source ``good`` is separated, ``weak`` is not: the mean over sources sits between them, the worst is ``weak``'s,
    and the pseudo-fakes (FAKE only) are left out of both."""
    rng = np.random.default_rng(0)
    labels = np.tile([0.0, 1.0], 150)
    sources = np.repeat(["good", "weak", "sbi"], 100)
    sources[200:][labels[200:] == 0] = "good"  # the "sbi" rows are all FAKE
    scores = np.where(sources == "good", np.where(labels == 1, 0.8, 0.2), rng.uniform(0.3, 0.7, labels.size))
    scores = np.clip(scores + rng.normal(0, 0.05, labels.size), 0.01, 0.99)
    videos = np.arange(labels.size).astype(str)
    metrics = video_metrics(scores, labels, videos, sources=sources)
    per = metrics["per_source"]
    assert set(per) == {"good", "weak"}
    assert per["good"]["log_loss"] < 0.2 and per["weak"]["log_loss"] > 0.6 and per["good"]["auc"] > 0.95
    assert metrics["video_worst_source_log_loss"] == pytest.approx(per["weak"]["log_loss"])
    assert metrics["video_source_log_loss"] == pytest.approx((per["good"]["log_loss"] + per["weak"]["log_loss"]) / 2)
    assert "per_source" not in video_metrics(scores, labels, videos)

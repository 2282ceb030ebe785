import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dfd_kit.cli import app
from dfd_kit.demo import make_demo
from dfd_kit.errors import InputError
from dfd_kit.inference.predict import predict_folder


@pytest.fixture(scope="module")
def folder(media, tmp_path_factory):
    """Good, faceless, corrupt and empty videos side by side, plus a sample submission."""
    d = tmp_path_factory.mktemp("videos")
    shutil.copy(media["small"], d / "good.mp4")
    shutil.copy(media["two_faces"], d / "two people.mp4")
    shutil.copy(media["no_face"], d / "no_face.mp4")
    (d / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    (d / "empty.mp4").write_bytes(b"")
    names = ["two people.mp4", "missing.mp4", "corrupt.mp4", "good.mp4", "empty.mp4", "no_face.mp4"]
    pd.DataFrame({"filename": names, "label": 0.5}).to_csv(d / "sample_submission.csv", index=False)
    return d


def _check(out, names):
    df = pd.read_csv(out)
    assert df["filename"].tolist() == names
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in df["label"])
    return df.set_index("filename")["label"]


def test_one_row_per_video_whatever_the_input(folder, predictor, tmp_path):
    out = tmp_path / "submission.csv"
    summary = predict_folder(folder, out, sample_submission=folder / "sample_submission.csv", predictor=predictor, progress=False)
    names = pd.read_csv(folder / "sample_submission.csv")["filename"].tolist()
    labels = _check(out, names)
    reasons = summary.fallbacks
    assert set(reasons) == {"missing.mp4", "corrupt.mp4", "empty.mp4", "no_face.mp4"}
    assert reasons["no_face.mp4"].startswith("NoFaceError")
    assert reasons["corrupt.mp4"].startswith("DecodeError") and reasons["empty.mp4"].startswith("DecodeError")
    for name in reasons:
        assert labels[name] == 0.5
    by_name = {r.filename: r for r in summary.results}
    assert by_name["good.mp4"].n_frames == 8 and by_name["good.mp4"].n_faces >= 6
    assert by_name["two people.mp4"].n_faces > by_name["two people.mp4"].n_frames
    assert 0.01 <= labels["good.mp4"] <= 0.99
    assert summary.seconds["classify"] > 0 and "wrote 6 rows" in summary.report()
    assert not (tmp_path / "submission.csv.partial").exists()


def test_whole_folder_without_sample_submission(folder, predictor, tmp_path):
    out = tmp_path / "s.csv"
    predict_folder(folder, out, predictor=predictor, progress=False)
    _check(out, sorted(["good.mp4", "two people.mp4", "no_face.mp4", "corrupt.mp4", "empty.mp4"]))
    assert predictor.classifier.backend == "onnx"  # "auto" on a CPU with the cpu extra installed


def test_untrained_placeholder_stays_on_tensorflow():
    from dfd_kit.inference.predict import Predictor

    # no weights file to key the ONNX cache by: converting on every run would cost more than it saves
    assert Predictor(weights="placeholder", config="xception_96", device="cpu").classifier.backend == "tf"


def test_time_budget_exhausted_still_writes_every_row(folder, predictor, tmp_path):
    out = tmp_path / "s.csv"
    summary = predict_folder(folder, out, predictor=predictor, time_budget=1.0, progress=False)
    labels = _check(out, sorted(["good.mp4", "two people.mp4", "no_face.mp4", "corrupt.mp4", "empty.mp4"]))
    assert all(r.startswith("time budget") for r in summary.fallbacks.values())
    assert set(labels.index) == set(summary.fallbacks)  # 1 s minus the 5 s reserve: nothing fits


def test_time_budget_degrades_frames_before_giving_up(media, predictor, tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(6):
        shutil.copy(media["small"], d / f"v{i}.mp4")
    first = predictor.predict_video(d / "v0.mp4")
    per_video = sum(first.seconds.values())
    # room for roughly half the frames of each remaining video, plus the 5 s reserve
    budget = 5.0 + per_video * (1 + 5 * 0.5) / 0.85
    summary = predict_folder(d, tmp_path / "s.csv", predictor=predictor, time_budget=budget, progress=False)
    frames = [r.n_frames for r in summary.results]
    _check(tmp_path / "s.csv", [f"v{i}.mp4" for i in range(6)])
    assert frames[0] == 8
    assert min(frames) < 8  # fewer frames (or the prior) once the estimate says time is short


def test_cli_predict(folder, tiny_weights, tmp_path):
    out = tmp_path / "cli.csv"
    result = CliRunner().invoke(
        app,
        ["predict", str(folder), "--out", str(out), "--weights", str(tiny_weights), "--frames", "4",
         "--device", "cpu", "--rule", "confident", "--clip", "0.05,0.95"],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 5 rows" in result.output and "fallbacks: 3" in result.output
    labels = _check(out, sorted(["good.mp4", "two people.mp4", "no_face.mp4", "corrupt.mp4", "empty.mp4"]))
    assert 0.05 <= labels["good.mp4"] <= 0.95


def test_cli_reports_bad_input_clearly(tmp_path, tiny_weights):
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "nope"), "--weights", str(tiny_weights), "--device", "cpu"])
    assert result.exit_code == 2
    assert "videos folder not found" in result.output


def test_demo_folder(predictor, tmp_path):
    videos = make_demo(tmp_path / "demo", frames_per_video=12)
    assert sorted(p.name for p in videos.iterdir()) == [
        "corrupt.mp4", "fake_astronaut.mp4", "metadata.json", "no_face.mp4", "real_astronaut.mp4", "sample_submission.csv",
    ]
    summary = predict_folder(videos, tmp_path / "s.csv", sample_submission=videos / "sample_submission.csv", predictor=predictor, progress=False)
    assert set(summary.fallbacks) == {"corrupt.mp4", "no_face.mp4"}
    assert {r.filename: r.n_faces for r in summary.results}["real_astronaut.mp4"] >= 6


def test_one_video_file(folder, predictor, tmp_path):
    summary = predict_folder(folder / "good.mp4", tmp_path / "s.csv", predictor=predictor, progress=False)
    labels = _check(tmp_path / "s.csv", ["good.mp4"])
    assert not summary.fallbacks and 0.01 <= labels["good.mp4"] <= 0.99
    with pytest.raises(InputError, match="not a video file"):
        predict_folder(folder / "sample_submission.csv", tmp_path / "t.csv", predictor=predictor)


def test_progress_bar_on_more_than_a_few_videos(media, predictor, tmp_path, capsys):
    d = tmp_path / "five"
    d.mkdir()
    for i in range(5):
        shutil.copy(media["no_face"], d / f"v{i}.mp4")
    predict_folder(d, tmp_path / "s.csv", predictor=predictor, isolate=False)
    bar = capsys.readouterr().err
    assert "5/5" in bar and re.search(r"video/s|s/video", bar)  # the count and the rate
    predict_folder(d, tmp_path / "s.csv", sample_submission=_sample(d, 3), predictor=predictor, isolate=False)
    assert "3/3" not in capsys.readouterr().err  # a few videos: no bar


def _sample(d, n):
    path = d / "few.csv"
    pd.DataFrame({"filename": [f"v{i}.mp4" for i in range(n)], "label": 0.5}).to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_cli_one_file_prints_a_table_and_keeps_the_terminal_calm(folder, tiny_weights, tmp_path):
    """`dfd predict FILE` without --out, as a user runs it: a table of results, no framework start-up lines."""
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "DFD_KIT_VERBOSE")}
    env.update(PYTHONPATH=str(repo), MPLCONFIGDIR=str(tmp_path / "mpl"))  # a fresh matplotlib font cache, as on a new machine
    cmd = [sys.executable, "-m", "dfd_kit", "predict", str(folder / "good.mp4"), "--weights", str(tiny_weights), "--device", "cpu", "--frames", "2"]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert re.search(r"^video\s+P\(FAKE\)\s+frames\s+faces", run.stdout, re.M) and re.search(r"^good\.mp4\s+0\.\d{3}\s+2\s", run.stdout, re.M)
    _check(tmp_path / "submission.csv", ["good.mp4"])
    noise = ("oneDNN", "absl::InitializeLog", "font cache", "fontManager", "Warning:")
    assert not [line for line in (run.stdout + run.stderr).splitlines() if any(n in line for n in noise)], run.stderr
    # the same import with --verbose's setting lets TensorFlow's lines through: the check above can fail
    verbose = "from dfd_kit.console import setup; setup(True); from dfd_kit.device import import_tensorflow; import_tensorflow()"
    loud = subprocess.run([sys.executable, "-c", verbose], env=env, capture_output=True, text=True, timeout=300)
    assert any(marker in loud.stderr for marker in noise[:2]), loud.stderr


def test_an_ensemble_finds_faces_once_and_scores_them_with_every_member(media, ensemble_dir, tmp_path, monkeypatch):
    from dfd_kit.inference.decode import FallbackDecoder
    from dfd_kit.inference.predict import Predictor

    paths = [ensemble_dir / "tiny.weights.h5", ensemble_dir / "lite64.weights.h5"]
    both = Predictor(weights=paths, device="cpu", frames=4, precision="float32")
    assert both.finder_args["image_size"] == 96 and len(both.finder_args["extra_framings"]) == 1
    reads = []
    original = FallbackDecoder.read
    monkeypatch.setattr(FallbackDecoder, "read", lambda self, *a, **k: reads.append(a[0]) or original(self, *a, **k))
    result = both.predict_video(media["small"], keep_faces=True)
    assert len(reads) == 1, "decoded once for both members"
    faces = result.faces
    assert faces.member_scores.shape == (2, result.n_faces) and [c.shape[1] for c in faces.member_crops] == [96, 64]
    for k, path in enumerate(paths):  # each member alone scores the same faces the same way
        alone = Predictor(weights=path, device="cpu", frames=4, precision="float32").predict_video(media["small"], keep_faces=True)
        np.testing.assert_allclose(alone.faces.scores, faces.member_scores[k], atol=1e-5)
    np.testing.assert_allclose(faces.scores, both.ensemble.combine_scores(faces.member_scores), atol=1e-6)
    assert "ensemble of 2" in both.describe() and len(both.settings()["members"]) == 2


def test_an_ensemble_run_keeps_every_row_and_reports_each_members_scores(folder, ensemble_dir, tmp_path, monkeypatch):
    import json as json_

    monkeypatch.setenv("DFD_KIT_WEIGHTS", str(ensemble_dir))  # the manifest's default is the two-member list
    out, report = tmp_path / "s.csv", tmp_path / "r.html"
    summary = predict_folder(folder, out, sample_submission=folder / "sample_submission.csv", device="cpu", frames=4,
                             precision="float32", progress=False, report=report, explain=1)  # fmt: skip
    _check(out, pd.read_csv(folder / "sample_submission.csv")["filename"].tolist())
    assert "ensemble of 2" in summary.weights
    data = json_.loads(report.with_suffix(".json").read_text())
    good = next(v for v in data["videos"] if v["filename"] == "good.mp4")
    assert len(good["member_scores"]) == 2 and len(good["member_scores"][0]) == len(good["scores"])
    assert {e["member"] for e in good["explained"]} == {0, 1}  # a Grad-CAM heat map per member
    assert "lite64.weights.h5 " in report.read_text()

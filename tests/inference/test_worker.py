"""The pool of decode+detect workers: several at once, rows in order, the same scores as one worker,
a hung or crashing video cut off and its worker replaced while the others carry on."""

import os

import pandas as pd
import pytest

from dfd_kit.inference.predict import Predictor, predict_folder


@pytest.fixture(scope="module")
def mixed(media, tmp_path_factory):
    """A slow 1080p clip first, then quick ones, so that later videos finish before earlier ones."""
    d = tmp_path_factory.mktemp("mixed")
    for name, clip in [("a_1080p.mp4", "h264_1080p"), ("b_small.mp4", "small"), ("c_two.mp4", "two_faces"),
                       ("d_noface.mp4", "no_face"), ("e_bframes.mp4", "bframes"), ("f_small.mp4", "small")]:  # fmt: skip
        os.symlink(media[clip], d / name)
    return d


@pytest.fixture(scope="module")
def one_worker(mixed, predictor, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "s.csv"
    return predict_folder(mixed, out, predictor=predictor, workers=1, progress=False), out


def _rows(summary):
    return [(r.filename, r.label, r.n_frames, r.n_faces, r.reason) for r in summary.results]


def test_several_workers_keep_the_order_and_the_scores_of_one(mixed, predictor, one_worker, tmp_path):
    one, one_csv = one_worker
    three = predict_folder(mixed, tmp_path / "s.csv", predictor=predictor, workers=3, progress=False)
    assert [r.filename for r in three.results] == sorted(os.listdir(mixed))
    assert _rows(three) == _rows(one)  # bit for bit: labels, frames, faces and reasons
    assert pd.read_csv(tmp_path / "s.csv").equals(pd.read_csv(one_csv))
    assert set(three.fallbacks) == {"d_noface.mp4"}
    assert three.seconds["decode"] > 0 and three.seconds["detect"] > 0


@pytest.mark.slow
def test_hung_and_crashing_videos_are_cut_off_and_the_others_unaffected(media, predictor, one_worker, tmp_path):
    from dfd_kit.device import cpu_cores

    d = tmp_path / "faults"
    d.mkdir()
    names = sorted(["a_good.mp4", "crash.mp4", "hang.mp4", "m_good.mp4", "crash_2.mp4", "threads.mp4", "z_good.mp4"])
    for name in names:
        os.symlink(media["small"], d / name)
    summary = predict_folder(d, tmp_path / "s.csv", predictor=predictor, workers=2, finder="faulty:FaultyFinder", video_timeout=10, progress=False)
    assert [r.filename for r in summary.results] == names
    assert summary.fallbacks["crash.mp4"].startswith("WorkerCrash") and summary.fallbacks["crash_2.mp4"].startswith("WorkerCrash")
    assert summary.fallbacks["hang.mp4"].startswith("Timeout")
    share = max(1, cpu_cores() // 2)  # each worker's threads: the cores divided among the workers
    assert summary.fallbacks["threads.mp4"].endswith(f"torch={share} opencv={share} ffmpeg={share} omp=PASSIVE")
    assert set(summary.fallbacks) == {"crash.mp4", "crash_2.mp4", "hang.mp4", "threads.mp4"}  # the replaced workers carried on
    reference = {r.filename: r.label for r in one_worker[0].results}["b_small.mp4"]  # the same clip
    assert [r.label for r in summary.results if r.reason is None] == [reference] * 3
    df = pd.read_csv(tmp_path / "s.csv")
    assert df["filename"].tolist() == names and df["label"].between(0, 1).all()
    with pytest.raises(ValueError, match="at least 1"):
        predict_folder(d, tmp_path / "t.csv", predictor=predictor, workers=0)


def test_decode_modes_reach_the_decoder(media, tiny_weights):
    path = media["bframes"]  # IDR frames at 0, 20 and 40 of 60
    found = {}
    for mode in ("exact", "reference", "keyframes"):
        predictor = Predictor(weights=tiny_weights, device="cpu", frames=7, precision="float32", decode=mode)
        result = predictor.predict_video(path, keep_faces=True)
        found[mode] = sorted(set(result.faces.frames.tolist()))
        assert predictor.settings()["decode"] == mode
    assert found["exact"] == [0, 10, 20, 30, 39, 49, 59]
    assert found["keyframes"] == [0, 20, 40]
    assert len(found["reference"]) == 7 and found["reference"] != found["exact"]
    with pytest.raises(ValueError, match="decode must be one of"):
        Predictor(weights=tiny_weights, device="cpu", decode="nearest")

"""`dfd extract`: inference's sampling and face cropping, crops + one table, failures recorded, resumable."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from dfdc_folder import make_dfdc_folder

import dfd_kit
from dfd_kit.inference.decode import Sampling, make_decoder
from dfd_kit.training.dispatch import extract, extract_folders
from dfd_kit.training.extract import ExtractSettings, folder_tasks, photo_tasks, read_photo
from dfd_kit.training.tables import FACE_COLUMNS
from dfd_kit.inference.faces import FaceSampler
from dfd_kit.inference.sampling import sample_indices

pytestmark = pytest.mark.slow

SETTINGS = ExtractSettings(image_size=96, margin=0.3, frames=4)
REPO = Path(dfd_kit.__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return make_dfdc_folder(tmp_path_factory.mktemp("dfdc") / "dfdc_part_0", n_real=3, fakes_per_real=2, frames=8)


@pytest.fixture(scope="module")
def extracted(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract")
    faces, table = extract_folders([videos], out, SETTINGS, workers=2, progress=False)
    return out, faces, table


def test_one_row_per_face_with_labels_from_the_metadata(extracted):
    out, faces, table = extracted
    assert list(faces.columns) == FACE_COLUMNS
    assert faces.equals(pd.read_parquet(out / "faces.parquet"))
    ok = table[table["status"] == "ok"].set_index("video")
    assert set(ok.index) == {f"real{r}.mp4" for r in range(3)} | {f"fake{r}_{k}.mp4" for r in range(3) for k in range(2)}
    assert (faces.groupby("video").size() == ok["n_faces"].loc[faces["video"].unique()]).all()
    assert set(faces.loc[faces["video"].str.startswith("fake"), "label"]) == {"FAKE"}
    assert set(faces.loc[faces["video"].str.startswith("real"), "label"]) == {"REAL"}
    fakes = faces[faces["label"] == "FAKE"]
    assert (fakes["original"] == fakes["video"].str.replace(r"fake(\d)_\d", r"real\1", regex=True)).all()
    assert faces["frame"].isin(sample_indices(8, SETTINGS.frames)).all()
    assert (faces["prob"] >= 0.9).all() and (faces["folder"] == "dfdc_part_0").all()
    assert not faces.duplicated(["video", "frame", "face"]).any()


def test_failures_are_recorded_not_fatal(extracted):
    _, faces, table = extracted
    failed = table[table["status"] == "failed"].set_index("video")
    assert set(failed.index) == {"noface.mp4", "corrupt.mp4"}
    assert failed.loc["noface.mp4", "error"].startswith("NoFaceError")
    assert failed.loc["corrupt.mp4", "error"].startswith("DecodeError")
    assert not faces["video"].isin(failed.index).any()


def test_crops_are_jpegs_of_one_size_cut_as_inference_cuts_them(extracted, videos):
    """The same decoder, sampling and FaceSampler as inference: same boxes, same crops (up to JPEG)."""
    out, faces, _ = extracted
    frames = make_decoder("cpu").read(videos / "real1.mp4", Sampling(SETTINGS.frames))
    ref = FaceSampler(image_size=SETTINGS.image_size, margin=SETTINGS.margin, scale=SETTINGS.detect_scale)(frames)
    rows = faces[faces["video"] == "real1.mp4"].sort_values(["frame", "face"])
    assert len(rows) == len(ref)
    np.testing.assert_allclose(rows[["x1", "y1", "x2", "y2"]].to_numpy(), ref.boxes, atol=0.5)
    for row, crop in zip(rows.itertuples(), ref.crops):
        saved = cv2.cvtColor(cv2.imread(str(out / row.path)), cv2.COLOR_BGR2RGB)
        assert saved.shape == (96, 96, 3)
        assert np.abs(saved.astype(int) - crop).mean() < 3.0
        assert row.crop_x2 - row.crop_x1 == row.crop_y2 - row.crop_y1 > 0


def test_a_rerun_skips_done_videos(extracted, videos):
    out, faces, _ = extracted
    parts = sorted((out / "parts").rglob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in parts]
    again, _ = extract(folder_tasks(videos), out, SETTINGS, workers=0, progress=False)
    assert [p.stat().st_mtime_ns for p in parts] == stamps
    pd.testing.assert_frame_equal(again, faces)


def test_an_interrupted_extraction_resumes_without_half_written_files(videos, extracted, tmp_path):
    """Kill `dfd extract` mid-run: every file on disk is complete; the re-run does only what is left."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dfd_kit", "extract", str(videos), "--out", str(out), "--config", "xception_96", "--frames", "4", "--workers", "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    n_videos = len(folder_tasks(videos))
    try:
        while len(list(out.glob("parts/*/*.json"))) < 2 and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done = {p: p.stat().st_mtime_ns for p in out.glob("parts/*/*.json")}
    assert 2 <= len(done) < n_videos, "the run must be killed part-way"
    assert not (out / "faces.parquet").exists()
    for crop in out.glob("crops/**/*.jpg"):
        assert cv2.imread(str(crop)) is not None, f"half-written crop {crop}"
    faces, table = extract(folder_tasks(videos), out, SETTINGS, workers=0, progress=False)
    assert {p: p.stat().st_mtime_ns for p in done} == done, "done videos must not be redone"
    assert len(table) == n_videos and not list(out.rglob("*.partial"))
    full = extracted[1].sort_values(["video", "frame", "face"]).reset_index(drop=True)
    again = faces.sort_values(["video", "frame", "face"]).reset_index(drop=True)
    assert again[["video", "frame", "face", "label", "path"]].equals(full[["video", "frame", "face", "label", "path"]])
    np.testing.assert_allclose(again[["x1", "y1", "x2", "y2"]].to_numpy(), full[["x1", "y1", "x2", "y2"]].to_numpy(), atol=0.5)


def test_photos_are_one_frame_real_videos_grouped_by_person(tmp_path):
    from skimage import data

    folder = tmp_path / "photos"
    folder.mkdir()
    for name, image in (("007_03.jpg", data.astronaut()), ("007_08.jpg", data.astronaut()[:, ::-1]), ("009_03.png", data.astronaut())):
        cv2.imwrite(str(folder / name), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    tasks = photo_tasks(folder)
    assert [(t.video, t.original, t.label, t.photo) for t in tasks] == [
        ("007_03.jpg", "007", "REAL", True), ("007_08.jpg", "007", "REAL", True), ("009_03.png", "009", "REAL", True)
    ]  # fmt: skip
    frames = read_photo(folder / "007_03.jpg", long_side=400, pad=0.1)
    assert frames.frames.shape == (1, 480, 480, 3) and frames.indices.tolist() == [0]
    faces, table = extract(tasks, tmp_path / "out", SETTINGS, workers=0, progress=False)
    assert (table["status"] == "ok").all() and (faces["frame"] == 0).all() and len(faces) >= 3

    other = tmp_path / "more_photos"  # a second folder with a name the first one has too, as one source
    other.mkdir()
    shutil.copy(folder / "007_03.jpg", other / "007_03.jpg")
    faces, table = extract_folders([folder, other], tmp_path / "out", SETTINGS, photos=True, workers=0, progress=False, source="studio")
    assert sorted(table["video"]) == ["more_photos_007_03.jpg", "photos_007_03.jpg", "photos_007_08.jpg", "photos_009_03.png"]
    assert set(faces["folder"]) == set(table["folder"]) == {"studio"} and set(faces["video"]) <= set(table["video"])
    assert pd.read_parquet(tmp_path / "out" / "videos.parquet").equals(table)

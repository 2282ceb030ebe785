"""`dfd extract --ray local`: the same crops and the same tables as the single-process extraction."""

from __future__ import annotations

import pandas as pd
import pytest
from dfdc_folder import make_dfdc_folder

from dfd_kit.training.dispatch import extract_folders
from dfd_kit.training.extract import ExtractSettings

pytest.importorskip("ray")

SETTINGS = ExtractSettings(image_size=96, margin=0.3, frames=4)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return make_dfdc_folder(tmp_path_factory.mktemp("dfdc") / "dfdc_part_1", n_real=2, fakes_per_real=2, frames=8)


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.sort_values(keys).reset_index(drop=True)


@pytest.mark.slow
def test_ray_local_matches_single_process(videos, tmp_path):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    faces_a, videos_a = extract_folders([videos], local, SETTINGS, workers=0, progress=False)
    faces_b, videos_b = extract_folders([videos], on_ray, SETTINGS, progress=False, ray="local")
    pd.testing.assert_frame_equal(_sorted(faces_a, ["video", "frame", "face"]), _sorted(faces_b, ["video", "frame", "face"]))
    pd.testing.assert_frame_equal(_sorted(videos_a, ["video"]), _sorted(videos_b, ["video"]))
    assert (videos_b["status"] == "ok").sum() >= 6 and (videos_b["status"] == "failed").any()
    for rel in faces_a["path"]:
        assert (local / rel).read_bytes() == (on_ray / rel).read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(on_ray / "faces.parquet"), faces_b)

    (on_ray / "parts" / videos.name / "real0.mp4.json").unlink()  # resumable: only the missing video is redone
    faces_c, _ = extract_folders([videos], on_ray, SETTINGS, progress=False, ray="local")
    pd.testing.assert_frame_equal(_sorted(faces_c, ["video", "frame", "face"]), _sorted(faces_b, ["video", "frame", "face"]))

"""The train/validation split keeps every fake with its original, and is seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dfd_kit.training.split import group_of, split_file, split_table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """A faces table shaped like DFDC: 30 originals, 0-5 fakes each, 3 faces per video."""
    rng = np.random.default_rng(0)
    rows = []
    for r in range(30):
        videos = [(f"real{r}.mp4", "REAL", None)] + [(f"fake{r}_{k}.mp4", "FAKE", f"real{r}.mp4") for k in range(rng.integers(0, 6))]
        for video, label, original in videos:
            rows += [{"video": video, "folder": "f", "face": i, "label": label, "original": original} for i in range(3)]
    return pd.DataFrame(rows)


def test_group_is_the_original_or_the_video_itself(table):
    groups = group_of(table)
    assert (groups[table["label"] == "REAL"] == table.loc[table["label"] == "REAL", "video"]).all()
    assert (groups[table["label"] == "FAKE"] == table.loc[table["label"] == "FAKE", "original"]).all()


def test_no_group_crosses_the_split(table):
    out = split_table(table, val_fraction=0.25, seed=3)
    assert set(out["split"]) == {"train", "val"}
    assert (out.groupby("group")["split"].nunique() == 1).all()
    fakes = out[out["label"] == "FAKE"]
    real_split = out[out["label"] == "REAL"].drop_duplicates("video").set_index("video")["split"]
    assert (fakes["split"].to_numpy() == real_split.loc[fakes["original"]].to_numpy()).all()
    val_groups = out.loc[out["split"] == "val", "group"].nunique()
    assert 5 <= val_groups <= 10  # ~25 % of 30 groups


def test_split_is_seeded(table):
    a = split_table(table, seed=1)["split"]
    assert a.equals(split_table(table, seed=1)["split"])
    assert not a.equals(split_table(table, seed=2)["split"])


def test_split_file_writes_the_columns_back(table, tmp_path):
    path = tmp_path / "faces.parquet"
    table.to_parquet(path, index=False)
    split_file(path, 0.2, 0)
    back = pd.read_parquet(path)
    assert {"group", "split"} <= set(back.columns) and len(back) == len(table)
    assert not list(tmp_path.glob("*.partial"))


def test_bad_fraction_is_refused(table):
    with pytest.raises(ValueError):
        split_table(table, val_fraction=1.0)

"""``python -m bench.evalsets OUT``: lay out the evaluation sets that ``weights/README.md`` reports.

From the data of ``../shared`` (research data: it stays outside the repository, the wheel and the bundle):

- ``OUT/dfdc_heldout``: the 1,727 DFDC crops of ``../shared/dfdc_faces/exclude.txt`` (the 309 originals
  and every fake of them, which ``materialise.sh`` leaves out), with ``labels.csv`` and ``metadata.json``,
  cut from the crop repository's git directory (``--dfdc-git``, a ``fetch`` of i-Shreyansh/DeepFake-Detection);
- ``OUT/ffpp_test``: the 607 FF++ ``image/test`` crops (ids 000-099) of a materialised ``--ffpp`` folder;
- ``OUT/tv_val``: links to the 53 validation talking-head videos (the ``val`` rows of ``--tv-table``, the
  faces table of ``dfd extract ../shared/train_videos`` split with ``dfd split --seed 5``), with their metadata.

Score them with ``dfd score-crops`` (``--face-box ffpp`` for FF++) or ``dfd predict``, then ``dfd evaluate``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pandas as pd

from bench.__main__ import SHARED_CLIPS
from dfd_kit.metadata import read_metadata

SHARED = SHARED_CLIPS.parent
DFDC_COMMIT = "39728535acf043fba39623885f91319db521bf23"  # the commit ../shared/dfdc_faces/materialise.sh pins


def _metadata(rows: pd.DataFrame) -> dict:
    return {r.video: {"label": r.label, "split": "test", "original": r.original or None} for r in rows.itertuples()}


def dfdc_heldout(git_dir: Path, metadata_csv: Path, out: Path) -> int:
    """The held-out DFDC crops, from the crop repository at :data:`DFDC_COMMIT`."""
    held = {line.strip() for line in open(SHARED / "dfdc_faces" / "exclude.txt") if line.strip() and not line.startswith("#")}
    meta = pd.read_csv(metadata_csv)
    original = meta["original"].where(meta["label"] == "FAKE", "").fillna("").astype(str)
    keep = meta["videoname"].str[:-4].isin(held) | original.str[:-4].isin(held)
    rows = pd.DataFrame({"file": "faces_224/" + meta["videoname"].str[:-4] + ".jpg", "video": meta["videoname"],
                         "label": meta["label"], "original": original})[keep]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(git_dir), "archive", DFDC_COMMIT, *rows["file"]], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    rows.to_csv(out / "labels.csv", index=False)
    (out / "metadata.json").write_text(json.dumps(_metadata(rows)))
    return len(rows)


def ffpp_test(ffpp: Path, out: Path) -> int:
    """The FF++ ``image/test`` crops of a materialised folder (``labels.csv`` beside ``image/``)."""
    labels = pd.read_csv(ffpp / "labels.csv")
    rows = labels[labels["file"].str.startswith("image/test/")].copy()
    rows["file"] = [str((ffpp / f).resolve()) for f in rows["file"]]
    rows["original"] = ""
    out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out / "labels.csv", index=False)
    (out / "metadata.json").write_text(json.dumps(_metadata(rows)))
    return len(rows)


def talking_head_validation(table: Path, out: Path) -> int:
    """Links to the validation talking-head videos of a split faces table."""
    faces = pd.read_parquet(table)
    videos = sorted(faces.loc[faces["split"] == "val", "video"].unique())
    metadata = read_metadata(SHARED / "train_videos" / "metadata.json")
    out.mkdir(parents=True, exist_ok=True)
    for video in videos:
        link = out / video
        if not link.exists():
            link.symlink_to(SHARED / "train_videos" / video)
    (out / "metadata.json").write_text(json.dumps({v: metadata[v] for v in videos}))
    return len(videos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--dfdc-git", type=Path, required=True, help="git directory of i-Shreyansh/DeepFake-Detection")
    parser.add_argument("--dfdc", type=Path, required=True, help="the folder materialise.sh laid out (its metadata.csv)")
    parser.add_argument("--ffpp", type=Path, required=True, help="the folder ../shared/ffpp_faces/materialise.sh laid out")
    parser.add_argument("--tv-table", type=Path, required=True, help="split faces table of ../shared/train_videos")
    args = parser.parse_args()
    print("dfdc_heldout", dfdc_heldout(args.dfdc_git, args.dfdc / "metadata.csv", args.out / "dfdc_heldout"))
    print("ffpp_test", ffpp_test(args.ffpp, args.out / "ffpp_test"))
    print("tv_val", talking_head_validation(args.tv_table, args.out / "tv_val"))


if __name__ == "__main__":
    main()

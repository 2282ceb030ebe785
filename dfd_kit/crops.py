"""A folder of ready-cut face crops with a ``labels.csv`` as a faces table for :mod:`dfd_kit.train`.

Some training data comes as crops, not videos: the DFDC face crops of ``../shared/dfdc_faces`` are
one square JPEG per video (``labels.csv``: ``file,video,label,original,group[,crop_px]``). They cannot
be re-cut, so the model config's framing is made to match them (:mod:`dfd_kit.registry`), and
:func:`import_crops` writes the same table columns :mod:`dfd_kit.extract` writes for videos, with
the whole image as the crop window and the face box where MTCNN finds it in such crops: the box
is given relative to the crop (``face_box``), and self-blended pseudo-fakes use it for their mask.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from .atomic import write_atomic
from .split import split_table

log = logging.getLogger(__name__)

__all__ = ["DFDC_FACE_BOX", "import_crops", "read_crop", "score_crops"]

#: Where facenet-pytorch's MTCNN puts the face in a DFDC crop, in crop sides: centre x, centre y,
#: width, height (medians over 284 of 300 crops padded with black; weights/README.md).
DFDC_FACE_BOX = (0.483, 0.456, 0.903, 1.098)


def read_crop(path: str | Path, size: int) -> np.ndarray:
    """A saved crop as uint8 ``[size, size, 3]`` RGB (resized with area averaging when it is another size)."""
    image = cv2.imread(str(path))
    if image is None:
        raise ValueError(f"cannot read the crop {path}")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image if image.shape[:2] == (size, size) else cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def import_crops(labels_csv: str | Path, out: str | Path, folder: str | None = None,
                 face_box: tuple[float, float, float, float] = DFDC_FACE_BOX, val_fraction: float = 0.05, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Write ``out`` (a faces table, split by group) for the crops listed in ``labels_csv``.

    Args:
        labels_csv: ``file,video,label,original,group`` rows, ``file`` relative to the CSV's folder.
        out: the Parquet table to write; its ``path`` column is absolute, so it can live anywhere.
        folder: the ``folder`` column (default: the CSV's folder name).
        face_box: the face box inside every crop, in crop sides (centre x, centre y, width, height).
        val_fraction: share of the groups held out for validation (``split`` column).
        seed: seed of the split.

    Returns:
        The table: one row per crop, with ``frame`` 0, ``face`` 0, the box in crop pixels and the
        whole crop as the window.
    """
    labels_csv = Path(labels_csv).resolve()
    labels = pd.read_csv(labels_csv, dtype={"original": str, "group": str}, keep_default_na=False)
    missing = {"file", "video", "label", "original"} - set(labels.columns)
    if missing:
        raise ValueError(f"{labels_csv} lacks columns {sorted(missing)}")
    first = cv2.imread(str(labels_csv.parent / labels["file"].iloc[0]))
    if first is None:
        raise ValueError(f"cannot read the crop {labels['file'].iloc[0]} listed in {labels_csv}")
    side = first.shape[0]
    cx, cy, w, h = (v * side for v in face_box)
    table = pd.DataFrame({
        "folder": folder or labels_csv.parent.name,
        "video": labels["video"],
        "label": labels["label"],
        "original": labels["original"],
        "frame": 0,
        "face": 0,
        "x1": cx - w / 2, "y1": cy - h / 2, "x2": cx + w / 2, "y2": cy + h / 2,
        "crop_x1": 0, "crop_y1": 0, "crop_x2": side, "crop_y2": side,
        "prob": 1.0,
        "path": [str(labels_csv.parent / f) for f in labels["file"]],
    })  # fmt: skip
    table = split_table(table, val_fraction, seed)
    out = Path(out)
    write_atomic(out, table.to_parquet(index=False))
    log.info("%d crops (%s) from %s in %s", len(table), table["label"].value_counts().to_dict(), labels_csv, out)
    return table


def score_crops(folder: str | Path, weights: str | Path | None = None, batch_size: int = 64, **classifier_kwargs) -> pd.DataFrame:
    """Score a crop folder (``labels.csv`` beside the crops) with the classifier: one frame per video.

    Each crop is resized (area) to the config's input size and scored as inference scores a face,
    with the weights' calibration and flip setting.

    Args:
        folder: the folder holding ``labels.csv`` (``file,video,label`` rows).
        weights: weights file or bundled name (``None``: the default).
        batch_size: crops per forward pass.
        **classifier_kwargs: passed to :class:`~dfd_kit.models.Classifier` (``backend`` ...).

    Returns:
        ``filename, label`` rows (``label`` = P(FAKE)), a submission for :func:`dfd_kit.evaluate.evaluate`.
    """
    from .models import Classifier
    from .weights import resolve_weights

    folder = Path(folder)
    labels = pd.read_csv(folder / "labels.csv")
    info = resolve_weights(weights)
    classifier = Classifier.for_weights(info, batch_size=batch_size, **classifier_kwargs)
    size, scores = info.config.input_size, []
    for start in range(0, len(labels), batch_size):
        crops = [read_crop(folder / f, size) for f in labels["file"].iloc[start : start + batch_size]]
        scores.append(classifier.predict(np.stack(crops)))
    return pd.DataFrame({"filename": labels["video"], "label": np.concatenate(scores)})

"""A folder of ready-cut face crops with a ``labels.csv`` as a faces table for :mod:`dfd_kit.training.train`.

Some training data comes as crops, not videos: the DFDC face crops of ``../shared/dfdc_faces`` are
one square JPEG per video (``labels.csv``: ``file,video,label,original,group[,crop_px]``), the
FaceForensics++ crops of ``../shared/ffpp_faces`` one or two per video (``...,group,method,ffpp_id``).
Each set has its own framing, measured as where facenet-pytorch's MTCNN puts the face in its crops
(:data:`FACE_BOXES`). :func:`import_crops` writes the same table columns :mod:`dfd_kit.training.extract`
writes for videos, the face box taken from that measurement (self-blended pseudo-fakes use it for
their mask). The model configs are framed like the DFDC crops (:mod:`dfd_kit.models.registry`), which are
used whole; a set framed otherwise is re-cut (:func:`reframe`) to the window inference would cut
around that face box, so that training sees what inference cuts.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..atomic import write_atomic
from .split import split_table

log = logging.getLogger(__name__)

__all__ = ["DFDC_FACE_BOX", "FFPP_FACE_BOX", "FACE_BOXES", "face_box_of", "reframe", "import_crops", "read_crop", "resize_crop", "score_crops"]

#: Where facenet-pytorch's MTCNN puts the face in a DFDC crop, in crop sides: centre x, centre y,
#: width, height (medians over 284 of 300 crops padded with black; weights/README.md).
DFDC_FACE_BOX = (0.483, 0.456, 0.903, 1.098)
#: The same for the FaceForensics++ crops (OpenCV Haar cascade boxes): medians over 299 of 300 crops,
#: padded with black. The face is as high as in a DFDC crop, but centred: 0.037 of a side lower.
FFPP_FACE_BOX = (0.490, 0.493, 0.839, 1.092)
FACE_BOXES = {"dfdc": DFDC_FACE_BOX, "ffpp": FFPP_FACE_BOX}


def face_box_of(spec: str | tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A face box by name (:data:`FACE_BOXES`), as ``"cx,cy,w,h"`` in crop sides, or as a tuple."""
    if not isinstance(spec, str):
        return tuple(float(v) for v in spec)
    if spec in FACE_BOXES:
        return FACE_BOXES[spec]
    values = tuple(float(v) for v in spec.split(","))
    if len(values) != 4:
        raise ValueError(f"a face box is one of {sorted(FACE_BOXES)} or 'cx,cy,w,h' in crop sides, got {spec!r}")
    return values


def _window(face_box, side: int, config) -> tuple[int, int, int, int]:
    """The square window inference cuts around ``face_box`` (crop sides) in a ``side``-pixel crop: x1, y1, x2, y2 pixels."""
    cx, cy, w, h = (v * side for v in face_box)
    win = max(w, h) * (1.0 + config.margin)
    x1, y1 = round(cx - win / 2), round(cy + config.shift * win - win / 2)
    return x1, y1, x1 + round(win), y1 + round(win)


def reframe(image: np.ndarray, face_box, config) -> np.ndarray:
    """Re-cut a face crop to the framing of ``config``, as :class:`~dfd_kit.inference.faces.FaceSampler` cuts around the same box.

    Args:
        image: uint8 ``[H, H, 3]`` RGB, a square crop.
        face_box: where the detector's box lies in such crops, in crop sides (:func:`face_box_of`).
        config: a :class:`~dfd_kit.models.registry.ModelConfig` (``margin``, ``shift``, ``input_size``).

    Returns:
        uint8 ``[S, S, 3]`` RGB, ``S = config.input_size``; parts of the window outside the crop
        repeat its edge pixels.
    """
    side = image.shape[0]
    x1, y1, x2, y2 = _window(face_box, side, config)
    pad = max(0, -x1, -y1, x2 - side, y2 - side)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    patch = image[y1 + pad : y2 + pad, x1 + pad : x2 + pad]
    s = config.input_size
    return cv2.resize(patch, (s, s), interpolation=cv2.INTER_AREA if patch.shape[0] > s else cv2.INTER_CUBIC)


def read_crop(path: str | Path, size: int | None = None) -> np.ndarray:
    """A saved crop as uint8 ``[H, W, 3]`` RGB, resized (area averaging) to ``[size, size, 3]`` when ``size`` is given."""
    image = cv2.imread(str(path))
    if image is None:
        raise ValueError(f"cannot read the crop {path}")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image if size is None else resize_crop(image, size)


def resize_crop(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 ``[H, W, 3]`` crop resized (area averaging) to ``[size, size, 3]`` (as it is when it already is)."""
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def import_crops(labels_csv: str | Path, out: str | Path, folder: str | None = None, face_box="dfdc",
                 val_fraction: float = 0.05, seed: int = 0, config=None) -> pd.DataFrame:  # fmt: skip
    """Write ``out`` (a faces table, split by group) for the crops listed in ``labels_csv``.

    Args:
        labels_csv: ``file,video,label,original[,group,...]`` rows, ``file`` relative to the CSV's
            folder. A ``group`` column, where it is filled, is the split's group (FF++: 20
            consecutive video ids, so a video's near-identical crops and its fakes stay on one side);
            else a fake goes with its ``original``. Further columns (``method`` ...) are kept.
        out: the Parquet table to write; its ``path`` column is absolute, so it can live anywhere.
        folder: the ``folder`` column, the data's source name (default: the CSV's folder name).
        face_box: where the detector's box lies in every crop (:func:`face_box_of`: ``"dfdc"``, ``"ffpp"``
            or ``"cx,cy,w,h"`` in crop sides).
        val_fraction: share of the groups held out for validation (``split`` column).
        seed: seed of the split.
        config: re-cut every crop to this model config's framing (:func:`reframe`), written as JPEG
            (quality 95) into the folder ``<out without .parquet>_crops``; ``None`` uses the crops whole.

    Returns:
        The table: one row per crop, with ``frame`` 0, ``face`` 0, the box in crop pixels and the
        whole crop as the window.
    """
    from ..models.registry import get_config

    labels_csv = Path(labels_csv).resolve()
    labels = pd.read_csv(labels_csv, dtype={"original": str, "group": str}, keep_default_na=False)
    missing = {"file", "video", "label", "original"} - set(labels.columns)
    if missing:
        raise ValueError(f"{labels_csv} lacks columns {sorted(missing)}")
    box = face_box_of(face_box)
    paths = [labels_csv.parent / f for f in labels["file"]]
    first = cv2.imread(str(paths[0]))
    if first is None:
        raise ValueError(f"cannot read the crop {labels['file'].iloc[0]} listed in {labels_csv}")
    side = first.shape[0]
    out = Path(out)
    if config is not None:
        cfg = get_config(config)
        paths = _write_reframed(paths, out.parent / f"{out.stem}_crops", box, cfg)
        x1, y1, x2, y2 = _window(box, side, cfg)
        win = x2 - x1  # the face box in the re-cut crop, in its sides
        box = ((box[0] * side - x1) / win, (box[1] * side - y1) / win, box[2] * side / win, box[3] * side / win)
        side = cfg.input_size
    cx, cy, w, h = (v * side for v in box)
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
        "path": [str(p) for p in paths],
    })  # fmt: skip
    extra = [c for c in labels.columns if c not in {"file", "group", *table.columns}]
    table = pd.concat([table, labels[extra]], axis=1)
    groups = labels["group"] if "group" in labels and (labels["group"] != "").all() else None
    table = split_table(table, val_fraction, seed, groups=groups)
    write_atomic(out, table.to_parquet(index=False))
    log.info("%d crops (%s) from %s in %s", len(table), table["label"].value_counts().to_dict(), labels_csv, out)
    return table


def _write_reframed(paths: list[Path], folder: Path, face_box, config) -> list[Path]:
    """Re-cut every crop (:func:`reframe`) into ``folder`` as JPEG quality 95, numbered in ``paths`` order."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, path in enumerate(paths):
        target = folder / f"{i:06d}_{path.stem}.jpg"
        rgb = reframe(read_crop(path), face_box, config)
        cv2.imwrite(str(target), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        written.append(target)
    return written


def score_crops(folder: str | Path, weights: str | Path | None = None, batch_size: int = 64, face_box=None, **classifier_kwargs) -> pd.DataFrame:
    """Score a crop folder (``labels.csv`` beside the crops) with the classifier: one frame per video.

    Each crop is resized (area) to the config's input size, or with ``face_box`` re-cut to the
    config's framing (:func:`reframe`), and scored as inference scores a face, with the weights'
    calibration and flip setting. With several weights (an ensemble), every member gets the crop
    at its own size (and framing, with ``face_box``) and the scores combine as the manifest says.

    Args:
        folder: the folder holding ``labels.csv`` (``file,video,label`` rows).
        weights: weights file or bundled name, several as a list or joined by commas (``None``: the default).
        batch_size: crops per forward pass.
        face_box: where the detector's box lies in these crops (:func:`face_box_of`); ``None``: use them whole.
        **classifier_kwargs: passed to every :class:`~dfd_kit.models.classifier.Classifier` (``backend`` ...).

    Returns:
        ``filename, label`` rows (``label`` = P(FAKE)), a submission for :func:`dfd_kit.training.evaluate.evaluate`.
    """
    from ..models.ensemble import Ensemble
    from ..models.weights import ensemble_entry, resolve_members

    folder = Path(folder)
    labels = pd.read_csv(folder / "labels.csv")
    members = resolve_members(weights)
    ensemble = Ensemble.for_weights(members, ensemble_entry(members), batch_size=batch_size, **classifier_kwargs)
    box = None if face_box is None else face_box_of(face_box)

    def fit(image: np.ndarray, config) -> np.ndarray:
        return resize_crop(image, config.input_size) if box is None else reframe(image, box, config)

    scores = []
    for start in range(0, len(labels), batch_size):
        images = [read_crop(folder / f) for f in labels["file"].iloc[start : start + batch_size]]
        scores.append(ensemble.predict([np.stack([fit(image, m.config) for image in images]) for m in members]))
    return pd.DataFrame({"filename": labels["video"], "label": np.concatenate(scores)})

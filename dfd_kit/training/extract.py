"""Training data: face crops of every video of DFDC folders, cut exactly as inference cuts them.

For each video, :func:`extract_one` runs the inference stages unchanged, built by the same
:class:`~dfd_kit.inference.predict.FaceFinder` — :class:`~dfd_kit.inference.decode.Sampling` → decoder →
:class:`~dfd_kit.inference.faces.FaceSampler` — and writes each crop as a JPEG of one size (the model config's input size) plus one metadata row.
Still photos (a folder of face images, all REAL) go through the same path as one-frame videos
(:func:`read_photo`), so a model trained on them sees the crops inference will show it.

Layout of ``out_dir``::

    crops/<folder>/<video>/<frame:05d>_<face>.jpg   uint8 RGB, S x S, JPEG quality 95
    parts/<folder>/<video>.json                      one video's rows (the done-marker)
    faces.parquet                                    one row per face (:data:`~dfd_kit.training.tables.FACE_COLUMNS`)
    videos.parquet                                   one row per video, failures included

Resumable: every file is written to a ``.partial`` name and renamed into place, and a video's
``parts/*.json`` is written last, so a video counts as done only when all its crops are on disk; a
re-run skips done videos and redoes the rest. A video that fails (no face, undecodable) gets a part
with ``status`` and ``error`` and no face rows: recorded, never fatal. :mod:`dfd_kit.training.dispatch`
runs the videos and :func:`merge_parts` merges their parts into the two tables.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_atomic
from ..errors import DFDError, InputError
from ..inference.decode import Frames, Sampling
from ..inference.faces import square_box
from ..inference.predict import FaceFinder
from ..inference.submission import list_videos
from ..metadata import read_metadata
from ..models.registry import ModelConfig, get_config
from .tables import FACE_COLUMNS

log = logging.getLogger(__name__)

__all__ = [
    "ExtractSettings",
    "Task",
    "PHOTO_SUFFIXES",
    "read_photo",
    "folder_tasks",
    "photo_tasks",
    "extract_one",
    "merge_parts",
    "part_path",
]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class ExtractSettings:
    """How to sample frames and cut faces; the crop convention must match the model config's.

    Attributes:
        image_size: side of the saved crops in pixels (the model's input size).
        margin: relative crop margin (see :class:`~dfd_kit.inference.faces.FaceSampler`).
        shift: vertical shift of the crop's centre below the face box's centre, in crop sides.
        frames: frames sampled per video.
        policy: frame sampling policy (see :mod:`dfd_kit.inference.sampling`).
        detect_scale: downscale factor for face detection.
        photo_side: long side, in pixels, that still photos are resized to before detection.
        photo_pad: border added around photos (fraction of the long side, mirrored) so that the
            crop margin fits around faces that fill the photo.
        quality: JPEG quality of the saved crops.
    """

    image_size: int = 299
    margin: float = 0.3
    shift: float = 0.0
    frames: int = 17
    policy: str = "even"
    detect_scale: float = 0.5
    photo_side: int = 720
    photo_pad: float = 0.1
    quality: int = 95

    @classmethod
    def for_config(cls, config: str | ModelConfig, **settings) -> ExtractSettings:
        """Settings whose crops follow model ``config`` (input size, margin, shift)."""
        cfg = get_config(config)
        return cls(image_size=cfg.input_size, margin=cfg.margin, shift=cfg.shift, **settings)

    def finder(self, device: str = "cpu") -> FaceFinder:
        """The decoder and face sampler of inference (:class:`~dfd_kit.inference.predict.FaceFinder`), built
        with these settings' crop size, framing and detection scale."""
        return FaceFinder(device, self.image_size, self.margin, self.detect_scale, shift=self.shift)


@dataclass(frozen=True)
class Task:
    """One video (or photo) to extract.

    Attributes:
        path: the media file.
        folder: name of the folder it belongs to (the ``folder`` column, and a path component).
        label: ``"REAL"``, ``"FAKE"`` or ``None`` when the folder has no metadata for it.
        original: the REAL video a FAKE was made from (photos: the person's identity).
        photo: read as a still photo (:func:`read_photo`) instead of a video.
    """

    path: Path
    folder: str
    label: str | None
    original: str | None
    photo: bool = False

    @property
    def video(self) -> str:
        return self.path.name


def read_photo(path: str | Path, long_side: int, pad: float = 0.0) -> Frames:
    """A still image as a one-frame video: uint8 ``[1, H, W, 3]`` RGB, long side ``long_side`` px.

    The image is resized (area interpolation) so its long side is ``long_side``, so that a studio
    photo's face comes out about as large as a face in a video frame, then mirrored outwards by
    ``pad`` of the long side on every edge. Raises :class:`~dfd_kit.errors.DecodeError`.
    """
    import cv2

    from ..errors import DecodeError

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DecodeError(f"cannot read image {path}")
    h, w = bgr.shape[:2]
    s = long_side / max(h, w)
    rgb = cv2.cvtColor(cv2.resize(bgr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    border = int(round(pad * long_side))
    if border:
        rgb = cv2.copyMakeBorder(rgb, border, border, border, border, cv2.BORDER_REFLECT_101)
    return Frames(rgb[None], np.zeros(1, np.int64), 0.0, 1, "photo")


def _read_metadata(folder: Path) -> dict:
    path = folder / "metadata.json"
    if not path.is_file():
        log.warning("%s has no metadata.json: labels will be empty", folder)
        return {}
    return read_metadata(path)


def folder_tasks(folder: str | Path) -> list[Task]:
    """One :class:`Task` per video of a DFDC folder, labelled from its ``metadata.json``."""
    folder = Path(folder)
    meta = _read_metadata(folder)
    tasks = []
    for name in list_videos(folder):
        entry = meta.get(name, {})
        tasks.append(Task(folder / name, folder.name, entry.get("label"), entry.get("original")))
    return tasks


def photo_tasks(folder: str | Path) -> list[Task]:
    """One :class:`Task` per image of a folder of real face photos.

    Every photo is ``REAL``; its ``original`` is the person's identity, the file stem up to the
    first ``_`` (``001_03.jpg`` and ``001_08.jpg`` are one person), so a split by ``original``
    keeps all photos of a person on one side.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"photo folder not found: {folder}")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and not p.name.startswith("."))
    return [Task(p, folder.name, "REAL", p.stem.split("_")[0], photo=True) for p in photos]


def part_path(out_dir: Path, task: Task) -> Path:
    """Where ``task``'s part (its rows and done-marker) is written."""
    return out_dir / "parts" / task.folder / f"{task.video}.json"


def extract_one(task: Task, out_dir: Path, settings: ExtractSettings, finder: FaceFinder | None = None) -> dict:
    """Extract one video's faces; write its crops and its part; return the part.

    Args:
        task: the video.
        out_dir: the extraction folder.
        settings: sampling and crop settings.
        finder: the ready decoder and face sampler (built from ``settings`` when ``None``).

    Returns:
        ``{"video", "folder", "label", "original", "status", "error", "n_frames", "faces": [rows]}``
        with ``status`` ``"ok"`` or ``"failed"``; ``error`` says why a video failed.
    """
    import cv2

    finder = finder or settings.finder()
    part = {"video": task.video, "folder": task.folder, "label": task.label, "original": task.original}
    try:
        if task.photo:
            frames = read_photo(task.path, settings.photo_side, settings.photo_pad)
        else:
            frames = finder.decoder.read(task.path, Sampling(settings.frames, settings.policy))
        faces = finder.face_sampler(frames)
    except Exception as err:  # noqa: BLE001 - one bad video must never stop the run
        if not isinstance(err, DFDError):
            log.exception("unexpected error on %s", task.path)
        return _finish_part(out_dir, task, {**part, "status": "failed", "error": f"{type(err).__name__}: {err}", "n_frames": 0, "faces": []})
    crop_dir = out_dir / "crops" / task.folder / task.video
    crop_dir.mkdir(parents=True, exist_ok=True)
    height, width = frames.size
    per_frame: dict[int, int] = defaultdict(int)
    rows = []
    for crop, t, box, prob in zip(faces.crops, faces.frame_of, faces.boxes, faces.probs):
        frame = int(frames.indices[t])
        face = per_frame[frame]
        per_frame[frame] += 1
        rel = Path("crops") / task.folder / task.video / f"{frame:05d}_{face}.jpg"
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, settings.quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {rel}")
        write_atomic(out_dir / rel, jpeg.tobytes())
        window = square_box(box, settings.margin, height, width, settings.shift)
        rows.append(
            {
                "frame": frame,
                "face": face,
                **dict(zip(("x1", "y1", "x2", "y2"), (float(v) for v in box))),
                **dict(zip(("crop_x1", "crop_y1", "crop_x2", "crop_y2"), window)),
                "prob": float(prob),
                "path": rel.as_posix(),
            }
        )
    return _finish_part(out_dir, task, {**part, "status": "ok", "error": None, "n_frames": len(frames), "faces": rows})


def _finish_part(out_dir: Path, task: Task, part: dict) -> dict:
    path = part_path(out_dir, task)
    write_atomic(path, json.dumps(part).encode())
    return part


def merge_parts(out_dir: str | Path, folders: list[str] | None = None, source: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge the parts of ``folders`` (default: all) into ``faces.parquet`` and ``videos.parquet``.

    ``source`` names one source for all of them: the ``folder`` column becomes ``source`` (what
    ``dfd train --source-weights`` and per-source validation go by) and each ``video`` becomes
    ``<folder>_<video>``, so names stay unique (the parts and crops keep their own folders).

    Returns:
        ``faces`` with :data:`~dfd_kit.training.tables.FACE_COLUMNS` (``x1..y2`` float32 detector box and ``crop_*`` int square
        crop window, both in the frame's full-resolution pixels; ``path`` relative to ``out_dir``), and
        ``videos``: ``video, folder, label, original, status, error, n_frames, n_faces``.
    """
    out_dir = Path(out_dir)
    roots = [out_dir / "parts" / f for f in folders] if folders else [out_dir / "parts"]
    parts = [json.loads(p.read_text()) for root in roots for p in sorted(root.rglob("*.json"))]
    face_rows, video_rows = [], []
    for part in parts:
        faces = part.pop("faces")
        video_rows.append({**part, "n_faces": len(faces)})
        key = {k: part[k] for k in ("video", "folder", "label", "original")}
        face_rows.extend({**key, **row} for row in faces)
    faces_df = pd.DataFrame(face_rows, columns=FACE_COLUMNS).astype(
        {c: "float32" for c in ("x1", "y1", "x2", "y2", "prob")} | {c: "int64" for c in ("frame", "face", "crop_x1", "crop_y1", "crop_x2", "crop_y2")}
    )
    videos_df = pd.DataFrame(video_rows, columns=["video", "folder", "label", "original", "status", "error", "n_frames", "n_faces"])
    if source is not None:
        for table in (faces_df, videos_df):
            table["video"] = table["folder"] + "_" + table["video"]
            table["folder"] = source
    for name, table in (("faces.parquet", faces_df), ("videos.parquet", videos_df)):
        write_atomic(out_dir / name, table.to_parquet(index=False))
    log.info("extract: %d faces from %d videos (%d failed) in %s", len(faces_df), len(videos_df), int((videos_df["status"] != "ok").sum()), out_dir)
    return faces_df, videos_df

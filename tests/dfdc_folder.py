"""A small DFDC-format folder generated for the training-path tests (no data outside the packages).

Faces come from ``skimage.data.astronaut()``: REAL videos pan and zoom over the photo (or its mirror
image); each FAKE is its original with the face self-blended (:func:`dfd_kit.training.selfblend.self_blend`)
in every frame, so it names that original in ``metadata.json``, as DFDC fakes do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dfd_kit.demo import ASTRONAUT_FACE, pan_zoom, write_video
from dfd_kit.training.selfblend import self_blend

SIZE = (240, 320)


def blended_face(image: np.ndarray, seed: int) -> np.ndarray:
    """``image`` with its face region replaced by a self-blended copy: uint8 ``[H, W, 3]``."""
    x1, y1, x2, y2 = ASTRONAUT_FACE
    side = max(x2 - x1, y2 - y1) + 40
    left, top = (x1 + x2 - side) // 2, (y1 + y2 - side) // 2
    crop = image[top : top + side, left : left + side]
    box = np.array([x1 - left, y1 - top, x2 - left, y2 - top], np.float32)
    fake, _ = self_blend(crop, box, np.random.default_rng(seed))
    out = image.copy()
    out[top : top + side, left : left + side] = fake
    return out


def make_dfdc_folder(folder: Path, n_real: int = 3, fakes_per_real: int = 2, frames: int = 8, extras: bool = True) -> Path:
    """Write ``n_real`` REAL videos, ``fakes_per_real`` FAKEs of each, and ``metadata.json``.

    With ``extras``, a face-less video and a corrupt file are added (labelled REAL and FAKE) to show
    that failures are recorded, not fatal.
    """
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    base = data.astronaut()
    meta = {}
    for r in range(n_real):
        image = base[:, ::-1].copy() if r % 2 else base
        real = f"real{r}.mp4"
        zoom = 1.05 + 0.05 * r
        write_video(pan_zoom(image, frames, SIZE, zoom), folder / real)
        meta[real] = {"label": "REAL", "split": "train", "original": None}
        for f in range(fakes_per_real):
            fake = f"fake{r}_{f}.mp4"
            blended = blended_face(base, seed=10 * r + f)
            write_video(pan_zoom(blended[:, ::-1].copy() if r % 2 else blended, frames, SIZE, zoom), folder / fake)
            meta[fake] = {"label": "FAKE", "split": "train", "original": real}
    if extras:
        write_video(pan_zoom(data.coffee(), frames, SIZE), folder / "noface.mp4")
        meta["noface.mp4"] = {"label": "REAL", "split": "train", "original": None}
        (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(2048))
        meta["corrupt.mp4"] = {"label": "FAKE", "split": "train", "original": "real0.mp4"}
    (folder / "metadata.json").write_text(json.dumps(meta, indent=1))
    return folder

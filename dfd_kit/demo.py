"""A small DFDC-format demo folder made from images that ship inside scikit-image, then ``predict``.

Nothing is downloaded and nothing comes from outside the installed packages. The folder holds:

- ``real_astronaut.mp4`` (REAL): ``skimage.data.astronaut()`` with a slow pan and zoom;
- ``fake_astronaut.mp4`` (FAKE): the same clip with the face colour-shifted and blended back
  through a soft elliptical mask (a crude self-blend);
- ``no_face.mp4`` (REAL): ``skimage.data.coffee()``, no face: shows the no-face fallback;
- ``corrupt.mp4``: random bytes: shows the decode fallback;
- ``metadata.json`` and ``sample_submission.csv`` in the DFDC format.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

__all__ = ["ASTRONAUT_FACE", "make_demo", "write_video", "pan_zoom"]

ASTRONAUT_FACE = (165, 55, 300, 215)  # the face box in skimage.data.astronaut(): x1, y1, x2, y2 pixels


def write_video(
    frames, path: str | Path, fps: float = 15.0, codec: str = "libx264", crf: int = 20, preset: str = "veryfast"
) -> Path:
    """Encode uint8 ``[H, W, 3]`` RGB frames (an array ``[T, H, W, 3]`` or any iterable; even H and W)
    to an H.264 High yuv420p mp4 with PyAV. ``fps`` may be fractional (29.97 is stored as 30000/1001)."""
    from fractions import Fraction

    import av

    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset, "profile": "high"}
        for frame in itertools.chain([first], frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def pan_zoom(image: np.ndarray, n: int = 30, size: tuple[int, int] = (480, 640), zoom: float = 1.15) -> np.ndarray:
    """``n`` frames of ``size`` (H, W) that slowly zoom into ``image`` and pan across it: uint8 [n, H, W, 3]."""
    import cv2

    h, w = size
    src_h, src_w = image.shape[:2]
    base = max(h / src_h, w / src_w)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        s = base * (1.0 + (zoom - 1.0) * i / max(n - 1, 1))
        big = cv2.resize(image, (int(np.ceil(src_w * s)), int(np.ceil(src_h * s))), interpolation=cv2.INTER_LINEAR)
        dx = int((big.shape[1] - w) * i / max(n - 1, 1))
        dy = int((big.shape[0] - h) * 0.5 * i / max(n - 1, 1))
        out[i] = big[dy : dy + h, dx : dx + w]
    return out


def _fake_face(image: np.ndarray, box: tuple[int, int, int, int], seed: int = 0) -> np.ndarray:
    """Blend a colour- and scale-shifted copy of the face back in through a soft elliptical mask."""
    import cv2

    rng = np.random.default_rng(seed)
    x1, y1, x2, y2 = box
    src = image.astype(np.float32)
    src = src * rng.uniform(0.85, 1.15, 3) + rng.uniform(-12, 12, 3)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    warp = cv2.getAffineTransform(
        np.float32([[cx, cy], [cx + 10, cy], [cx, cy + 10]]),
        np.float32([[cx + 2, cy + 1], [cx + 12.4, cy + 1], [cx + 2, cy + 10.6]]),
    )
    src = cv2.warpAffine(src, warp, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT)
    mask = np.zeros(image.shape[:2], np.float32)
    cv2.ellipse(mask, (int(cx), int(cy)), (int((x2 - x1) * 0.42), int((y2 - y1) * 0.5)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), (x2 - x1) * 0.08)[..., None]
    return np.clip(src * mask + image * (1 - mask), 0, 255).astype(np.uint8)


def make_demo(folder: str | Path, frames_per_video: int = 30, seed: int = 0) -> Path:
    """Write the demo videos, ``metadata.json`` and ``sample_submission.csv`` into ``folder``."""
    from skimage import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    astronaut = data.astronaut()
    faked = _fake_face(astronaut, ASTRONAUT_FACE, seed)
    write_video(pan_zoom(astronaut, frames_per_video), folder / "real_astronaut.mp4")
    write_video(pan_zoom(faked, frames_per_video), folder / "fake_astronaut.mp4")
    write_video(pan_zoom(data.coffee(), frames_per_video), folder / "no_face.mp4")
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(seed).bytes(4096))
    metadata = {
        "real_astronaut.mp4": {"label": "REAL", "split": "demo", "original": None},
        "fake_astronaut.mp4": {"label": "FAKE", "split": "demo", "original": "real_astronaut.mp4"},
        "no_face.mp4": {"label": "REAL", "split": "demo", "original": None},
        "corrupt.mp4": {"label": "FAKE", "split": "demo", "original": "real_astronaut.mp4"},
    }
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=1))
    (folder / "sample_submission.csv").write_text("filename,label\n" + "".join(f"{n},0.5\n" for n in sorted(metadata)))
    return folder

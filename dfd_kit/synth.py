"""Synthetic video frames for tests and benchmarks: a real face that moves, and a readable frame index.

Every frame has its index written as a row of black/white squares (``BITS`` bits, big enough to
survive compression), so a check can tell that a decoder returned exactly the frames it was asked
for. The face is ``skimage.data.astronaut()``'s (it ships with scikit-image; nothing is downloaded),
pasted at a position that moves with the frame index.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["BITS", "astronaut_face", "stamp_index", "read_index", "paste", "synth_frames", "camera_frames"]

BITS = 10


@lru_cache(maxsize=1)
def astronaut_face() -> np.ndarray:
    """The astronaut's head and shoulders, uint8 [200, 170, 3] RGB."""
    from skimage import data

    return data.astronaut()[30:230, 150:320].copy()


def _cell(height: int, width: int) -> int:
    return max(8, min(height, width) // 24)


def stamp_index(frame: np.ndarray, index: int) -> None:
    """Write ``index`` in binary as squares along the top-left edge of ``frame`` (in place)."""
    c = _cell(*frame.shape[:2])
    for bit in range(BITS):
        frame[:c, bit * c : (bit + 1) * c] = 255 if (index >> bit) & 1 else 0


def read_index(frame: np.ndarray) -> int:
    """Read the index :func:`stamp_index` wrote (squares sampled at their centres)."""
    c = _cell(*frame.shape[:2])
    value = 0
    for bit in range(BITS):
        patch = frame[c // 4 : 3 * c // 4, bit * c + c // 4 : bit * c + 3 * c // 4]
        if patch.mean() > 127:
            value |= 1 << bit
    return value


def paste(frame: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Paste ``patch`` with its top-left corner at ``(x, y)``, clipped to the frame (in place)."""
    h, w = frame.shape[:2]
    ph, pw = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, w), min(y + ph, h)
    if x0 < x1 and y0 < y1:
        frame[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]


def synth_frames(
    n: int, height: int, width: int, face_scale: float = 1.0, faces: int = 1, face: bool = True, edge: bool = False, seed: int = 0
):
    """Yield ``n`` uint8 [H, W, 3] RGB frames: noisy gradient, moving face(s), the index stamp.

    ``edge=True`` puts the face across the left edge of the frame (a third of it outside).
    """
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 200 // max(width, 1)), (yy * 200 // max(height, 1)), np.full_like(xx, 90)], -1).astype(np.uint8)
    src = astronaut_face()
    fh = max(16, int(min(height, width) * 0.35 * face_scale))
    fw = int(fh * src.shape[1] / src.shape[0])
    head = cv2.resize(src, (fw, fh), interpolation=cv2.INTER_AREA)
    for i in range(n):
        frame = base.copy()
        frame = np.clip(frame.astype(np.int16) + rng.integers(-6, 7, frame.shape, dtype=np.int16), 0, 255).astype(np.uint8)
        if face:
            for k in range(faces):
                slot_w = width // faces
                t = i / max(n - 1, 1)
                x = int(k * slot_w + (slot_w - fw) * (0.2 + 0.6 * t)) if slot_w > fw else k * slot_w
                y = int((height - fh) * (0.4 + 0.2 * np.sin(2 * np.pi * t)))
                paste(frame, head, -fw // 3 if edge else x, y)
        stamp_index(frame, i)
        yield frame


def camera_frames(n: int, height: int, width: int, face_scale: float = 0.6, grain: float = 3.0, seed: int = 0):
    """Yield ``n`` uint8 [H, W, 3] RGB frames as hard to encode and decode as a DFDC clip: a detailed
    photograph (scikit-image's coffee) under a camera that keeps panning, film grain of ``grain``
    grey levels (standard deviation) that changes every frame, a moving face, the index stamp.

    Encoded as DFDC's clips were (x264 ``medium``, CRF 23), a 10 s 1080p clip is about 2.3 MB and
    takes 0.9 times as long to decode as the DFDC clip of ``../shared/clips`` (4 MB); one of
    :func:`synth_frames`' flat gradient, 0.3 MB and 0.4 times (measured on 2 AMD EPYC cores).
    """
    import cv2
    from skimage import data

    rng = np.random.default_rng(seed)
    photo = data.coffee()
    zoom = 1.4 * max(height / photo.shape[0], width / photo.shape[1])
    scene = cv2.resize(photo, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    src = astronaut_face()
    fh = max(16, int(min(height, width) * 0.35 * face_scale))
    fw = int(fh * src.shape[1] / src.shape[0])
    head = cv2.resize(src, (fw, fh), interpolation=cv2.INTER_AREA)
    for i in range(n):
        t = i / max(n - 1, 1)
        x0 = (scene.shape[1] - width) * (0.5 + 0.45 * np.sin(2 * np.pi * t))  # sub-pixel camera motion
        y0 = (scene.shape[0] - height) * (0.5 + 0.45 * np.cos(1.4 * np.pi * t))
        frame = cv2.warpAffine(scene, np.float32([[1, 0, -x0], [0, 1, -y0]]), (width, height), flags=cv2.INTER_LINEAR)
        if grain:
            noise = rng.normal(0.0, grain, (height, width, 1))
            frame = np.clip(frame + noise, 0, 255).astype(np.uint8)
        paste(frame, head, int((width - fw) * (0.2 + 0.6 * t)), int((height - fh) * (0.4 + 0.2 * np.sin(2 * np.pi * t))))
        stamp_index(frame, i)
        yield frame

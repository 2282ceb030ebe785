"""Test media made on the fly: frames from :mod:`dfd_kit.synth`, encoded by the ffmpeg binary that
``imageio-ffmpeg`` ships (any codec, pixel format or container option a case needs)."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

from dfd_kit.synth import astronaut_face, read_index, synth_frames

__all__ = ["astronaut_face", "encode", "ffmpeg", "make_clip", "read_index", "synth_frames"]


@lru_cache(maxsize=1)
def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def encode(
    path: Path,
    frames,
    height: int,
    width: int,
    fps: float = 29.97,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    extra: tuple[str, ...] = (),
) -> Path:
    """Pipe raw RGB frames into ffmpeg and encode them (``extra`` args go before the output path)."""
    cmd = [
        ffmpeg(), "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-c:v", codec, "-pix_fmt", pix_fmt, *extra, str(path),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for frame in frames:
        proc.stdin.write(np.ascontiguousarray(frame).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(cmd)}")
    return path


def make_clip(
    path: Path,
    n: int = 30,
    height: int = 360,
    width: int = 640,
    fps: float = 29.97,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    extra: tuple[str, ...] = ("-preset", "ultrafast", "-crf", "23"),
    **synth,
) -> Path:
    """A clip of ``n`` synthetic frames (see :func:`synth_frames`) encoded with ``codec``."""
    return encode(path, synth_frames(n, height, width, **synth), height, width, fps, codec, pix_fmt, extra)

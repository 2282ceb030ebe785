"""Decode exactly the sampled frames of a video as HWC uint8 RGB.

Three decoders share one interface, ``read(path, select) -> Frames``:

- :class:`OpenCVDecoder` (CPU): walks the stream once with ``grab()`` and converts to RGB only the
  wanted frames with ``retrieve()``; no seeking, which is slow and inexact on H.264.
- :class:`PyAVDecoder` (CPU): FFmpeg through PyAV, threaded decoding; counts frames by demuxing when
  the container does not say; turns frames upright by the display matrix, as OpenCV does. Used as
  the fallback when OpenCV cannot open or read a file (AV1, for one).
- :class:`DALIDecoder` (GPU): NVIDIA DALI ``fn.decoders.video`` on the ``mixed`` backend (NVDEC),
  fed the file's bytes and the frame indices; one pipeline built once, run once per video.

:func:`make_decoder` picks them from ``device`` and chains a fallback with
:class:`FallbackDecoder`, which logs every fallback it takes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence, Union

import numpy as np

from ..errors import DecodeError
from .sampling import sample_indices

log = logging.getLogger(__name__)

__all__ = [
    "Frames",
    "Sampling",
    "VideoDecoder",
    "OpenCVDecoder",
    "PyAVDecoder",
    "DALIDecoder",
    "FallbackDecoder",
    "make_decoder",
]


@dataclass(frozen=True)
class Sampling:
    """How many frames to take and how to spread them; called with the clip's frame count."""

    n: int = 17
    policy: str = "even"

    def __call__(self, n_total: int) -> np.ndarray:
        return sample_indices(n_total, self.n, self.policy)


Select = Union[Sampling, Callable[[int], np.ndarray], Sequence[int], np.ndarray]


def _resolve(select: Select, n_total: int) -> np.ndarray:
    """Turn a selection (a policy, or explicit indices) into sorted unique indices in ``[0, n_total)``."""
    idx = np.asarray(select(n_total) if callable(select) else select, dtype=np.int64)
    return np.unique(idx[(idx >= 0) & (idx < n_total)])


@dataclass(frozen=True)
class Frames:
    """Decoded frames of one video.

    Attributes:
        frames: uint8 array ``[T, H, W, 3]``, RGB.
        indices: int64 array ``[T]``, the 0-based frame index of each decoded frame.
        fps: frames per second the container reports (0.0 when unknown).
        n_total: number of frames in the clip, as counted by the decoder.
        decoder: name of the decoder that produced them.
    """

    frames: np.ndarray
    indices: np.ndarray
    fps: float
    n_total: int
    decoder: str

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])


class VideoDecoder(Protocol):
    name: str

    def read(self, path: str | Path, select: Select) -> Frames:
        """Decode the frames ``select`` picks from the video at ``path``; raise :class:`DecodeError`."""


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise DecodeError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise DecodeError(f"empty file (0 bytes): {path}")


def _finish(path: Path, out: list[np.ndarray], got: list[int], fps: float, n_total: int, name: str) -> Frames:
    if not out:
        raise DecodeError(f"{name}: no frame could be decoded from {path.name}")
    return Frames(np.stack(out), np.asarray(got, dtype=np.int64), float(fps), int(n_total), name)


class OpenCVDecoder:
    """CPU decoder: OpenCV's FFmpeg backend, one sequential pass, ``grab()`` + ``retrieve()``.

    Args:
        threads: FFmpeg decoding threads per video (0 lets FFmpeg choose).
    """

    name = "opencv"

    def __init__(self, threads: int = 0) -> None:
        # failures are reported as DecodeError with a reason; silence OpenCV's and FFmpeg's own prints
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

        self._cv2 = cv2
        self.threads = threads

    def read(self, path: str | Path, select: Select) -> Frames:
        cv2 = self._cv2
        path = Path(path)
        _check_file(path)
        params = [cv2.CAP_PROP_N_THREADS, self.threads] if self.threads else []
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
        try:
            if not cap.isOpened():
                raise DecodeError(f"opencv: cannot open {path.name}")
            n_total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            if n_total <= 0:
                raise DecodeError(f"opencv: {path.name} reports no frame count")
            indices = _resolve(select, n_total)
            wanted = set(indices.tolist())
            out, got = [], []
            for i in range(int(indices[-1]) + 1 if len(indices) else 0):
                if not cap.grab():
                    log.debug("opencv: %s ended at frame %d of %d", path.name, i, n_total)
                    break
                if i in wanted:
                    ok, bgr = cap.retrieve()
                    if ok and bgr is not None:
                        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                        got.append(i)
            return _finish(path, out, got, fps, n_total, self.name)
        finally:
            cap.release()


class PyAVDecoder:
    """CPU decoder: FFmpeg through PyAV with frame-threaded decoding; handles what OpenCV rejects.

    When the container gives no frame count, packets are counted by demuxing (no decoding).
    """

    name = "pyav"

    def read(self, path: str | Path, select: Select) -> Frames:
        import av

        path = Path(path)
        _check_file(path)
        try:
            with av.open(str(path)) as container:
                stream, n_total, fps = _video_stream(container, path)
                if not stream.frames:  # counted by demuxing: rewind
                    container.seek(0)
                indices = _resolve(select, n_total)
                if not len(indices):
                    raise DecodeError(f"pyav: {path.name} has no frames")
                wanted, last = set(indices.tolist()), int(indices[-1])
                stream.thread_type = "AUTO"
                out, got = [], []
                for i, frame in enumerate(container.decode(stream)):
                    if i in wanted:
                        out.append(_upright(frame))
                        got.append(i)
                    if i >= last:
                        break
        except (av.error.FFmpegError, OSError, ValueError) as err:
            raise DecodeError(f"pyav: cannot decode {path.name}: {err}") from err
        return _finish(path, out, got, fps, n_total, self.name)


def _upright(frame) -> np.ndarray:
    """RGB pixels of a PyAV frame turned the way the display matrix says (as OpenCV does)."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = int(getattr(frame, "rotation", 0) or 0) // 90
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns % 4 else rgb


class DALIDecoder:
    """GPU decoder: DALI ``fn.decoders.video`` on the ``mixed`` backend (NVDEC), frames by index.

    The file's bytes and the wanted indices go in through ``external_source``; DALI decodes only
    what it needs to reach them. The frame count comes from the container (PyAV, no decoding).
    Decoding from memory by index does not need a constant frame rate.

    Args:
        device_id: CUDA device to decode on.
        num_threads: DALI CPU threads (demuxing).
    """

    name = "dali"

    def __init__(self, device_id: int = 0, num_threads: int = 2) -> None:
        try:
            from nvidia.dali import fn, pipeline_def, types
        except ImportError as err:
            raise RuntimeError("DALIDecoder needs nvidia-dali (pip install 'dfd_kit[gpu]')") from err

        @pipeline_def(batch_size=1, num_threads=num_threads, device_id=device_id, prefetch_queue_depth=1)
        def video_pipeline():
            encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
            frames = fn.external_source(name="frames", dtype=types.INT32, ndim=1)
            return fn.decoders.video(encoded, device="mixed", frames=frames)

        self._pipe = video_pipeline()
        self._pipe.build()

    def read(self, path: str | Path, select: Select) -> Frames:
        path = Path(path)
        _check_file(path)
        n_total, fps = _container_count(path)
        indices = _resolve(select, n_total)
        if not len(indices):
            raise DecodeError(f"dali: {path.name} has no frames")
        self._pipe.feed_input("encoded", [np.fromfile(path, dtype=np.uint8)])
        self._pipe.feed_input("frames", [indices.astype(np.int32)])
        try:
            (video,) = self._pipe.run()
        except RuntimeError as err:
            raise DecodeError(f"dali: cannot decode {path.name}: {err}") from err
        frames = np.asarray(video.as_cpu().at(0))
        return Frames(frames, indices[: len(frames)], fps, n_total, self.name)


def _video_stream(container, path: Path):
    """The first video stream of an open PyAV container, its frame count and fps.

    The count comes from the header, or from demuxing (no decoding) when the header has none.
    """
    if not container.streams.video:
        raise DecodeError(f"pyav: {path.name} has no video stream")
    stream = container.streams.video[0]
    n_total = int(stream.frames or 0)
    if n_total <= 0:
        n_total = sum(1 for p in container.demux(stream) if p.size)
    return stream, n_total, float(stream.average_rate or 0.0)


def _container_count(path: Path) -> tuple[int, float]:
    """Frame count and fps from the container (PyAV, no decoding)."""
    import av

    try:
        with av.open(str(path)) as container:
            _, n_total, fps = _video_stream(container, path)
            return n_total, fps
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise DecodeError(f"cannot open {path.name}: {err}") from err


class FallbackDecoder:
    """Try ``primary``; on :class:`DecodeError` log why and try ``fallback``."""

    def __init__(self, primary: VideoDecoder, fallback: VideoDecoder) -> None:
        self.primary, self.fallback = primary, fallback
        self.name = f"{primary.name}>{fallback.name}"

    def read(self, path: str | Path, select: Select) -> Frames:
        try:
            return self.primary.read(path, select)
        except DecodeError as err:
            log.warning("decode fallback to %s for %s: %s", self.fallback.name, Path(path).name, err)
            return self.fallback.read(path, select)


def make_decoder(device: str = "cpu", backend: str | None = None) -> VideoDecoder:
    """Build the decoder for a resolved ``device`` (``"cpu"`` or ``"cuda"``).

    Args:
        device: ``"cuda"`` uses DALI (falling back to OpenCV, then PyAV, per file); ``"cpu"`` uses
            OpenCV with a PyAV fallback.
        backend: force one decoder with no fallback: ``"opencv"``, ``"pyav"`` or ``"dali"``.
    """
    if backend is not None:
        return {"opencv": OpenCVDecoder, "pyav": PyAVDecoder, "dali": DALIDecoder}[backend]()
    cpu = FallbackDecoder(OpenCVDecoder(), PyAVDecoder())
    if device == "cuda":
        return FallbackDecoder(DALIDecoder(), cpu)
    return cpu

"""Decode the sampled frames of a video as HWC uint8 RGB.

Three decoders share one interface, ``read(path, select) -> Frames``:

- :class:`PyAVDecoder` (CPU, the default): FFmpeg through PyAV. It demuxes the whole stream first
  (packets only, no decoding: milliseconds) and reads from each H.264 packet whether other frames are
  predicted from it; then it decodes only what the wanted frames need: the reference frames since
  the IDR frame before each wanted one, and the wanted ones. On DFDC clips that is about half the
  frames of a full pass, with pixels identical to it. Frame-threaded, turns frames upright by the
  display matrix as OpenCV does, and can also snap the samples to the nearest reference frame or
  keyframe (``mode``; see :data:`DECODE_MODES`).
- :class:`OpenCVDecoder` (CPU): walks the stream once with ``grab()`` and converts to RGB only the
  wanted frames with ``retrieve()``; every frame up to the last wanted one is decoded. The fallback
  when PyAV cannot read a file.
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
    "DECODE_MODES",
    "Frames",
    "PacketIndex",
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
        decoded: frames the decoder decoded to produce these, wanted or not (0: not counted).
    """

    frames: np.ndarray
    indices: np.ndarray
    fps: float
    n_total: int
    decoder: str
    decoded: int = 0

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


def _finish(path: Path, out: list[np.ndarray], got: list[int], fps: float, n_total: int, name: str, decoded: int) -> Frames:
    if not out:
        raise DecodeError(f"{name}: no frame could be decoded from {path.name}")
    return Frames(np.stack(out), np.asarray(got, dtype=np.int64), float(fps), int(n_total), name, int(decoded))


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
            out, got, grabbed = [], [], 0
            for i in range(int(indices[-1]) + 1 if len(indices) else 0):
                if not cap.grab():
                    log.debug("opencv: %s ended at frame %d of %d", path.name, i, n_total)
                    break
                grabbed += 1
                if i in wanted:
                    ok, bgr = cap.retrieve()
                    if ok and bgr is not None:
                        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                        got.append(i)
            return _finish(path, out, got, fps, n_total, self.name, grabbed)
        finally:
            cap.release()


#: what :class:`PyAVDecoder` returns for the sampled indices (``mode``)
DECODE_MODES = ("exact", "reference", "keyframes")
#: container formats (FFmpeg demuxer names) whose packets carry presentation times
PRESENTATION_TIMES = {"mov", "mp4", "matroska", "webm", "mpegts"}


@dataclass(frozen=True)
class PacketIndex:
    """What decoding each frame of a video stream depends on, read from its packets (no decoding).

    Arrays are in decode order, one entry per packet (one frame each).

    Attributes:
        display: int64 ``[P]``, the frame's index in presentation order (its rank by pts among the
            frames the container shows; -1 for a packet the container marks as discarded).
        reference: bool ``[P]``, other frames may be predicted from it. H.264: ``nal_ref_idc > 0``
            in its slice header; every frame of other codecs.
        restart: bool ``[P]``, decoding may start here and give the same pixels as from the start:
            H.264 IDR frames (no later frame refers to one before them), and the first packet.
        key: bool ``[P]``, decodes on its own: H.264 IDR frames; other codecs' keyframes.
    """

    display: np.ndarray
    reference: np.ndarray
    restart: np.ndarray
    key: np.ndarray

    @classmethod
    def of(cls, stream, packets: list) -> "PacketIndex | None":
        """The index of ``packets`` (a PyAV stream's, in decode order); ``None`` when their pts
        cannot order the frames: a container that stores no presentation times (AVI, raw streams:
        their pts follow decode order), or a timestamp missing or repeated."""
        if not PRESENTATION_TIMES & set(stream.container.format.name.split(",")):
            return None
        n = len(packets)
        shown = np.array([not p.is_discard for p in packets], dtype=bool)
        pts = [p.pts for p in packets]
        if any(t is None for t in pts):
            return None
        pts = np.asarray(pts, dtype=np.int64)
        if len(np.unique(pts[shown])) != int(shown.sum()):
            return None
        display = np.full(n, -1, np.int64)
        shown_at = np.flatnonzero(shown)
        display[shown_at[np.argsort(pts[shown], kind="stable")]] = np.arange(len(shown_at))
        extradata = stream.codec_context.extradata or b""
        if stream.codec_context.name == "h264" and len(extradata) > 4 and extradata[0] == 1:  # avcC: length-prefixed NAL units
            length_size = (extradata[4] & 3) + 1
            flags = np.array([_h264_picture(memoryview(p), length_size) for p in packets], dtype=bool).reshape(n, 2)
            reference, key = flags[:, 0], flags[:, 1]
            restart = key.copy()
        else:
            reference = np.ones(n, bool)
            key = np.array([p.is_keyframe for p in packets], dtype=bool)
            restart = np.zeros(n, bool)
        if n:
            restart[0] = True
        return cls(display, reference, restart, key)

    def snap(self, indices: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Each of ``indices`` (display order) moved to the nearest display index of a packet where
        ``candidates`` (bool ``[P]``) is true, the earlier one on a tie; sorted, unique."""
        pool = np.sort(self.display[candidates & (self.display >= 0)])
        if not len(pool) or not len(indices):
            return np.zeros(0, np.int64)
        j = np.searchsorted(pool, indices)  # the first candidate at or after each index
        before, after = pool[np.maximum(j - 1, 0)], pool[np.minimum(j, len(pool) - 1)]
        return np.unique(np.where(np.abs(indices - before) <= np.abs(after - indices), before, after))

    def needed(self, targets: np.ndarray, standalone: bool = False) -> np.ndarray:
        """Bool ``[P]``: the packets to decode for the frames at display indices ``targets``.

        For each target: the reference frames from the last restart point at or before it (in
        decode order) up to it, and the target itself; with ``standalone`` (keyframe targets),
        the target alone.
        """
        position = np.full(len(self.display), -1, np.int64)
        shown = self.display >= 0
        position[self.display[shown]] = np.flatnonzero(shown)
        send = np.zeros(len(self.display), bool)
        starts = np.flatnonzero(self.restart)
        for t in targets:
            p = int(position[t]) if 0 <= t < len(position) else -1
            if p < 0:
                continue
            if not standalone:
                r = int(starts[np.searchsorted(starts, p, side="right") - 1])
                send[r : p + 1] |= self.reference[r : p + 1]
            send[p] = True
        return send


def _h264_picture(data: memoryview, length_size: int) -> tuple[bool, bool]:
    """``(reference, idr)`` of one H.264 access unit in avcC form (NAL units prefixed by their
    ``length_size``-byte length), read from the header byte of its first slice. A packet without a
    readable slice counts as a reference frame, so that it is decoded."""
    offset, end = 0, len(data)
    while offset + length_size < end:
        size = int.from_bytes(data[offset : offset + length_size], "big")
        header = data[offset + length_size]
        kind = header & 0x1F
        if kind in (1, 5):  # coded slice of a non-IDR / an IDR picture
            return bool(header & 0x60), kind == 5
        offset += length_size + size
    return True, False


class PyAVDecoder:
    """CPU decoder: FFmpeg through PyAV, decoding only the frames the wanted ones depend on.

    The stream is demuxed into memory first (the compressed packets: a few MB for a DFDC clip) and
    indexed (:class:`PacketIndex`); then only the needed packets go to the decoder. H.264 frames that
    no other frame is predicted from are skipped unless wanted (FFmpeg's ``skip_frame`` at the
    granularity of single frames), and so are the reference frames between the last wanted frame of
    one IDR period and the next IDR frame. Other codecs decode every frame up to the last wanted one.
    A stream whose pts cannot order its frames is decoded in full, counting frames as they come out.
    Threads: frame and slice threading (``thread_type="AUTO"``).

    Args:
        threads: FFmpeg decoding threads (0: FFmpeg's choice, one per core).
        mode: which frames answer the sampled indices:

            - ``"exact"``: exactly them (the default; the same frames as a full decode).
            - ``"reference"``: for each, the nearest reference frame (H.264 I, P or reference B), so
              that no non-reference frame is decoded at all.
            - ``"keyframes"``: for each, the nearest keyframe, each decoded on its own: a handful of
              frames per clip (DFDC clips have 2 in 300) at a few percent of the decoding time.

            ``Frames.indices`` says which frames were returned.
    """

    name = "pyav"

    def __init__(self, threads: int = 0, mode: str = "exact") -> None:
        if mode not in DECODE_MODES:
            raise ValueError(f"mode must be one of {DECODE_MODES}, got {mode!r}")
        self.threads, self.mode = threads, mode

    def read(self, path: str | Path, select: Select) -> Frames:
        import av

        path = Path(path)
        _check_file(path)
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise DecodeError(f"pyav: {path.name} has no video stream")
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                stream.codec_context.thread_count = self.threads
                packets = [p for p in container.demux(stream) if p.size]
                index = PacketIndex.of(stream, packets)
                # counted from the packets: a header may count discarded frames, or none, or too many
                n_total = int((index.display >= 0).sum()) if index is not None else len(packets)
                fps = float(stream.average_rate or 0.0)
                indices = _resolve(select, n_total)
                if not len(indices):
                    raise DecodeError(f"pyav: {path.name} has no frames")
                if index is None:
                    out, got, decoded = _decode_counting(stream.codec_context, packets, indices)
                else:
                    out, got, decoded = self._decode_indexed(stream.codec_context, packets, index, indices)
        except (av.error.FFmpegError, OSError, ValueError) as err:
            raise DecodeError(f"pyav: cannot decode {path.name}: {err}") from err
        return _finish(path, out, got, fps, n_total, self.name, decoded)

    def _decode_indexed(self, codec, packets: list, index: PacketIndex, indices: np.ndarray):
        if self.mode == "exact":
            targets = indices
        else:
            targets = index.snap(indices, index.reference if self.mode == "reference" else index.key)
        send = index.needed(targets, standalone=self.mode == "keyframes")
        display_of = {packets[q].pts: int(index.display[q]) for q in np.flatnonzero(send)}
        wanted = set(targets.tolist())
        kept: dict[int, np.ndarray] = {}

        def keep(frames) -> None:
            for frame in frames:
                i = display_of.get(frame.pts, -1)
                if i in wanted and i not in kept:
                    kept[i] = _upright(frame)

        for q in np.flatnonzero(send):
            keep(codec.decode(packets[q]))
        keep(codec.decode(None))
        got = sorted(kept)
        return [kept[i] for i in got], got, int(send.sum())


def _decode_counting(codec, packets: list, indices: np.ndarray):
    """Decode every packet up to the last wanted frame, numbering frames in the order they come out."""
    wanted, last = set(indices.tolist()), int(indices[-1])
    out, got, decoded = [], [], 0

    def frames():
        for packet in packets:
            yield from codec.decode(packet)
        yield from codec.decode(None)

    for i, frame in enumerate(frames()):
        decoded += 1
        if i in wanted:
            out.append(_upright(frame))
            got.append(i)
        if i >= last:
            break
    return out, got, decoded


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


def _container_count(path: Path) -> tuple[int, float]:
    """Frame count and fps from the container (PyAV, no decoding): from the header, or by demuxing
    when the header has no count."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            n_total = int(stream.frames or 0) or sum(1 for p in container.demux(stream) if p.size)
            return n_total, float(stream.average_rate or 0.0)
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


def make_decoder(device: str = "cpu", backend: str | None = None, mode: str = "exact", threads: int = 0) -> VideoDecoder:
    """Build the decoder for a resolved ``device`` (``"cpu"`` or ``"cuda"``).

    Args:
        device: ``"cpu"`` uses PyAV with an OpenCV fallback per file; ``"cuda"`` puts DALI in front
            of that chain (``mode="exact"`` only).
        backend: force one decoder with no fallback: ``"pyav"``, ``"opencv"`` or ``"dali"``.
        mode: which frames answer the sampled indices (see :class:`PyAVDecoder`): only PyAV can tell
            reference frames and keyframes apart, so the other modes decode with it on either
            device (its OpenCV fallback returns the exact frames).
        threads: FFmpeg decoding threads of the CPU decoders (0: FFmpeg's choice, one per core).
    """
    if mode not in DECODE_MODES:
        raise ValueError(f"decode mode must be one of {DECODE_MODES}, got {mode!r}")
    if backend is not None:
        if mode != "exact" and backend != "pyav":
            raise ValueError(f"decode mode {mode!r} needs the pyav decoder, not {backend!r}")
        builders = {"pyav": lambda: PyAVDecoder(threads, mode), "opencv": lambda: OpenCVDecoder(threads), "dali": DALIDecoder}
        return builders[backend]()
    cpu = FallbackDecoder(PyAVDecoder(threads, mode), OpenCVDecoder(threads))
    if device == "cuda" and mode == "exact":
        return FallbackDecoder(DALIDecoder(), cpu)
    return cpu

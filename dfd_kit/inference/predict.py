"""Video → row: the inference path, readable top to bottom.

One video (:meth:`Predictor.predict_video` = :class:`FaceFinder` then :meth:`Predictor.score`)::

    frames = decoder.read(path, Sampling(n_frames))      # uint8 [T, H, W, 3] RGB      (decode.py)
    boxes  = sampler.select(sampler.detect(frames))       # [T] x float32 [n_t, 5]      (faces.py)
    crops  = [sampler.crop(frames, boxes, f).crops for f in framings]   # per framing: uint8 [K, S, S, 3]
    scores = ensemble.predict(crops per member)           # float32 [K], P(FAKE)        (models/ensemble.py)
    label  = aggregate(scores, rule, clip)                # float in [clip]             (aggregate.py)

One classifier is an ensemble of one member; with several (``weights=[a, b]``), each video is still
decoded once and its faces found once, and every member gets crops cut from the same boxes at its
own config's size and framing.

A folder (:func:`predict_folder`), or one video file: one row per expected video, always. Decoding and face
detection of the next videos run in worker processes, one per core (:mod:`dfd_kit.inference.worker`), while
video k is classified; rows are written in order. A video that hangs or crashes its worker is cut off and
the worker replaced. A :class:`~dfd_kit.inference.budget.TimeBudget` measures the rate at which videos
finish, lowers the frame count when time runs short and finally writes the prior; any video that fails gets
the prior and a logged reason; rows are appended as they come and
the CSV is renamed into place at the end. With ``report=PATH`` the per-face data of each video (crops,
frame numbers, scores) is kept just long enough to add its row to the HTML report
(:mod:`dfd_kit.inference.report`), and never when no report is asked for.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..device import cpu_cores, resolve_device
from ..errors import DFDError, InputError, NoFaceError
from ..models.classifier import PRECISIONS
from ..models.ensemble import Ensemble
from ..models.onnx_backend import available as onnx_available
from ..models.registry import ModelConfig
from ..models.weights import ensemble_entry, resolve_members
from .aggregate import aggregate
from .budget import TimeBudget
from .decode import DECODE_MODES, Sampling, make_decoder
from .faces import Faces, FaceSampler, Framing
from .submission import VIDEO_SUFFIXES, SubmissionWriter, list_videos, read_sample_submission

log = logging.getLogger(__name__)

__all__ = ["Predictor", "VideoResult", "FaceScores", "Summary", "predict_folder", "default_precision"]

STAGES = ("decode", "detect", "crop", "classify", "aggregate")
#: inference settings for weights whose manifest has no ``inference`` entry (chosen on validation videos)
INFERENCE_DEFAULTS = {"frames": 17, "rule": "mean", "flip": False}
FEW_VIDEOS = 4  # no progress bar for this many videos or fewer


def default_precision(device: str) -> str:
    """``mixed_float16`` on GPU; ``mixed_bfloat16`` on CPUs with native BF16, else ``float32``."""
    if device == "cuda":
        return "mixed_float16"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    return "mixed_bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


@dataclass
class FoundFaces:
    """The torch half of a video's path: its face crops and what it cost.

    ``frame_numbers``: int64 ``[T]``, the video frame number of each sampled frame (``None`` when the
    finder does not say). ``extra_crops``: the same faces cut at the finder's further framings, one
    uint8 ``[K, S, S, 3]`` array each (:meth:`crops_at`).
    """

    faces: Faces
    n_frames: int
    seconds: dict[str, float]
    frame_numbers: np.ndarray | None = None
    extra_crops: tuple[np.ndarray, ...] = ()

    def crops_at(self, framing: int) -> np.ndarray:
        """The crops cut at the finder's framing number ``framing`` (0: its own, ``faces.crops``)."""
        return self.faces.crops if framing == 0 else self.extra_crops[framing - 1]


class FaceFinder:
    """Stages 1–3, sample → decode → detect and crop, built from plain arguments so that a worker
    process can build its own copy (see :mod:`dfd_kit.inference.worker`).

    Args:
        device: resolved device, ``"cpu"`` or ``"cuda"``.
        image_size, margin, shift: crop size, relative margin and vertical shift (from the model config).
        detect_scale: downscale factor for face detection.
        decoder: force one decoder (``"pyav"``, ``"opencv"``, ``"dali"``), no fallback.
        decode: which frames answer the sampled indices: ``"exact"``, ``"reference"`` or
            ``"keyframes"`` (see :class:`~dfd_kit.inference.decode.PyAVDecoder`).
        threads: FFmpeg decoding threads (0: FFmpeg's choice, one per core).
        extra_framings: further framings to cut the same faces at (the other members of an ensemble).
    """

    def __init__(
        self,
        device: str,
        image_size: int,
        margin: float,
        detect_scale: float = 0.5,
        decoder: str | None = None,
        shift: float = 0.0,
        decode: str = "exact",
        threads: int = 0,
        extra_framings: tuple[Framing, ...] = (),
    ) -> None:
        self.decoder = make_decoder(device, decoder, decode, threads)
        self.face_sampler = FaceSampler(image_size=image_size, margin=margin, shift=shift, scale=detect_scale, device=device)
        self.extra_framings = tuple(extra_framings)

    def __call__(self, path: str | Path, n_frames: int, policy: str = "even") -> FoundFaces:
        """Faces of one video. Raises :class:`~dfd_kit.errors.DecodeError` or :class:`~dfd_kit.errors.NoFaceError`."""
        sampler = self.face_sampler
        t0 = time.perf_counter()
        frames = self.decoder.read(path, Sampling(n_frames, policy))
        t1 = time.perf_counter()
        boxes = sampler.select(sampler.detect(frames.frames))
        t2 = time.perf_counter()
        faces = sampler.crop(frames.frames, boxes)
        extra = tuple(sampler.crop(frames.frames, boxes, framing).crops for framing in self.extra_framings)
        t3 = time.perf_counter()
        if not len(faces):
            raise NoFaceError(f"no face with prob >= {sampler.min_prob} in {len(frames)} frames")
        return FoundFaces(faces, len(frames), {"decode": t1 - t0, "detect": t2 - t1, "crop": t3 - t2}, frames.indices, extra)


@dataclass
class FaceScores:
    """Every face of one scored video, kept only for a report (a few MB per video: see ``score``).

    Attributes:
        crops: uint8 ``[K, S, S, 3]`` RGB, the (first member's) classifier input.
        frames: int64 ``[K]``, the video frame number each face was cut from.
        scores: float32 ``[K]``, P(FAKE) of each face (the ensemble's, when there are several members).
        member_scores: float32 ``[M, K]``, each member's P(FAKE) of each face.
        member_crops: one uint8 ``[K, S_m, S_m, 3]`` array per member, the crops it scored.
    """

    crops: np.ndarray
    frames: np.ndarray
    scores: np.ndarray
    member_scores: np.ndarray | None = None
    member_crops: tuple[np.ndarray, ...] = ()


@dataclass
class VideoResult:
    """One video's outcome: ``label`` = P(FAKE); ``reason`` is set when ``label`` is a fallback.

    ``faces`` holds the per-face data when it was asked for (``Predictor.score(..., keep_faces=True)``).
    """

    filename: str
    label: float
    reason: str | None = None
    n_frames: int = 0
    n_faces: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    faces: FaceScores | None = None


class Predictor:
    """Everything needed to turn one video into one probability, built once.

    Args:
        weights: ``.weights.h5`` path or bundled name; several (a list, or names joined by commas)
            make an ensemble (:class:`~dfd_kit.models.ensemble.Ensemble`); ``None`` uses the bundled
            default (one file or a list).
        config: model config name, only needed for weights outside a manifest.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``, resolved once here.
        frames: frames sampled per video; ``None``: what the manifest chose on validation videos
            (the ensemble's entry, else the first member's ``inference`` entry), else 17.
        policy: frame sampling policy (see :mod:`dfd_kit.inference.sampling`).
        rule: aggregation rule (see :mod:`dfd_kit.inference.aggregate`); ``None``: the manifest's, else ``"mean"``.
        clip: bounds for the video probability.
        prior: the label written when a video yields no score.
        precision: ``"auto"`` or one of :data:`dfd_kit.models.classifier.PRECISIONS`.
        detect_scale: downscale factor for face detection.
        decoder: force one decoder (``"pyav"``, ``"opencv"``, ``"dali"``), no fallback.
        decode: which frames answer the sampled indices: ``"exact"`` (the default: exactly them),
            ``"reference"`` (the nearest reference frames) or ``"keyframes"`` (the nearest
            keyframes, a handful per clip); see :class:`~dfd_kit.inference.decode.PyAVDecoder`.
        backend: classifier runtime: ``"auto"`` (ONNX Runtime on CPU when it is installed and there
            is a weights file to cache the conversion by, else TensorFlow), ``"tf"`` or ``"onnx"``;
            every member runs on it.
        flip: also score every face mirrored and average (test-time augmentation, 2x classifier
            time), for every member; ``None``: each member's manifest choice, else off.

    Attributes:
        members: each member's :class:`~dfd_kit.models.weights.WeightsInfo`; ``weights`` is the first.
        ensemble: the :class:`~dfd_kit.models.ensemble.Ensemble` that scores faces; ``classifier``
            is its first member (the only one, without an ensemble).
    """

    def __init__(
        self,
        weights: str | Path | list | None = None,
        config: str | ModelConfig | None = None,
        device: str = "auto",
        frames: int | None = None,
        policy: str = "even",
        rule: str | None = None,
        clip: tuple[float, float] = (0.01, 0.99),
        prior: float = 0.5,
        precision: str = "auto",
        detect_scale: float = 0.5,
        decoder: str | None = None,
        backend: str = "auto",
        flip: bool | None = None,
        decode: str = "exact",
    ) -> None:
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
        self.device = resolve_device(device)
        self.members = resolve_members(weights, config)
        self.weights = self.members[0]
        entry = ensemble_entry(self.members)
        chosen = {**INFERENCE_DEFAULTS, **self.weights.inference, **entry.get("inference", {})}
        frames = chosen["frames"] if frames is None else frames
        rule = chosen["rule"] if rule is None else rule
        self.precision = default_precision(self.device) if precision == "auto" else precision
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be 'auto' or one of {PRECISIONS}, got {precision!r}")
        self.frames, self.policy, self.rule, self.clip, self.prior = frames, policy, rule, clip, prior
        self.decode = decode
        member_framings = [Framing(m.config.input_size, m.config.margin, m.config.shift) for m in self.members]
        framings = list(dict.fromkeys(member_framings))  # distinct, in member order: the finder cuts each once
        self._framing_of = [framings.index(f) for f in member_framings]
        first = framings[0]
        self.finder_args = dict(device=self.device, image_size=first.image_size, margin=first.margin, shift=first.shift,
                                detect_scale=detect_scale, decoder=decoder, decode=decode, extra_framings=tuple(framings[1:]))  # fmt: skip
        if backend == "auto":
            onnx = self.device == "cpu" and self.precision == "float32" and all(m.path is not None for m in self.members)
            backend = "onnx" if onnx and onnx_available() else "tf"
        self.ensemble = Ensemble.for_weights(self.members, entry, flip=flip, precision=self.precision, backend=backend)
        self.classifier = self.ensemble.members[0]

    @cached_property
    def find_faces(self) -> FaceFinder:
        """The in-process :class:`FaceFinder` (built on first use)."""
        return FaceFinder(**self.finder_args)

    def score(self, name: str, found: FoundFaces, keep_faces: bool = False) -> VideoResult:
        """Stages 4–5: face crops → scores → one label. Raises :class:`~dfd_kit.errors.NoScoreError`.

        With ``keep_faces`` the result holds the crops, frame numbers and face scores (:class:`FaceScores`).
        """
        t0 = time.perf_counter()
        crops = self.member_crops(found)
        member_scores = self.ensemble.member_scores(crops)
        scores = self.ensemble.combine_scores(member_scores)
        t1 = time.perf_counter()
        label = aggregate(scores, self.rule, self.clip)
        t2 = time.perf_counter()
        seconds = {**found.seconds, "classify": t1 - t0, "aggregate": t2 - t1}
        kept = None
        if keep_faces:
            numbers = found.frame_numbers if found.frame_numbers is not None else np.arange(found.n_frames)
            kept = FaceScores(found.faces.crops, np.asarray(numbers, np.int64)[found.faces.frame_of], scores, member_scores, tuple(crops))
        return VideoResult(name, label, None, found.n_frames, len(found.faces), seconds, kept)

    def member_crops(self, found: FoundFaces) -> list[np.ndarray]:
        """Each member's crops of a video's faces: uint8 ``[K, S_m, S_m, 3]``, cut at the member's framing."""
        return [found.crops_at(f) for f in self._framing_of]

    def predict_video(self, path: str | Path, n_frames: int | None = None, keep_faces: bool = False) -> VideoResult:
        """One video, end to end, in this process. Raises :class:`~dfd_kit.errors.DFDError` subclasses."""
        found = self.find_faces(path, n_frames or self.frames, self.policy)
        return self.score(Path(path).name, found, keep_faces)

    def describe(self) -> str:
        """The weights that score, for logs and summaries: one file, or every member and how they combine."""
        if len(self.members) == 1:
            return self.weights.describe()
        weights = ", ".join(f"{w:.2f}" for w in self.ensemble.weights)
        return f"ensemble of {len(self.members)} ({self.ensemble.combine}, weights {weights}): " + " + ".join(m.describe() for m in self.members)

    def settings(self) -> dict[str, object]:
        """What shapes the labels, for a report: weights, model config, device, runtime, frames, rule."""
        return {
            "weights": self.describe(),
            "config": self.weights.config.to_dict(),
            "members": [{"name": n, "weights": m.describe(), "config": m.config.to_dict(), "flip": c.flip}
                        for n, m, c in zip(self.ensemble.names, self.members, self.ensemble.members)],  # fmt: skip
            "combine": {"rule": self.ensemble.combine, "member_weights": [round(float(w), 4) for w in self.ensemble.weights]},
            "device": self.device,
            "backend": self.classifier.backend,
            "precision": self.precision,
            "flip": self.classifier.flip,
            "frames": self.frames,
            "policy": self.policy,
            "decode": self.decode,
            "rule": self.rule,
            "clip": list(self.clip),
            "prior": self.prior,
        }


@dataclass
class Summary:
    """What a folder run did."""

    out: Path
    rows: int
    fallbacks: dict[str, str]
    seconds: dict[str, float]
    wall_s: float
    weights: str
    results: list[VideoResult]
    report_path: Path | None = None

    def fallback_counts(self) -> Counter:
        """Fallback rows per reason (the error's name, e.g. ``NoFaceError``)."""
        return Counter(reason.split(":")[0] for reason in self.fallbacks.values())

    def table(self) -> str:
        """One line per scored or fallen-back video of this run: name, P(FAKE), frames, faces, reason."""
        width = max([len("video")] + [len(r.filename) for r in self.results])
        lines = [f"{'video':{width}s}  P(FAKE)  frames  faces  fallback"]
        for r in self.results:
            lines.append(f"{r.filename:{width}s}  {r.label:7.3f}  {r.n_frames:6d}  {r.n_faces:5d}  {r.reason or ''}".rstrip())
        return "\n".join(lines)

    def report(self) -> str:
        """A few lines for a person: where the file is, fallbacks and time per stage."""
        lines = [f"wrote {self.rows} rows to {self.out}", f"weights: {self.weights}"]
        lines.append(f"fallbacks: {len(self.fallbacks)}" + "".join(f"\n  {n}: {r}" for n, r in self.fallbacks.items()))
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in self.seconds.items())
        n = max(1, len(self.results))
        lines.append(f"time: {self.wall_s:.1f}s wall, {self.wall_s / n:.2f}s per video; stage totals: {stages}")
        return "\n".join(lines)


def predict_folder(
    videos_dir: str | Path,
    out: str | Path = "submission.csv",
    sample_submission: str | Path | None = None,
    predictor: Predictor | None = None,
    time_budget: float | None = None,
    resume: bool = False,
    progress: bool = True,
    isolate: bool = True,
    workers: int | None = None,
    threads: int | None = None,
    video_timeout: float | None = 300.0,
    finder: str = "dfd_kit.inference.predict:FaceFinder",
    report: str | Path | None = None,
    explain: int = 0,
    report_videos: int = 200,
    **predictor_kwargs,
) -> Summary:
    """Score every video of a folder (or one video file) and write ``filename,label``.

    Args:
        videos_dir: folder of videos, or one video file.
        out: submission CSV path.
        sample_submission: if given, write exactly its rows, in its order (missing files get the prior).
        predictor: a ready :class:`Predictor`; otherwise one is built from ``predictor_kwargs``.
        time_budget: seconds for the whole run (``None``: no limit).
        resume: keep rows already in ``<out>.partial`` from an interrupted run.
        progress: show a tqdm progress bar (video count and rate) when there are more than
            :data:`FEW_VIDEOS` videos to score.
        isolate: decode and detect in worker processes (:mod:`dfd_kit.inference.worker`), each killed and
            replaced when a video hangs or crashes it; ``False`` uses one thread of this process.
        workers: worker processes in isolated mode; ``None``: one per CPU core (never more than
            videos to score). Up to two videos per worker are in flight while this process classifies.
        threads: intra-op threads of each worker (FFmpeg, torch, OpenCV); ``None``: the cores
            divided among the workers, at least 1.
        video_timeout: seconds of decoding and detection allowed per video (isolated mode only);
            never more than what the time budget has left.
        finder: ``"module:Class"`` of the face finder the worker runs (isolated mode only).
        report: write a self-contained HTML report here (and its data beside it, see
            :func:`dfd_kit.inference.report.data_path`); ``None``: keep no per-face data.
        explain: with ``report``, Grad-CAM heat maps of this many highest-scoring faces per shown video.
        report_videos: with ``report``, the most videos (highest P(FAKE) first) shown with face images.

    Returns:
        A :class:`Summary`; the CSV holds one finite label in ``[0, 1]`` per expected row.
    """
    from tqdm.auto import tqdm

    from .worker import FaceWorker

    t_start = time.perf_counter()
    workers = cpu_cores() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    videos_dir, names = _expected_videos(Path(videos_dir), sample_submission)
    predictor = predictor or Predictor(**predictor_kwargs)
    log.info("weights: %s", predictor.describe())
    writer = SubmissionWriter(out, names, prior=predictor.prior, resume=resume)
    todo = writer.pending()
    budget = TimeBudget(time_budget, frames=predictor.frames)
    totals = dict.fromkeys(STAGES, 0.0)
    results: list[VideoResult] = []
    if report is not None:
        from .report import ReportBuilder

        builder = ReportBuilder(predictor, explain=explain, max_videos=report_videos)

    def submit(runner, j: int, unfinished: int) -> Future | None:
        n = budget.grant(unfinished)
        if not n:
            return None
        timeout = min(video_timeout or math.inf, max(budget.left, 1.0))
        return runner.submit(videos_dir / todo[j], n, predictor.policy, None if math.isinf(timeout) else timeout)

    workers = min(workers, max(1, len(todo)))  # no idle workers for a few videos (their cores go to threads)
    with FaceWorker(predictor.finder_args, finder, workers, threads) if isolate else _InProcess(predictor) as runner:
        in_flight: deque[Future | None] = deque()  # videos k, k+1, ... in order
        bar = tqdm(todo, desc="predict", unit="video", disable=not progress or len(todo) <= FEW_VIDEOS)
        for k, name in enumerate(bar):
            while len(in_flight) < 2 * runner.workers and k + len(in_flight) < len(todo):
                in_flight.append(submit(runner, k + len(in_flight), len(todo) - k))
            result = _run_one(predictor, name, in_flight.popleft(), keep_faces=report is not None)
            budget.record(result.n_frames if result.reason is None else 0)
            for stage, s in result.seconds.items():
                totals[stage] += s
            if result.reason:
                log.warning("fallback %s -> %.3f: %s", name, result.label, result.reason)
            writer.add(name, result.label, result.reason)
            if report is not None:
                builder.add(result)  # turns the crops into thumbnails and lets them go
            results.append(result)
    path = writer.close()
    summary = Summary(path, len(names), dict(writer.reasons), totals, time.perf_counter() - t_start, predictor.describe(), results)
    if report is not None:
        summary.report_path = builder.write(report, summary)
        log.info("report: %s", summary.report_path)
    return summary


def _expected_videos(videos: Path, sample_submission: str | Path | None) -> tuple[Path, list[str]]:
    """The folder to read from and the file names to score: a folder's videos (or the sample
    submission's rows), or one video file."""
    if videos.is_file():
        if videos.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(f"not a video file: {videos} (expected one of {', '.join(VIDEO_SUFFIXES)})")
        if sample_submission:
            raise InputError(f"a sample submission needs a videos folder, not one file: {videos}")
        return videos.parent, [videos.name]
    names = read_sample_submission(sample_submission) if sample_submission else list_videos(videos)
    if not names:
        raise InputError(f"no videos to score: {videos} has no video files" + (f" and {sample_submission} no rows" if sample_submission else ""))
    return videos, names


class _InProcess:
    """Runs the face finder in one background thread of this process: no isolation, no timeout."""

    workers = 1

    def __init__(self, predictor: Predictor) -> None:
        self._finder = predictor.find_faces
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faces")

    def submit(self, path: Path, n_frames: int, policy: str, timeout: float | None) -> Future:
        return self._pool.submit(self._finder, path, n_frames, policy)

    def __enter__(self) -> "_InProcess":
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown()


def _run_one(predictor: Predictor, name: str, future: Future | None, keep_faces: bool = False) -> VideoResult:
    """Finish one video whose faces are being found in ``future``; any failure becomes the prior."""
    from pebble import ProcessExpired

    if future is None:
        return VideoResult(name, predictor.prior, f"time budget: no time left for {name}")
    try:
        return predictor.score(name, future.result(), keep_faces)
    except DFDError as err:
        return VideoResult(name, predictor.prior, f"{type(err).__name__}: {err}")
    except FutureTimeout:
        return VideoResult(name, predictor.prior, "Timeout: decoding and face detection ran past the per-video limit")
    except ProcessExpired as err:
        return VideoResult(name, predictor.prior, f"WorkerCrash: the decode worker died (exit code {err.exitcode})")
    except Exception as err:  # noqa: BLE001 - one bad video must never stop the run
        log.exception("unexpected error on %s", name)
        return VideoResult(name, predictor.prior, f"{type(err).__name__}: {err}")

"""Video → row: the inference path, readable top to bottom.

One video (:meth:`Predictor.predict_video` = :class:`FaceFinder` then :meth:`Predictor.score`)::

    frames = decoder.read(path, Sampling(n_frames))      # uint8 [T, H, W, 3] RGB      (decode.py)
    boxes  = sampler.select(sampler.detect(frames))       # [T] x float32 [n_t, 5]      (faces.py)
    faces  = sampler.crop(frames, boxes)                  # uint8 [K, S, S, 3] crops
    scores = classifier.predict(faces.crops)              # float32 [K], P(FAKE)        (models.py)
    label  = aggregate(scores, rule, clip)                # float in [clip]             (aggregate.py)

A folder (:func:`predict_folder`): one row per expected video, always. Decoding and face detection
of video k+1 run in a worker process (:mod:`dfd_kit.worker`) while video k is classified; a video
that hangs or crashes the worker is cut off and the worker replaced. A
:class:`~dfd_kit.budget.TimeBudget` lowers the frame count when time runs short and finally writes the
prior; any video that fails gets the prior and a logged reason; rows are appended as they come and
the CSV is renamed into place at the end.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .aggregate import aggregate
from .budget import TimeBudget
from .decode import Sampling, make_decoder
from .device import resolve_device
from .errors import DFDError, InputError, NoFaceError
from .faces import Faces, FaceSampler
from .models import PRECISIONS, Classifier, ModelConfig
from .onnx_backend import available as onnx_available
from .submission import SubmissionWriter, list_videos, read_sample_submission
from .weights import resolve_weights

log = logging.getLogger(__name__)

__all__ = ["Predictor", "VideoResult", "Summary", "predict_folder", "default_precision"]

STAGES = ("decode", "detect", "crop", "classify", "aggregate")


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
    """The torch half of a video's path: its face crops and what it cost."""

    faces: Faces
    n_frames: int
    seconds: dict[str, float]


class FaceFinder:
    """Stages 1–3, sample → decode → detect and crop, built from plain arguments so that a worker
    process can build its own copy (see :mod:`dfd_kit.worker`).

    Args:
        device: resolved device, ``"cpu"`` or ``"cuda"``.
        image_size, margin, shift: crop size, relative margin and vertical shift (from the model config).
        detect_scale: downscale factor for face detection.
        decoder: force one decoder (``"opencv"``, ``"pyav"``, ``"dali"``), no fallback.
    """

    def __init__(self, device: str, image_size: int, margin: float, detect_scale: float = 0.5, decoder: str | None = None, shift: float = 0.0) -> None:
        self.decoder = make_decoder(device, decoder)
        self.face_sampler = FaceSampler(image_size=image_size, margin=margin, shift=shift, scale=detect_scale, device=device)

    def __call__(self, path: str | Path, n_frames: int, policy: str = "even") -> FoundFaces:
        """Faces of one video. Raises :class:`~dfd_kit.errors.DecodeError` or :class:`~dfd_kit.errors.NoFaceError`."""
        sampler = self.face_sampler
        t0 = time.perf_counter()
        frames = self.decoder.read(path, Sampling(n_frames, policy))
        t1 = time.perf_counter()
        boxes = sampler.select(sampler.detect(frames.frames))
        t2 = time.perf_counter()
        faces = sampler.crop(frames.frames, boxes)
        t3 = time.perf_counter()
        if not len(faces):
            raise NoFaceError(f"no face with prob >= {sampler.min_prob} in {len(frames)} frames")
        return FoundFaces(faces, len(frames), {"decode": t1 - t0, "detect": t2 - t1, "crop": t3 - t2})


@dataclass
class VideoResult:
    """One video's outcome: ``label`` = P(FAKE); ``reason`` is set when ``label`` is a fallback."""

    filename: str
    label: float
    reason: str | None = None
    n_frames: int = 0
    n_faces: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


class Predictor:
    """Everything needed to turn one video into one probability, built once.

    Args:
        weights: ``.weights.h5`` path or bundled name; ``None`` uses the bundled default.
        config: model config name, only needed for weights outside a manifest.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``, resolved once here.
        frames: frames sampled per video.
        policy: frame sampling policy (see :mod:`dfd_kit.sampling`).
        rule: aggregation rule (see :mod:`dfd_kit.aggregate`).
        clip: bounds for the video probability.
        prior: the label written when a video yields no score.
        precision: ``"auto"`` or one of :data:`dfd_kit.models.PRECISIONS`.
        detect_scale: downscale factor for face detection.
        decoder: force one decoder (``"opencv"``, ``"pyav"``, ``"dali"``), no fallback.
        backend: classifier runtime: ``"auto"`` (ONNX Runtime on CPU when it is installed and there
            is a weights file to cache the conversion by, else TensorFlow), ``"tf"`` or ``"onnx"``.
        flip: also score every face mirrored and average (test-time augmentation, 2x classifier time).
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        config: str | ModelConfig | None = None,
        device: str = "auto",
        frames: int = 17,
        policy: str = "even",
        rule: str = "mean",
        clip: tuple[float, float] = (0.01, 0.99),
        prior: float = 0.5,
        precision: str = "auto",
        detect_scale: float = 0.5,
        decoder: str | None = None,
        backend: str = "auto",
        flip: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        self.weights = resolve_weights(weights, config)
        cfg = self.weights.config
        self.precision = default_precision(self.device) if precision == "auto" else precision
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be 'auto' or one of {PRECISIONS}, got {precision!r}")
        self.frames, self.policy, self.rule, self.clip, self.prior = frames, policy, rule, clip, prior
        self.finder_args = dict(device=self.device, image_size=cfg.input_size, margin=cfg.margin, shift=cfg.shift, detect_scale=detect_scale, decoder=decoder)
        if backend == "auto":
            onnx = self.device == "cpu" and self.precision == "float32" and self.weights.path is not None
            backend = "onnx" if onnx and onnx_available() else "tf"
        self.classifier = Classifier(cfg, self.weights.path, precision=self.precision, backend=backend, flip=flip, calibration=self.weights.calibration)

    @cached_property
    def find_faces(self) -> FaceFinder:
        """The in-process :class:`FaceFinder` (built on first use)."""
        return FaceFinder(**self.finder_args)

    def score(self, name: str, found: FoundFaces) -> VideoResult:
        """Stages 4–5: face crops → scores → one label. Raises :class:`~dfd_kit.errors.NoScoreError`."""
        t0 = time.perf_counter()
        scores = self.classifier.predict(found.faces.crops)
        t1 = time.perf_counter()
        label = aggregate(scores, self.rule, self.clip)
        t2 = time.perf_counter()
        seconds = {**found.seconds, "classify": t1 - t0, "aggregate": t2 - t1}
        return VideoResult(name, label, None, found.n_frames, len(found.faces), seconds)

    def predict_video(self, path: str | Path, n_frames: int | None = None) -> VideoResult:
        """One video, end to end, in this process. Raises :class:`~dfd_kit.errors.DFDError` subclasses."""
        found = self.find_faces(path, n_frames or self.frames, self.policy)
        return self.score(Path(path).name, found)


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

    def fallback_counts(self) -> Counter:
        return Counter(reason.split(":")[0] for reason in self.fallbacks.values())

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
    video_timeout: float | None = 300.0,
    finder: str = "dfd_kit.predict:FaceFinder",
    **predictor_kwargs,
) -> Summary:
    """Score every video of a folder and write ``filename,label``.

    Args:
        videos_dir: folder of videos.
        out: submission CSV path.
        sample_submission: if given, write exactly its rows, in its order (missing files get the prior).
        predictor: a ready :class:`Predictor`; otherwise one is built from ``predictor_kwargs``.
        time_budget: seconds for the whole run (``None``: no limit).
        resume: keep rows already in ``<out>.partial`` from an interrupted run.
        progress: show a tqdm progress bar.
        isolate: decode and detect in a worker process (:mod:`dfd_kit.worker`) that is killed and
            replaced when a video hangs or crashes it; ``False`` uses a thread of this process.
        video_timeout: seconds of decoding and detection allowed per video (isolated mode only);
            never more than what the time budget has left.
        finder: ``"module:Class"`` of the face finder the worker runs (isolated mode only).

    Returns:
        A :class:`Summary`; the CSV holds one finite label in ``[0, 1]`` per expected row.
    """
    from tqdm.auto import tqdm

    from .worker import FaceWorker

    t_start = time.perf_counter()
    videos_dir = Path(videos_dir)
    names = read_sample_submission(sample_submission) if sample_submission else list_videos(videos_dir)
    if not names:
        raise InputError(f"no videos to score: {videos_dir} has no video files" + (f" and {sample_submission} no rows" if sample_submission else ""))
    predictor = predictor or Predictor(**predictor_kwargs)
    log.info("weights: %s", predictor.weights.describe())
    writer = SubmissionWriter(out, names, prior=predictor.prior, resume=resume)
    todo = writer.pending()
    budget = TimeBudget(time_budget, frames=predictor.frames)
    totals = dict.fromkeys(STAGES, 0.0)
    results: list[VideoResult] = []

    def submit(runner, k: int) -> Future | None:
        n = budget.grant(len(todo) - k)
        if not n:
            return None
        timeout = min(video_timeout or math.inf, max(budget.left, 1.0))
        return runner.submit(videos_dir / todo[k], n, predictor.policy, None if math.isinf(timeout) else timeout)

    with FaceWorker(predictor.finder_args, finder) if isolate else _InProcess(predictor) as runner:
        pending = submit(runner, 0) if todo else None
        for k, name in enumerate(tqdm(todo, desc="predict", unit="video", disable=not progress)):
            future = pending
            pending = submit(runner, k + 1) if k + 1 < len(todo) else None
            result = _run_one(predictor, name, future)
            budget.record(result.n_frames if result.reason is None else 0)
            for stage, s in result.seconds.items():
                totals[stage] += s
            if result.reason:
                log.warning("fallback %s -> %.3f: %s", name, result.label, result.reason)
            writer.add(name, result.label, result.reason)
            results.append(result)
    path = writer.close()
    return Summary(path, len(names), dict(writer.reasons), totals, time.perf_counter() - t_start, predictor.weights.describe(), results)


class _InProcess:
    """Runs the face finder in one background thread of this process: no isolation, no timeout."""

    def __init__(self, predictor: Predictor) -> None:
        self._finder = predictor.find_faces
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faces")

    def submit(self, path: Path, n_frames: int, policy: str, timeout: float | None) -> Future:
        return self._pool.submit(self._finder, path, n_frames, policy)

    def __enter__(self) -> "_InProcess":
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown()


def _run_one(predictor: Predictor, name: str, future: Future | None) -> VideoResult:
    """Finish one video whose faces are being found in ``future``; any failure becomes the prior."""
    from pebble import ProcessExpired

    if future is None:
        return VideoResult(name, predictor.prior, f"time budget: no time left for {name}")
    try:
        return predictor.score(name, future.result())
    except DFDError as err:
        return VideoResult(name, predictor.prior, f"{type(err).__name__}: {err}")
    except FutureTimeout:
        return VideoResult(name, predictor.prior, "Timeout: decoding and face detection ran past the per-video limit")
    except ProcessExpired as err:
        return VideoResult(name, predictor.prior, f"WorkerCrash: the decode worker died (exit code {err.exitcode})")
    except Exception as err:  # noqa: BLE001 - one bad video must never stop the run
        log.exception("unexpected error on %s", name)
        return VideoResult(name, predictor.prior, f"{type(err).__name__}: {err}")

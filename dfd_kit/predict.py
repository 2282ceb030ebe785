"""Video → row: the inference path, readable top to bottom.

One video (:meth:`Predictor.predict_video`)::

    frames = decoder.read(path, Sampling(n_frames))    # uint8 [T, H, W, 3] RGB      (decode.py)
    faces  = face_sampler(frames)                       # uint8 [K, S, S, 3] crops    (faces.py)
    scores = classifier.predict(faces.crops)            # float32 [K], P(FAKE)        (models.py)
    label  = aggregate(scores, rule, clip)              # float in [clip]             (aggregate.py)

A folder (:func:`predict_folder`): one row per expected video, always. Decoding of video k+1 runs in a
background thread while video k is scored; a :class:`~dfd_kit.budget.TimeBudget` lowers the frame count
when time runs short and finally writes the prior; any video that fails gets the prior and a logged
reason; rows are appended as they come and the CSV is renamed into place at the end.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .aggregate import aggregate
from .budget import TimeBudget
from .decode import Frames, Sampling, make_decoder
from .device import resolve_device
from .errors import DFDError
from .faces import FaceSampler
from .models import PRECISIONS, Classifier, ModelConfig
from .submission import SubmissionWriter, list_videos, read_sample_submission
from .weights import resolve_weights

log = logging.getLogger(__name__)

__all__ = ["Predictor", "VideoResult", "Summary", "predict_folder", "default_precision"]

STAGES = ("decode", "detect", "classify", "aggregate")


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
    ) -> None:
        self.device = resolve_device(device)
        self.weights = resolve_weights(weights, config)
        cfg = self.weights.config
        self.precision = default_precision(self.device) if precision == "auto" else precision
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be 'auto' or one of {PRECISIONS}, got {precision!r}")
        self.frames, self.policy, self.rule, self.clip, self.prior = frames, policy, rule, clip, prior
        self.decoder = make_decoder(self.device, decoder)
        self.face_sampler = FaceSampler(image_size=cfg.input_size, margin=cfg.margin, scale=detect_scale, device=self.device)
        self.classifier = Classifier(cfg, self.weights.path, precision=self.precision)

    def decode(self, path: str | Path, n_frames: int | None = None) -> tuple[Frames, float]:
        """Stage 1–2: sample and decode; returns the frames and the seconds it took."""
        t0 = time.perf_counter()
        frames = self.decoder.read(path, Sampling(n_frames or self.frames, self.policy))
        return frames, time.perf_counter() - t0

    def score(self, name: str, frames: Frames) -> VideoResult:
        """Stages 3–5 on decoded frames: faces → scores → one label. Raises typed errors."""
        t0 = time.perf_counter()
        faces = self.face_sampler(frames)
        t1 = time.perf_counter()
        scores = self.classifier.predict(faces.crops)
        t2 = time.perf_counter()
        label = aggregate(scores, self.rule, self.clip)
        t3 = time.perf_counter()
        seconds = {"detect": t1 - t0, "classify": t2 - t1, "aggregate": t3 - t2}
        return VideoResult(name, label, None, len(frames), len(faces), seconds)

    def predict_video(self, path: str | Path, n_frames: int | None = None) -> VideoResult:
        """One video, end to end. Raises :class:`~dfd_kit.errors.DFDError` subclasses on failure."""
        frames, decode_s = self.decode(path, n_frames)
        result = self.score(Path(path).name, frames)
        result.seconds["decode"] = decode_s
        return result


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

    Returns:
        A :class:`Summary`; the CSV holds one finite label in ``[0, 1]`` per expected row.
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    videos_dir = Path(videos_dir)
    names = read_sample_submission(sample_submission) if sample_submission else list_videos(videos_dir)
    predictor = predictor or Predictor(**predictor_kwargs)
    log.info("weights: %s", predictor.weights.describe())
    writer = SubmissionWriter(out, names, prior=predictor.prior, resume=resume)
    todo = writer.pending()
    budget = TimeBudget(time_budget, frames=predictor.frames)
    totals = dict.fromkeys(STAGES, 0.0)
    results: list[VideoResult] = []

    def submit(pool: ThreadPoolExecutor, k: int) -> tuple[int, Future | None]:
        n = budget.grant(len(todo) - k)
        path = videos_dir / todo[k]
        return n, pool.submit(predictor.decode, path, n) if n else None

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        pending = submit(pool, 0) if todo else None
        for k, name in enumerate(tqdm(todo, desc="predict", unit="video", disable=not progress)):
            n, future = pending
            pending = submit(pool, k + 1) if k + 1 < len(todo) else None
            result = _run_one(predictor, name, n, future)
            budget.record(result.n_frames if result.reason is None else 0)
            for stage, s in result.seconds.items():
                totals[stage] += s
            if result.reason:
                log.warning("fallback %s -> %.3f: %s", name, result.label, result.reason)
            writer.add(name, result.label, result.reason)
            results.append(result)
    path = writer.close()
    return Summary(path, len(names), dict(writer.reasons), totals, time.perf_counter() - t_start, predictor.weights.describe(), results)


def _run_one(predictor: Predictor, name: str, n_frames: int, future: Future | None) -> VideoResult:
    """Finish one video whose decode was started in ``future``; any failure becomes the prior."""
    if future is None:
        return VideoResult(name, predictor.prior, f"time budget: no time left for {name}")
    try:
        frames, decode_s = future.result()
        result = predictor.score(name, frames)
        result.seconds["decode"] = decode_s
        return result
    except DFDError as err:
        return VideoResult(name, predictor.prior, f"{type(err).__name__}: {err}")
    except Exception as err:  # noqa: BLE001 - one bad video must never stop the run
        log.exception("unexpected error on %s", name)
        return VideoResult(name, predictor.prior, f"{type(err).__name__}: {err}")

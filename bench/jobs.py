"""The measured jobs of the benchmark; each runs in its own process and prints one JSON object.

    python -m bench.jobs JOB --clips DIR [--names A.mp4,B.mp4] [--repeats R] --weights FILE [--frames N]

Jobs: ``pipeline`` (``predict_folder`` in one of the :data:`VARIANTS`), ``naive`` (the same job done
the obvious way), ``floor_decode``, ``floor_classify``, ``decode_modes`` (each decode mode's cost and
frames with a face) and ``quality`` (each decode mode's log loss on labelled clips). Seconds are
per video, per clip where clips differ: wall seconds, and CPU seconds (user + system, of the job's
process and its workers), which another load on the machine disturbs much less; memory is the peak
of the summed resident memory of the job's process and all its children (the workers), sampled
every 0.25 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import torch  # noqa: E402,F401  (torch and torchvision before TensorFlow)
import torchvision  # noqa: E402,F401
import numpy as np  # noqa: E402

#: pipeline variants: (Predictor arguments, predict_folder arguments); "shipped" is the default
VARIANTS = {
    "before": ({"decoder": "opencv"}, {"workers": 1, "threads": 1}),  # the design replaced: one worker, OpenCV, 1 torch thread
    "one_worker": ({}, {"workers": 1}),
    "shipped": ({}, {}),
    "threads_x_cores": ({}, {"threads": os.cpu_count()}),  # every worker with as many threads as cores
    "reference": ({"decode": "reference"}, {}),
    "keyframes": ({"decode": "keyframes"}, {}),
    "ensemble": ({}, {}),  # shipped, with the other members (--partners) scoring the same faces
}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have ended."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


class PeakMemory:
    """Peak of the summed resident memory of this process and its descendants, in MB, sampled
    every ``interval`` seconds from ``/proc`` while the ``with`` block runs."""

    PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20

    def __init__(self, interval: float = 0.25) -> None:
        self.interval, self.peak_mb = interval, 0.0
        self._stop = threading.Event()

    @classmethod
    def tree_mb(cls) -> float:
        parent, rss = {}, {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ... rss is the 22nd
            parent[int(entry.name)], rss[int(entry.name)] = int(fields[1]), int(fields[21])
        tree, me = 0, os.getpid()
        for pid in rss:
            p = pid
            while p and p != me:
                p = parent.get(p, 0)
            if p == me:
                tree += rss[pid]
        return tree * cls.PAGE_MB

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self.tree_mb())

    def __enter__(self) -> "PeakMemory":
        self.peak_mb = self.tree_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def pipeline(clips: list[Path], repeats: int, weights: Path, frames: int | None, variant: str, partners: list[Path] | None = None) -> dict:
    """Steady-state seconds per video of ``predict_folder``: a run over ``len(clips) * repeats`` videos
    minus a run over ``clips[0]`` alone, divided by the difference in videos (start-up cancels out;
    what is left is the cost of the videos after the first, in ``marginal_weights``). The
    ``ensemble`` variant scores with ``[weights, *partners]``."""
    from dfd_kit.inference.predict import Predictor, predict_folder

    predictor_args, folder_args = VARIANTS[variant]
    if variant == "ensemble":
        if not partners:
            raise ValueError("the ensemble variant needs --partners")
        weights = [weights, *partners]
    predictor = Predictor(weights=weights, device="cpu", frames=frames, **predictor_args)
    with tempfile.TemporaryDirectory() as tmp:
        one, many = Path(tmp, "one"), Path(tmp, "many")
        one.mkdir()
        many.mkdir()
        os.symlink(clips[0], one / clips[0].name)
        for r in range(repeats):
            for c in clips:
                os.symlink(c, many / f"{r}_{c.name}")
        t0, c0 = time.perf_counter(), cpu_seconds()
        predict_folder(one, Path(tmp, "one.csv"), predictor=predictor, progress=False, **folder_args)
        t1, c1 = time.perf_counter(), cpu_seconds()
        with PeakMemory() as memory:
            summary = predict_folder(many, Path(tmp, "many.csv"), predictor=predictor, progress=False, **folder_args)
        t2, c2 = time.perf_counter(), cpu_seconds()
    if summary.fallbacks and variant != "keyframes":
        raise RuntimeError(f"the pipeline fell back on benchmark clips, timings would be meaningless: {summary.fallbacks}")
    n = len(clips) * repeats
    stages = {k: v / n for k, v in summary.seconds.items()}
    return {
        "variant": variant,
        "predictor": predictor_args,
        "folder": folder_args,
        "videos": n,
        "s_per_video": ((t2 - t1) - (t1 - t0)) / (n - 1),
        "cpu_s_per_video": ((c2 - c1) - (c1 - c0)) / (n - 1),
        "stage_s_per_video": stages,
        "stage_sum_s": sum(stages.values()),
        "peak_memory_mb": memory.peak_mb,
        "fallbacks": summary.fallbacks,
        "rows": [[r.filename, r.label, r.n_frames, r.n_faces] for r in summary.results],
        "frames_per_video": float(np.mean([r.n_frames for r in summary.results])),
        "faces_per_video": float(np.mean([r.n_faces for r in summary.results])),
        "precision": predictor.precision,
        "backend": predictor.classifier.backend,
        "flip": predictor.classifier.flip,
        "frames": predictor.frames,
        "config": predictor.weights.config.name,
        "members": [m.path.name for m in predictor.members],
        "input_size": predictor.weights.config.input_size,
    }


def naive(clips: list[Path], weights: Path, frames: int | None) -> dict:
    """The obvious implementation: seek to each frame, MTCNN frame by frame at full resolution,
    ``model.predict`` per face, ``np.mean``. Seconds per clip."""
    import cv2
    from facenet_pytorch import MTCNN

    from dfd_kit.inference.faces import square_box
    from dfd_kit.inference.predict import INFERENCE_DEFAULTS
    from dfd_kit.inference.sampling import sample_indices
    from dfd_kit.models import create_model, preprocess_for
    from dfd_kit.models.weights import resolve_weights

    info = resolve_weights(weights)
    frames = frames or info.inference.get("frames", INFERENCE_DEFAULTS["frames"])
    model = create_model(info.config, info.path)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    size = info.config.input_size
    model.predict(np.zeros((1, size, size, 3), np.float32), verbose=0)
    per_clip, cpu = {}, {}
    with PeakMemory() as memory:
        for clip in clips:
            t0, c0 = time.perf_counter(), time.process_time()
            cap = cv2.VideoCapture(str(clip))
            imgs = []
            for i in sample_indices(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), frames):
                cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
                ok, bgr = cap.read()
                if ok:
                    imgs.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            cap.release()
            scores = []
            for img in imgs:
                boxes, probs = mtcnn.detect(img)
                for box, prob in zip(boxes if boxes is not None else [], probs if boxes is not None else []):
                    if prob >= 0.9:
                        x1, y1, x2, y2 = square_box(box, info.config.margin, *img.shape[:2])
                        crop = cv2.resize(img[y1:y2, x1:x2], (size, size))
                        scores.append(float(model.predict(preprocess_for(info.config)(crop[None]), verbose=0)[0, 0]))
            label = float(np.mean(scores)) if scores else 0.5
            assert 0.0 <= label <= 1.0
            per_clip[clip.name], cpu[clip.name] = time.perf_counter() - t0, time.process_time() - c0
    return {"per_clip_s": per_clip, "per_clip_cpu_s": cpu, "peak_memory_mb": memory.peak_mb}


def _plain_pyav(path: Path, indices: np.ndarray) -> int:
    """Every frame up to the last wanted one through PyAV, frame-threaded; the wanted ones to RGB."""
    import av

    wanted, last, n = set(indices.tolist()), int(indices[-1]), 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                frame.to_ndarray(format="rgb24")
                n += 1
            if i >= last:
                break
    return n


def floor_decode(clips: list[Path], frames: int, repeats: int = 3) -> dict:
    """The best plain decode of the sampled frames, per clip: OpenCV ``grab()``/``retrieve()`` and
    PyAV with frame threading, each decoding every frame up to the last wanted one with FFmpeg's
    own thread count, best of ``repeats`` after a warm-up (file cache, codec start-up)."""
    from dfd_kit.inference.decode import OpenCVDecoder, Sampling
    from dfd_kit.inference.sampling import sample_indices

    def best(fn) -> tuple[float, float]:
        """Wall and CPU seconds of the run with the least wall time."""
        times = []
        for _ in range(repeats + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times.append((time.perf_counter() - t0, time.process_time() - c0))
        return min(times[1:])

    out = {}
    for clip in clips:
        opencv = OpenCVDecoder()
        n_total = opencv.read(clip, [0]).n_total
        indices = sample_indices(n_total, frames)
        out[clip.name] = {"opencv": best(lambda: opencv.read(clip, Sampling(frames))), "pyav": best(lambda: _plain_pyav(clip, indices))}
    best_of = {name: min(by.values()) for name, by in out.items()}
    return {"per_clip_s": {k: v[0] for k, v in best_of.items()}, "per_clip_cpu_s": {k: v[1] for k, v in best_of.items()}, "by_decoder": out}


def floor_classify(weights: Path, frames: int, repeats: int = 3) -> dict:
    """One batched forward pass over ``frames`` faces, as the shipped classifier scores them (its flip
    averaging and calibration), best of ``repeats`` after a warm-up, on each runtime here."""
    from dfd_kit.inference.predict import default_precision
    from dfd_kit.models import Classifier
    from dfd_kit.models.onnx_backend import available
    from dfd_kit.models.weights import resolve_weights

    info = resolve_weights(weights)
    variants = [("tf", p) for p in sorted({"float32", default_precision("cpu")})] + ([("onnx", "float32")] if available() else [])
    out = {}
    for backend, precision in variants:
        clf = Classifier.for_weights(info, precision=precision, backend=backend)
        crops = np.random.default_rng(0).integers(0, 256, (frames, clf.input_size, clf.input_size, 3), dtype=np.uint8)
        clf.predict(crops)
        times = []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            clf.predict(crops)
            times.append((time.perf_counter() - t0, time.process_time() - c0))
        out[f"{backend}/{precision}"] = min(times)
    wall, cpu = min(out.values())
    return {"s_per_video": wall, "cpu_s_per_video": cpu, "by_runtime": out, "flip": bool(info.inference.get("flip", False))}


def decode_modes(clips: list[Path], weights: Path, frames: int, repeats: int = 2) -> dict:
    """Per clip and decode mode: seconds (best of ``repeats``, FFmpeg's thread count), frames
    returned, frames decoded, frames with a face (the shipped detector)."""
    from dfd_kit.inference.decode import DECODE_MODES, PyAVDecoder, Sampling
    from dfd_kit.inference.faces import FaceSampler
    from dfd_kit.models.weights import resolve_weights

    cfg = resolve_weights(weights).config
    sampler = FaceSampler(image_size=cfg.input_size, margin=cfg.margin, shift=cfg.shift)
    out: dict[str, dict] = {}
    for mode in DECODE_MODES:
        decoder = PyAVDecoder(mode=mode)
        out[mode] = {}
        for clip in clips:
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                got = decoder.read(clip, Sampling(frames))
                times.append(time.perf_counter() - t0)
            with_face = sum(len(b) > 0 for b in sampler.select(sampler.detect(got.frames)))
            out[mode][clip.name] = {"s": min(times), "frames": len(got), "decoded": got.decoded, "n_total": got.n_total, "with_face": int(with_face)}
    return {"by_mode": out}


def quality(clips: list[Path], weights: Path, frames: int | None) -> dict:
    """Log loss, AUC and frames per decode mode on the labelled clips (``metadata.json`` beside them)."""
    import pandas as pd

    from dfd_kit.inference.decode import DECODE_MODES
    from dfd_kit.inference.predict import Predictor, predict_folder
    from dfd_kit.training.evaluate import evaluate

    folder = clips[0].parent
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp, "sample.csv")
        pd.DataFrame({"filename": [c.name for c in clips], "label": 0.5}).to_csv(sample, index=False)
        for mode in DECODE_MODES:
            predictor = Predictor(weights=weights, device="cpu", frames=frames, decode=mode)
            csv = Path(tmp, f"{mode}.csv")
            summary = predict_folder(folder, csv, sample_submission=sample, predictor=predictor, progress=False)
            result, _ = evaluate(csv, folder / "metadata.json")
            out[mode] = {
                **result.to_dict(),
                "frames_per_video": float(np.mean([r.n_frames for r in summary.results])),
                "faces_per_video": float(np.mean([r.n_faces for r in summary.results])),
                "fallbacks": summary.fallbacks,
            }
    return {"by_mode": out}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("job", choices=["pipeline", "naive", "floor_decode", "floor_classify", "decode_modes", "quality"])
    parser.add_argument("--clips", type=Path, default=None, help="folder of the clips (every job but floor_classify)")
    parser.add_argument("--names", default="", help="comma-separated clip names in --clips (default: every .mp4)")
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=None, help="frames per video (default: the weights' choice)")
    parser.add_argument("--repeats", type=int, default=1, help="copies of each clip in the pipeline's folder")
    parser.add_argument("--variant", default="shipped", choices=sorted(VARIANTS))
    parser.add_argument("--partners", default="", help="the ensemble variant's other members, comma-separated paths")
    args = parser.parse_args(argv)
    names = [n for n in args.names.split(",") if n]
    if args.clips is None:
        clips = []
    elif names:
        clips = [(args.clips / n).resolve() for n in names]
    else:
        clips = sorted(p.resolve() for p in args.clips.glob("*.mp4"))
    if args.job in ("floor_decode", "floor_classify", "decode_modes"):
        from dfd_kit.inference.predict import INFERENCE_DEFAULTS
        from dfd_kit.models.weights import resolve_weights

        frames = args.frames or resolve_weights(args.weights).inference.get("frames", INFERENCE_DEFAULTS["frames"])
    if args.job == "pipeline":
        partners = [Path(p) for p in args.partners.split(",") if p]
        result = pipeline(clips, args.repeats, args.weights, args.frames, args.variant, partners)
    elif args.job == "naive":
        result = naive(clips, args.weights, args.frames)
    elif args.job == "floor_decode":
        result = floor_decode(clips, frames)
    elif args.job == "floor_classify":
        result = floor_classify(args.weights, frames)
    elif args.job == "decode_modes":
        result = decode_modes(clips, args.weights, frames)
    else:
        result = quality(clips, args.weights, args.frames)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

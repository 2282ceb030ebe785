"""The measured jobs of the benchmark; each runs in its own process and prints one JSON object.

    python -m bench.jobs JOB --clips DIR --weights FILE [--frames 17]

Jobs: ``pipeline`` (dfd_kit as shipped), ``pipeline_tf`` (the classifier on TensorFlow instead of ONNX
Runtime), ``naive`` (the same job done the obvious way), ``floor_decode``,
``floor_classify``, ``detect_quality``. Each reports seconds per video (per stage where it has stages)
and its peak resident memory (this process; ``children`` = the decode worker).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import torch  # noqa: E402,F401  (torch and torchvision before TensorFlow)
import torchvision  # noqa: E402,F401
import numpy as np  # noqa: E402


def _clips(folder: Path) -> list[Path]:
    return sorted(p.resolve() for p in folder.glob("*.mp4"))


def _peak_mb() -> dict[str, float]:
    return {
        "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def pipeline(clips: list[Path], weights: Path, frames: int, repeats: int, **predictor_args) -> dict:
    """Steady-state seconds per video of ``predict_folder``: a run over ``len(clips) * repeats`` videos
    minus a run over one video, divided by the difference (start-up costs cancel out).
    ``predictor_args`` override the shipped :class:`Predictor` defaults (the variant jobs)."""
    from dfd_kit.inference.predict import Predictor, predict_folder

    predictor = Predictor(weights=weights, device="cpu", frames=frames, **predictor_args)
    with tempfile.TemporaryDirectory() as tmp:
        one, many = Path(tmp, "one"), Path(tmp, "many")
        one.mkdir()
        many.mkdir()
        os.symlink(clips[0], one / clips[0].name)
        for r in range(repeats):
            for c in clips:
                os.symlink(c, many / f"{r}_{c.name}")
        t0 = time.perf_counter()
        predict_folder(one, Path(tmp, "one.csv"), predictor=predictor, progress=False)
        t1 = time.perf_counter()
        summary = predict_folder(many, Path(tmp, "many.csv"), predictor=predictor, progress=False)
        t2 = time.perf_counter()
    if summary.fallbacks:
        raise RuntimeError(f"the pipeline fell back on benchmark clips, timings would be meaningless: {summary.fallbacks}")
    n = len(clips) * repeats
    per_video = ((t2 - t1) - (t1 - t0)) / (n - 1)
    stages = {k: v / n for k, v in summary.seconds.items()}
    return {
        "videos": n,
        "s_per_video": per_video,
        "stage_s_per_video": stages,
        "stage_sum_s": sum(stages.values()),
        "fallbacks": summary.fallbacks,
        "faces_per_video": float(np.mean([r.n_faces for r in summary.results])),
        "precision": predictor.precision,
        "backend": predictor.classifier.backend,
        "input_size": predictor.weights.config.input_size,
    }


def naive(clips: list[Path], weights: Path, frames: int) -> dict:
    """The obvious implementation: seek to each frame, MTCNN frame by frame at full resolution,
    ``model.predict`` per face, ``np.mean``."""
    import cv2
    from facenet_pytorch import MTCNN

    from dfd_kit.inference.faces import square_box
    from dfd_kit.models import create_model, preprocess_for
    from dfd_kit.inference.sampling import sample_indices
    from dfd_kit.models.weights import resolve_weights

    info = resolve_weights(weights)
    model = create_model(info.config, info.path)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    size = info.config.input_size
    model.predict(np.zeros((1, size, size, 3), np.float32), verbose=0)
    totals = dict.fromkeys(("decode", "detect", "crop", "classify", "aggregate"), 0.0)
    t_all = time.perf_counter()
    for clip in clips:
        t0 = time.perf_counter()
        cap = cv2.VideoCapture(str(clip))
        imgs = []
        for i in sample_indices(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), frames):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            ok, bgr = cap.read()
            if ok:
                imgs.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        cap.release()
        t1 = time.perf_counter()
        detections = [mtcnn.detect(img) for img in imgs]
        t2 = time.perf_counter()
        crops = []
        for img, (boxes, probs) in zip(imgs, detections):
            for box, prob in zip(boxes if boxes is not None else [], probs if boxes is not None else []):
                if prob >= 0.9:
                    x1, y1, x2, y2 = square_box(box, info.config.margin, *img.shape[:2])
                    crops.append(cv2.resize(img[y1:y2, x1:x2], (size, size)))
        t3 = time.perf_counter()
        scores = [float(model.predict(preprocess_for(info.config)(c[None]), verbose=0)[0, 0]) for c in crops]
        t4 = time.perf_counter()
        label = float(np.mean(scores)) if scores else 0.5
        t5 = time.perf_counter()
        for k, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            totals[k] += dt
        assert 0.0 <= label <= 1.0
    n = len(clips)
    return {
        "videos": n,
        "s_per_video": (time.perf_counter() - t_all) / n,
        "stage_s_per_video": {k: v / n for k, v in totals.items()},
    }


def floor_decode(clips: list[Path], frames: int, repeats: int = 3) -> dict:
    """Reading the sampled frames with OpenCV grab()/retrieve() and nothing else, after a warm-up
    pass (file cache, codec start-up), best of ``repeats`` passes."""
    from dfd_kit.inference.decode import OpenCVDecoder, Sampling

    decoder = OpenCVDecoder()
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        for clip in clips:
            decoder.read(clip, Sampling(frames))
        times.append((time.perf_counter() - t0) / len(clips))
    return {"s_per_video": min(times[1:])}


def floor_classify(weights: Path, frames: int, repeats: int = 3) -> dict:
    """One batched forward pass over ``frames`` faces (after a warm-up), best of ``repeats``, for each
    runtime available here (TensorFlow at each useful precision, ONNX Runtime)."""
    from dfd_kit.models import Classifier
    from dfd_kit.models.onnx_backend import available
    from dfd_kit.inference.predict import default_precision
    from dfd_kit.models.weights import resolve_weights

    info = resolve_weights(weights)
    variants = [("tf", p) for p in sorted({"float32", default_precision("cpu")})] + ([("onnx", "float32")] if available() else [])
    out = {}
    for backend, precision in variants:
        clf = Classifier(info.config, info.path, precision=precision, backend=backend)
        crops = np.random.default_rng(0).integers(0, 256, (frames, clf.input_size, clf.input_size, 3), dtype=np.uint8)
        clf.predict(crops)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            clf.predict(crops)
            times.append(time.perf_counter() - t0)
        out[f"{backend}/{precision}"] = min(times)
    return {"s_per_video": min(out.values()), "by_runtime": out}


def detect_quality(clips: list[Path], frames: int) -> dict:
    """Frames (of ``frames``) with a face, and detection seconds, at the shipped scale and at full resolution."""
    from dfd_kit.inference.decode import OpenCVDecoder, Sampling
    from dfd_kit.inference.faces import FaceSampler

    out = {}
    for label, scale in (("shipped", FaceSampler().scale), ("full_resolution", 1.0)):
        sampler = FaceSampler(scale=scale)
        found, seconds = {}, 0.0
        for clip in clips:
            pixels = OpenCVDecoder().read(clip, Sampling(frames)).frames
            t0 = time.perf_counter()
            boxes = sampler.select(sampler.detect(pixels))
            seconds += time.perf_counter() - t0
            found[clip.name] = int(sum(len(b) > 0 for b in boxes))
        out[label] = {"scale": scale, "frames_with_face": found, "detect_s_per_video": seconds / len(clips)}
    return out


PIPELINE_VARIANTS = {
    "pipeline_tf": {"backend": "tf"},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("job", choices=["pipeline", *PIPELINE_VARIANTS, "naive", "floor_decode", "floor_classify", "detect_quality"])
    parser.add_argument("--clips", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    clips = _clips(args.clips)
    if args.job == "pipeline":
        result = pipeline(clips, args.weights, args.frames, args.repeats)
    elif args.job in PIPELINE_VARIANTS:
        result = pipeline(clips, args.weights, args.frames, args.repeats, **PIPELINE_VARIANTS[args.job])
    elif args.job == "naive":
        result = naive(clips, args.weights, args.frames)
    elif args.job == "floor_decode":
        result = floor_decode(clips, args.frames)
    elif args.job == "floor_classify":
        result = floor_classify(args.weights, args.frames)
    else:
        result = detect_quality(clips, args.frames)
    result["peak_rss_mb"] = _peak_mb()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

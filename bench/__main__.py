"""``python -m bench``: time dfd_kit's pipeline against a naive baseline and each stage's floor.

Generates DFDC-like clips (29.97 fps, H.264 High, a face that moves; landscape 1920x1080 and portrait
1080x1920), runs every job of :mod:`bench.jobs` in its own process (so each one's peak memory is its
own), prints a table of ratios measured in this run, and writes everything to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

KAGGLE_VIDEOS = 4000
KAGGLE_HOURS = 9.0


def make_clips(folder: Path, seconds: float, fps: float = 29.97) -> Path:
    """One landscape and one portrait 1080p clip (cached in ``folder`` between runs)."""
    from dfd_kit.demo import write_video
    from dfd_kit.synth import synth_frames

    folder.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * fps))
    for name, (h, w) in {"landscape_1080p.mp4": (1080, 1920), "portrait_1080p.mp4": (1920, 1080)}.items():
        path = folder / f"{n}f_{name}"
        if not path.exists():
            write_video(synth_frames(n, h, w, face_scale=0.6), path.with_suffix(".tmp.mp4"), fps=fps, crf=23)
            path.with_suffix(".tmp.mp4").rename(path)
    return folder


def bench_weights(folder: Path, config: str) -> Path:
    """Random-init weights for ``config`` (speed does not depend on the values), with a manifest."""
    path = folder / f"bench_{config}.weights.h5"
    if not path.exists():
        import torch  # noqa: F401
        import torchvision  # noqa: F401

        from dfd_kit.models import create_model, get_config
        from dfd_kit.models.weights import save_weights

        save_weights(create_model(config), path, get_config(config), default=False, trained=False)
    return path


def run_job(job: str, clips: Path, weights: Path, frames: int) -> dict:
    cmd = [sys.executable, "-m", "bench.jobs", job, "--clips", str(clips), "--weights", str(weights), "--frames", str(frames)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0:
        raise RuntimeError(f"{job} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["job_wall_s"] = time.perf_counter() - t0
    print(f"  {job:15s} done in {result['job_wall_s']:.0f}s", flush=True)
    return result


def report(results: dict, frames: int) -> str:
    pipe, naive = results["pipeline"], results["naive"]
    dec_floor, clf_floor = results["floor_decode"], results["floor_classify"]
    stages = pipe["stage_s_per_video"]
    q = results["detect_quality"]
    rows = [
        ("end to end, s/video", f"{pipe['s_per_video']:.2f}", f"naive {naive['s_per_video']:.2f}", f"naive/pipeline = {naive['s_per_video'] / pipe['s_per_video']:.2f}x"),
        ("  classifier on TensorFlow", f"{results['pipeline_tf']['s_per_video']:.2f}", "", f"tf/shipped = {results['pipeline_tf']['s_per_video'] / pipe['s_per_video']:.2f}x"),
        ("decode, s/video", f"{stages['decode']:.2f}", f"floor {dec_floor['s_per_video']:.2f}", f"pipeline/floor = {stages['decode'] / dec_floor['s_per_video']:.2f}x"),
        ("classify, s/video", f"{stages['classify']:.2f}", f"floor {clf_floor['s_per_video']:.2f}", f"pipeline/floor = {stages['classify'] / clf_floor['s_per_video']:.2f}x"),
        ("detect, s/video", f"{stages['detect']:.2f}", f"naive {naive['stage_s_per_video']['detect']:.2f}", f"naive/pipeline = {naive['stage_s_per_video']['detect'] / stages['detect']:.2f}x"),
        ("crop, s/video", f"{stages['crop']:.3f}", f"naive {naive['stage_s_per_video']['crop']:.3f}", ""),
        ("aggregate, s/video", f"{stages['aggregate']:.4f}", f"naive {naive['stage_s_per_video']['aggregate']:.4f}", ""),
        ("videos/s", f"{1 / pipe['s_per_video']:.3f}", f"naive {1 / naive['s_per_video']:.3f}", ""),
        (f"hours for {KAGGLE_VIDEOS} videos", f"{pipe['s_per_video'] * KAGGLE_VIDEOS / 3600:.2f}", f"naive {naive['s_per_video'] * KAGGLE_VIDEOS / 3600:.2f}", f"Kaggle allowed {KAGGLE_HOURS:.0f} h (GPU)"),
        ("peak RSS MB", f"{pipe['peak_rss_mb']['self']:.0f} + worker {pipe['peak_rss_mb']['children']:.0f}", f"naive {naive['peak_rss_mb']['self']:.0f}", ""),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"dfd_kit bench: {frames} frames/video, Xception {pipe['input_size']} px ({pipe['backend']}, {pipe['precision']}); stage sum {pipe['stage_sum_s']:.2f} s/video (the worker overlaps decode+detect with classify)"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, width)) for r in rows]
    lines.append("classify floor by runtime: " + ", ".join(f"{k} {v:.2f}s" for k, v in clf_floor["by_runtime"].items()))
    for label in ("shipped", "full_resolution"):
        found = q[label]["frames_with_face"]
        lines.append(f"frames with a face ({label}, scale {q[label]['scale']}): " + ", ".join(f"{k}: {v}/{frames}" for k, v in found.items()) + f"; detect {q[label]['detect_s_per_video']:.2f} s/video")
    return "\n".join(lines)


#: configs timed side by side with the main one (forward pass and whole pipeline, each in its own process)
COMPARE = ("xception", "efficientnet_lite0", "efficientnet_lite0_192", "efficientnet_lite1", "efficientnet_lite2")


def compare_configs(results: dict, frames: int) -> str:
    """A table of the configs of one run: input size, forward pass of ``frames`` faces, s/video, peak memory."""
    base = results[COMPARE[0]]["pipeline"]["s_per_video"] if COMPARE[0] in results else None
    lines = [f"configs side by side (forward pass of {frames} faces on the fastest runtime; pipeline as shipped):",
             f"  {'config':24s} {'px':>4s} {'forward s':>10s} {'s/video':>8s} {'vs ' + COMPARE[0]:>14s} {'peak RSS MB':>12s}"]  # fmt: skip
    for name, r in results.items():
        pipe = r["pipeline"]
        ratio = f"{base / pipe['s_per_video']:.2f}x faster" if base else ""
        rss = pipe["peak_rss_mb"]["self"] + pipe["peak_rss_mb"]["children"]
        lines.append(f"  {name:24s} {pipe['input_size']:4d} {r['floor_classify']['s_per_video']:10.2f} {pipe['s_per_video']:8.2f} {ratio:>14s} {rss:12.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--config", default="xception", help="model config to time (default: Xception at 299 px)")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--workdir", type=Path, default=Path("bench/.cache"), help="generated clips and weights (reused)")
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    parser.add_argument("--compare", default=",".join(COMPARE), help="configs to time side by side (empty: none)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    clips = make_clips(args.workdir / "clips", args.seconds)
    weights = bench_weights(args.workdir, args.config)
    print(f"clips and weights ready in {time.perf_counter() - t0:.0f}s; running jobs:", flush=True)
    jobs = ("floor_decode", "floor_classify", "detect_quality", "naive", "pipeline", "pipeline_tf")
    results = {job: run_job(job, clips, weights, args.frames) for job in jobs}
    text = report(results, args.frames)
    print(text)
    by_config = {}
    for name in filter(None, args.compare.split(",")):
        w = bench_weights(args.workdir, name)
        by_config[name] = {job: run_job(job, clips, w, args.frames) for job in ("floor_classify", "pipeline")}
    if by_config:
        table = compare_configs(by_config, args.frames)
        print(table)
        text += "\n" + table
    payload = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
        "config": args.config,
        "frames": args.frames,
        "clips": sorted(p.name for p in clips.glob("*.mp4")),
        "jobs": results,
        "configs": by_config,
        "ratios": {
            "naive_over_pipeline": results["naive"]["s_per_video"] / results["pipeline"]["s_per_video"],
            "tf_over_pipeline": results["pipeline_tf"]["s_per_video"] / results["pipeline"]["s_per_video"],
            "decode_over_floor": results["pipeline"]["stage_s_per_video"]["decode"] / results["floor_decode"]["s_per_video"],
            "classify_over_floor": results["pipeline"]["stage_s_per_video"]["classify"] / results["floor_classify"]["s_per_video"],
        },
        "projected_hours_4000_videos": results["pipeline"]["s_per_video"] * KAGGLE_VIDEOS / 3600,
        "total_bench_s": time.perf_counter() - t0,
        "table": text,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out} ({payload['total_bench_s']:.0f}s in all)")


if __name__ == "__main__":
    main()

"""``python -m bench.startup``: the whole-process cost of ``dfd predict ONE_CLIP``, start-up included.

``python -m bench`` times the steady state (seconds per video after the first); a user scoring one
clip, a test, or a CPU notebook restarted for each folder also pays the start-up. Each round, in
alternating order, every job runs as a fresh process on the same clip with the default weights
(ONNX Runtime on CPU, its conversion cached by a warm-up run first):

- ``floor``: a process that imports what scoring needs and nothing else (torch, torchvision,
  facenet-pytorch, PyAV, ONNX Runtime) and loads the cached ONNX model of each default member;
- ``shipped``: ``dfd predict CLIP`` (TensorFlow never loads: the Keras model is only built on a
  cache miss);
- ``tensorflow_loaded``: the same with TensorFlow imported first, the start-up every CPU run paid
  before the Keras model became lazy (less that model's build, 2-4 s);
- ``tf_backend``: ``dfd predict CLIP --backend tf`` (TensorFlow scoring, its tracing included).

Printed: each job's median wall seconds and its ratio to ``shipped``, taken round by round. Written
to ``bench/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.__main__ import SHARED_CLIPS

SHARED_CLIP = SHARED_CLIPS / "widuwuoiur.mp4"

FLOOR = """
import sys, torch, torchvision, facenet_pytorch, av, onnxruntime
from dfd_kit.models.weights import resolve_members
from dfd_kit.models.classifier import Classifier
for member in resolve_members(None):
    Classifier.for_weights(member, backend="onnx")
assert "tensorflow" not in sys.modules
"""
WITH_TF = "from dfd_kit.device import import_tensorflow; import_tensorflow(); from dfd_kit.cli import app; app(prog_name='dfd')"


def commands(clip: Path, out: Path) -> dict[str, list[str]]:
    predict = ["predict", str(clip), "--out", str(out), "--device", "cpu"]
    return {
        "floor": [sys.executable, "-c", FLOOR],
        "shipped": [sys.executable, "-m", "dfd_kit", *predict],
        "tensorflow_loaded": [sys.executable, "-c", WITH_TF, *predict],
        "tf_backend": [sys.executable, "-m", "dfd_kit", *predict, "--backend", "tf"],
    }


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=None, help="the clip (default: ../shared/clips' DFDC clip, else the demo's fake)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/startup.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip
        if clip is None:
            if SHARED_CLIP.is_file():
                clip = SHARED_CLIP
            else:
                from dfd_kit.demo import make_demo

                clip = make_demo(Path(tmp) / "demo") / "fake_astronaut.mp4"
        jobs = commands(clip, Path(tmp) / "out.csv")
        wall(jobs["shipped"])  # warm-up: converts to ONNX once (cached) and warms the file cache
        rounds = []
        for k in range(args.rounds):
            order = list(jobs) if k % 2 == 0 else list(jobs)[::-1]
            rounds.append({name: wall(jobs[name]) for name in order})
            print(f"round {k + 1}/{args.rounds}: " + ", ".join(f"{n} {rounds[-1][n]:.1f}s" for n in jobs), flush=True)
    summary = {
        name: {"median_s": statistics.median(r[name] for r in rounds), "x_shipped": statistics.median(r[name] / r["shipped"] for r in rounds)}
        for name in jobs
    }
    print(f"\n`dfd predict {clip.name}`, a fresh process each, median of {args.rounds} rounds:")
    print("| job | wall s | x shipped |\n|---|---|---|")
    for name, s in summary.items():
        print(f"| {name} | {s['median_s']:.1f} | {s['x_shipped']:.2f} |")
    args.out.write_text(json.dumps({"clip": str(clip), "rounds": rounds, "summary": summary}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

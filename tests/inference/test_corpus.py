"""A generated bad-input corpus through the real CLI: one row per video, a reason per fallback, exit 0.

The table of what the product did with each case is printed at the end of the test session.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from media import astronaut_face, encode, ffmpeg, make_clip, synth_frames

from dfd_kit.inference.predict import predict_folder

FAST = ("-preset", "ultrafast", "-crf", "23")

# case -> what must happen: "scored" (a real score, no fallback), an error class name (that fallback),
# or "any" (either is correct; the table records which).
EXPECT = {
    "zero_byte.mp4": "DecodeError",
    "truncated_10pct.mp4": "DecodeError",
    "truncated_90pct.mp4": "any",
    "random_bytes.mp4": "DecodeError",
    "audio_only.mp4": "DecodeError",
    "single_frame.mp4": "scored",
    "tiny_16x16.mp4": "NoFaceError",
    "uhd_4k.mp4": "scored",
    "long_10min_lowres.mp4": "scored",
    "vfr.mp4": "scored",
    "rotated_display_matrix.mp4": "scored",
    "h264_yuv444p.mp4": "scored",
    "h264_10bit.mp4": "scored",
    "vp9.mp4": "scored",
    "av1.mp4": "scored",
    "mpeg4_part2.mp4": "scored",
    "no_face.mp4": "NoFaceError",
    "five_faces.mp4": "scored",
    "face_cut_by_edge.mp4": "scored",
    "all_black.mp4": "NoFaceError",
    "vidéo été ☃.mp4": "scored",
    "with space.mp4": "scored",
    "symlink.mp4": "scored",
    "listed_but_missing.mp4": "DecodeError",
}


def _ff(*args: str) -> None:
    subprocess.run([ffmpeg(), "-y", "-loglevel", "error", *args], check=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    good = make_clip(d / "with space.mp4", n=20, extra=(*FAST, "-movflags", "+faststart"))
    data = good.read_bytes()
    (d / "zero_byte.mp4").write_bytes(b"")
    (d / "truncated_10pct.mp4").write_bytes(data[: len(data) // 10])
    (d / "truncated_90pct.mp4").write_bytes(data[: len(data) * 9 // 10])
    (d / "random_bytes.mp4").write_bytes(np.random.default_rng(1).bytes(20000))
    _ff("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", str(d / "audio_only.mp4"))
    make_clip(d / "single_frame.mp4", n=1, extra=FAST)
    make_clip(d / "tiny_16x16.mp4", n=10, height=16, width=16, extra=FAST)
    make_clip(d / "uhd_4k.mp4", n=6, height=2160, width=3840, extra=FAST)
    face_png = d / "face.png"
    import cv2

    cv2.imwrite(str(face_png), cv2.cvtColor(cv2.resize(astronaut_face(), (85, 100)), cv2.COLOR_RGB2BGR))
    _ff(
        "-f", "lavfi", "-i", "color=c=gray:s=320x240:r=30:d=600", "-i", str(face_png),
        "-filter_complex", "[0][1]overlay=x=110:y=60", "-c:v", "libx264", *FAST, str(d / "long_10min_lowres.mp4"),
    )
    vfr_src = make_clip(d / "vfr_src.mkv", n=30, extra=FAST)
    _ff("-i", str(vfr_src), "-vf", "setpts='N/(30*TB)+if(mod(N\\,3)\\,0\\,0.02/TB)'", "-fps_mode", "vfr", "-c:v", "libx264", *FAST, str(d / "vfr.mp4"))
    vfr_src.unlink()
    sideways = (np.ascontiguousarray(np.rot90(f, -1)) for f in synth_frames(20, 360, 640))
    stored = encode(d / "sideways.mp4", sideways, 640, 360, extra=FAST)
    _ff("-display_rotation", "90", "-i", str(stored), "-c", "copy", str(d / "rotated_display_matrix.mp4"))
    stored.unlink()
    make_clip(d / "h264_yuv444p.mp4", n=20, height=481, width=645, pix_fmt="yuv444p", extra=FAST)
    make_clip(d / "h264_10bit.mp4", n=20, pix_fmt="yuv420p10le", extra=FAST)
    make_clip(d / "vp9.mp4", n=12, codec="libvpx-vp9", extra=("-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M"))
    make_clip(d / "av1.mp4", n=12, codec="libsvtav1", extra=("-preset", "12", "-svtav1-params", "log-level=0"))
    make_clip(d / "mpeg4_part2.mp4", n=20, codec="mpeg4", extra=("-q:v", "4"))
    make_clip(d / "no_face.mp4", n=20, face=False, extra=FAST)
    make_clip(d / "five_faces.mp4", n=12, height=480, width=2400, faces=5, face_scale=0.9, extra=FAST)
    make_clip(d / "face_cut_by_edge.mp4", n=20, edge=True, extra=FAST)
    encode(d / "all_black.mp4", (np.zeros((360, 640, 3), np.uint8) for _ in range(20)), 360, 640, extra=FAST)
    make_clip(d / "vidéo été ☃.mp4", n=20, extra=FAST)
    (d / "symlink.mp4").symlink_to(good)
    face_png.unlink()
    names = sorted(EXPECT)
    sample = pd.DataFrame({"filename": names, "label": 0.5, "original": "x", "split": "test"})
    sample.to_csv(d / "sample_submission.csv", index=False)  # extra columns, and a missing file
    return d


@pytest.fixture(scope="module")
def corpus_run(corpus, tiny_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus_out") / "submission.csv"
    cmd = [
        sys.executable, "-m", "dfd_kit", "predict", str(corpus), "--out", str(out),
        "--sample-submission", str(corpus / "sample_submission.csv"), "--weights", str(tiny_weights),
        "--frames", "6", "--device", "cpu", "--video-timeout", "120",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    return proc, out


def test_corpus_one_row_per_video_and_a_reason_per_fallback(corpus_run, report):
    proc, out = corpus_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_csv(out, keep_default_na=False)
    assert df["filename"].tolist() == sorted(EXPECT)
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in df["label"])
    reasons = dict(re.findall(r"fallback (.+?) -> [0-9.]+: (.*)", proc.stderr))
    rows = []
    for name, label in zip(df["filename"], df["label"]):
        reason = reasons.get(name)
        outcome = reason.split(":")[0] if reason else "scored"
        rows.append((name, EXPECT[name], outcome, f"{label:.3f}", reason or ""))
    lines = ["| case | expected | outcome | label | reason |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {e} | {o} | {label} | {r[:90]} |" for n, e, o, label, r in rows]
    report("bad-input corpus: what `dfd predict` did\n" + "\n".join(lines))
    wrong = [r for r in rows if r[1] != "any" and r[1] != r[2]]
    assert not wrong, wrong
    assert f"fallbacks: {len(reasons)}" in proc.stdout  # the summary at the end lists them


def _cli(folder: Path, out: Path, weights: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dfd_kit", "predict", str(folder), "--out", str(out), "--weights", str(weights),
           "--frames", "4", "--device", "cpu", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_same_rows(media, tiny_weights, tmp_path):
    d = tmp_path / "videos"
    d.mkdir()
    for i in range(8):
        os.symlink(media["small" if i % 2 else "two_faces"], d / f"v{i}.mp4")
    full = tmp_path / "full.csv"
    assert _cli(d, full, tiny_weights).wait(timeout=600) == 0

    out = tmp_path / "resumed.csv"
    partial = out.with_name(out.name + ".partial")
    proc = _cli(d, out, tiny_weights)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and len(partial.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(partial.read_text().splitlines())
    assert not out.exists() and 3 <= done_before < 8

    assert _cli(d, out, tiny_weights, "--resume").wait(timeout=600) == 0
    a, b = pd.read_csv(full), pd.read_csv(out)
    assert a["filename"].tolist() == b["filename"].tolist() == [f"v{i}.mp4" for i in range(8)]
    np.testing.assert_allclose(a["label"], b["label"], atol=1e-6)
    assert not partial.exists()

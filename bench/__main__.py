"""``python -m bench``: dfd_kit's pipeline against a naive job and its floor, on generated and real clips.

Clip sets:

- ``generated`` (made here once, cached): DFDC-like clips, landscape 1920x1080 and portrait
  1080x1920, 10 s at 29.97 fps, encoded as DFDC's were (x264 ``medium``, CRF 23: 3 B frames,
  a keyframe every 250 frames), of a detailed scene under a panning camera with film grain and a
  moving face (:func:`dfd_kit.synth.camera_frames`), so that they cost as much to decode as DFDC clips;
- ``real``: ``../shared/clips``, the DFDC clip and the 1080p DFD recordings (22-56 s), when present.

For each set, in ``--rounds`` rounds, every job runs in its own process, one after another and in
reversed order every other round, so that a slow patch of a busy machine falls on all of them: the
floor (the best plain decode of the sampled frames, and one batched forward pass of the
classifier), the naive job (OpenCV seek per frame, MTCNN per frame at full size, predict per face),
and ``predict_folder`` in each variant of :data:`bench.jobs.VARIANTS` (the shipped one, one worker,
the design before, every worker with as many threads as cores, the decode modes, and an ensemble:
the weights and ``--partners``, the default's other members or random weights of the same config,
which cost the same). Each variant's seconds per video are the marginal cost of the videos after the first; the floor and the naive job
are averaged over the same videos; ratios are taken round by round and their median printed.
Then, once: each decode mode's cost and frames with a face per clip, and its log loss on the
labelled clips of ``../shared/clips``. Everything goes to ``bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
SHARED_CLIPS = ROOT.parent / "shared" / "clips"
KAGGLE_VIDEOS = 4000
#: the variants whose rows must equal the design before's (they decode the exact sampled frames)
EXACT = ("before", "one_worker", "shipped", "threads_x_cores")
#: model configs timed side by side on the generated clips (random weights; the shipped pipeline)
CONFIGS = ("xception", "efficientnet_lite0", "efficientnet_lite0_192", "efficientnet_lite1", "efficientnet_lite2")


def make_clips(folder: Path, seconds: float = 10.0, fps: float = 29.97) -> list[str]:
    """One landscape and one portrait DFDC-like 1080p clip (cached in ``folder`` between runs)."""
    from dfd_kit.demo import write_video
    from dfd_kit.synth import camera_frames

    folder.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * fps))
    names = []
    for name, (h, w), seed in (("landscape", (1080, 1920), 0), ("portrait", (1920, 1080), 1)):
        path = folder / f"camera_{n}f_{name}.mp4"
        if not path.exists():
            write_video(camera_frames(n, h, w, seed=seed), path.with_suffix(".tmp.mp4"), fps=fps, crf=23, preset="medium")
            path.with_suffix(".tmp.mp4").rename(path)
        names.append(path.name)
    return names


def config_weights(folder: Path, config: str, inference: dict) -> Path:
    """Random-init weights for ``config`` (speed does not depend on the values) with a manifest that
    gives them ``inference`` (the main weights' frames, rule and flip)."""
    path = folder / f"bench_{config}.weights.h5"
    if not path.exists():
        import torch  # noqa: F401
        import torchvision  # noqa: F401

        from dfd_kit.models import create_model, get_config
        from dfd_kit.models.weights import save_weights

        save_weights(create_model(config), path, get_config(config), default=False, trained=False, inference=inference)
    return path


def clip_sets(workdir: Path, wanted: list[str]) -> dict[str, dict]:
    sets = {}
    if "generated" in wanted:
        folder = workdir / "clips"
        sets["generated"] = {"folder": folder, "names": make_clips(folder), "repeats": 4}
    if "real" in wanted:
        if (SHARED_CLIPS / "widuwuoiur.mp4").is_file():
            dfd = sorted(p.name for p in SHARED_CLIPS.glob("dfd40_*.mp4"))
            sets["real"] = {"folder": SHARED_CLIPS, "names": ["widuwuoiur.mp4", *dfd], "repeats": 2}
        else:
            print(f"real clips not found at {SHARED_CLIPS}: skipping that set", flush=True)
    return sets


def run_job(job: str, clips: dict | None, weights: Path, frames: int | None, **extra) -> dict:
    cmd = [sys.executable, "-m", "bench.jobs", job, "--weights", str(weights)]
    if clips is not None:
        cmd += ["--clips", str(clips["folder"]), "--names", ",".join(clips["names"]), "--repeats", str(clips["repeats"])]
    if frames:
        cmd += ["--frames", str(frames)]
    for key, value in extra.items():
        cmd += [f"--{key}", str(value)]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{job} {extra} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["job_wall_s"] = time.perf_counter() - t0
    result["load_before"] = load
    label = f"{job} {extra.get('variant', '')}".strip()
    print(f"  {label:26s} done in {result['job_wall_s']:4.0f}s (load {load:.1f})", flush=True)
    return result


def marginal_weights(names: list[str], repeats: int) -> dict[str, int]:
    """How often each clip counts in a pipeline job's marginal seconds: ``repeats`` times, the first
    clip once less (its solo run is subtracted)."""
    return {n: repeats - (i == 0) for i, n in enumerate(names)}


def weighted(per_clip: dict[str, float], weights: dict[str, int]) -> float:
    return sum(per_clip[n] * w for n, w in weights.items()) / sum(weights.values())


def summarise(spec: dict, rounds: list[dict]) -> dict:
    """Per variant: medians over rounds of seconds, the ratios taken round by round, memory, rows."""
    w = marginal_weights(spec["names"], spec["repeats"])
    floors = []
    for r in rounds:
        decode, classify = weighted(r["floor_decode"]["per_clip_s"], w), r["floor_classify"]["s_per_video"]
        cpu = weighted(r["floor_decode"]["per_clip_cpu_s"], w) + r["floor_classify"]["cpu_s_per_video"]
        floors.append({"decode": decode, "classify": classify, "total": decode + classify, "cpu": cpu,
                       "naive": weighted(r["naive"]["per_clip_s"], w), "naive_cpu": weighted(r["naive"]["per_clip_cpu_s"], w)})  # fmt: skip
    out = {
        "clips": spec["names"],
        "repeats": spec["repeats"],
        "floor_decode_s": statistics.median(f["decode"] for f in floors),
        "floor_classify_s": statistics.median(f["classify"] for f in floors),
        "floor_s": statistics.median(f["total"] for f in floors),
        "floor_cpu_s": statistics.median(f["cpu"] for f in floors),
        "naive_s": statistics.median(f["naive"] for f in floors),
        "naive_cpu_s": statistics.median(f["naive_cpu"] for f in floors),
        "naive_peak_memory_mb": max(r["naive"]["peak_memory_mb"] for r in rounds),
        "mean_load": statistics.mean(job["load_before"] for r in rounds for job in _jobs(r)),
        "variants": {},
    }
    for variant in rounds[0]["pipeline"]:
        runs = [r["pipeline"][variant] for r in rounds]
        stages = {k: statistics.median(run["stage_s_per_video"][k] for run in runs) for k in runs[0]["stage_s_per_video"]}
        before = [[row[1:] for row in r["pipeline"]["before"]["rows"]] for r in rounds] if "before" in rounds[0]["pipeline"] else None
        same = all([row[1:] for row in run["rows"]] == b for run, b in zip(runs, before)) if before else None
        out["variants"][variant] = {
            "s_per_video": statistics.median(run["s_per_video"] for run in runs),
            "over_floor": statistics.median(run["s_per_video"] / f["total"] for run, f in zip(runs, floors)),
            "naive_over": statistics.median(f["naive"] / run["s_per_video"] for run, f in zip(runs, floors)),
            "cpu_s_per_video": statistics.median(run["cpu_s_per_video"] for run in runs),
            "cpu_over_floor": statistics.median(run["cpu_s_per_video"] / f["cpu"] for run, f in zip(runs, floors)),
            "stage_s_per_video": stages,
            "stage_sum_s": sum(stages.values()),
            "peak_memory_mb": max(run["peak_memory_mb"] for run in runs),
            "frames_per_video": runs[0]["frames_per_video"],
            "faces_per_video": runs[0]["faces_per_video"],
            "rows_equal_before": same,
            "by_round_s": [run["s_per_video"] for run in runs],
        }
    return out


def _jobs(round_results: dict):
    for key, value in round_results.items():
        if key == "pipeline":
            yield from value.values()
        else:
            yield value


def compare_configs(configs: dict, generated: dict, main: str, input_size: int) -> dict:
    """Per config: its forward pass, the shipped pipeline against the floor (the generated set's
    decode floor + this config's forward pass) and its naive job, peak memory; ``main`` (the
    weights of the main run) from the main run's medians."""
    w = marginal_weights(generated["clips"], generated["repeats"])
    shipped = generated["variants"]["shipped"]
    out = {main: {
        "input_size": input_size, "forward_s": generated["floor_classify_s"], "s_per_video": shipped["s_per_video"],
        "over_floor": shipped["over_floor"], "naive_s": generated["naive_s"], "naive_over": shipped["naive_over"],
        "peak_memory_mb": shipped["peak_memory_mb"],
    }}  # fmt: skip
    for name, r in configs.items():
        floor = generated["floor_decode_s"] + r["floor_classify"]["s_per_video"]
        pipe = r["pipeline"]
        out[name] = {
            "input_size": r["input_size"],
            "forward_s": r["floor_classify"]["s_per_video"],
            "s_per_video": pipe["s_per_video"],
            "over_floor": pipe["s_per_video"] / floor,
            "naive_s": weighted(r["naive"]["per_clip_s"], w),
            "naive_over": weighted(r["naive"]["per_clip_s"], w) / pipe["s_per_video"],
            "peak_memory_mb": pipe["peak_memory_mb"],
        }
    return out


def report(summaries: dict, modes: dict, quality: dict | None, meta: dict, configs: dict) -> str:
    lines = [
        f"dfd_kit bench: {meta['config']} at {meta['input_size']} px, {meta['frames']} frames/video, flip {meta['flip']}, "
        f"{meta['backend']} classifier; {meta['cpus']} cores; median of {meta['rounds']} rounds"
    ]
    for name, s in summaries.items():
        lines.append("")
        lines.append(f"{name} clips ({', '.join(s['clips'])}; x{s['repeats']}), mean load {s['mean_load']:.1f} before each job")
        lines.append(
            f"  floor {s['floor_s']:.2f} s/video = decode {s['floor_decode_s']:.2f} + classify {s['floor_classify_s']:.2f} "
            f"(CPU {s['floor_cpu_s']:.2f} s); naive {s['naive_s']:.2f} s/video (CPU {s['naive_cpu_s']:.2f} s, peak {s['naive_peak_memory_mb']:.0f} MB)"
        )
        lines.append("  stage columns: seconds per video inside each stage (wall, in the worker or main process: they overlap)")
        lines.append(
            f"  {'variant':16s} {'s/video':>8s} {'/floor':>7s} {'naive/':>7s} {'CPU s':>6s} {'/floor':>7s} {'decode':>7s} {'detect':>7s} "
            f"{'classify':>8s} {'stages':>7s} {'peak MB':>8s} {'rows = before':>14s}"
        )
        for v, r in s["variants"].items():
            st = r["stage_s_per_video"]
            same = {True: "yes", False: "NO", None: "-"}[r["rows_equal_before"]] if v in EXACT else f"{r['frames_per_video']:.1f} frames"
            lines.append(
                f"  {v:16s} {r['s_per_video']:8.2f} {r['over_floor']:6.2f}x {r['naive_over']:6.1f}x {r['cpu_s_per_video']:6.2f} "
                f"{r['cpu_over_floor']:6.2f}x {st['decode']:7.2f} {st['detect']:7.2f} "
                f"{st['classify']:8.2f} {r['stage_sum_s']:7.2f} {r['peak_memory_mb']:8.0f} {same:>14s}"
            )
        shipped = s["variants"].get("shipped")
        if shipped:
            lines.append(f"  shipped: {shipped['s_per_video'] * KAGGLE_VIDEOS / 3600:.2f} h for {KAGGLE_VIDEOS} such videos")
        ensemble = s["variants"].get("ensemble")
        if shipped and ensemble:
            extra = ensemble["s_per_video"] - shipped["s_per_video"]
            lines.append(
                f"  ensemble ({' + '.join([meta['weights'], *meta.get('partners', [meta.get('partner', '?')])])}): {ensemble['s_per_video']:.2f} s/video, "
                f"{ensemble['s_per_video'] / shipped['s_per_video']:.2f}x one model; the other members add {extra:+.2f} s "
                f"(one forward pass: {s['floor_classify_s']:.2f} s; classify stage {shipped['stage_s_per_video']['classify']:.2f} -> "
                f"{ensemble['stage_s_per_video']['classify']:.2f} s, decode {shipped['stage_s_per_video']['decode']:.2f} -> "
                f"{ensemble['stage_s_per_video']['decode']:.2f} s, detect {shipped['stage_s_per_video']['detect']:.2f} -> "
                f"{ensemble['stage_s_per_video']['detect']:.2f} s)"
            )
    for name, result in modes.items():
        by_mode = result["by_mode"]
        lines.append("")
        lines.append(f"decode modes on the {name} clips (PyAV, FFmpeg's threads; per clip: s, frames returned, decoded of all, with a face):")
        clips = list(next(iter(by_mode.values())))
        for clip in clips:
            cells = [f"{m} {by_mode[m][clip]['s']:.2f}s {by_mode[m][clip]['frames']}f {by_mode[m][clip]['decoded']}/{by_mode[m][clip]['n_total']} face {by_mode[m][clip]['with_face']}" for m in by_mode]
            lines.append(f"  {clip[:28]:28s} " + " | ".join(cells))
    if configs:
        lines.append("")
        lines.append("model configs on the generated clips (random weights, the same frames and flip; one round; floor: decode + its forward pass):")
        lines.append(f"  {'config':24s} {'px':>4s} {'forward s':>9s} {'s/video':>8s} {'/floor':>7s} {'naive s':>8s} {'naive/':>7s} {'peak MB':>8s}")
        for name, c in configs.items():
            lines.append(
                f"  {name:24s} {c['input_size']:4d} {c['forward_s']:9.2f} {c['s_per_video']:8.2f} {c['over_floor']:6.2f}x "
                f"{c['naive_s']:8.2f} {c['naive_over']:6.1f}x {c['peak_memory_mb']:8.0f}"
            )
    if quality:
        lines.append("")
        lines.append(f"decode modes on the {next(iter(quality['by_mode'].values()))['videos']} labelled clips of ../shared/clips ({meta['weights']}):")
        for mode, q in quality["by_mode"].items():
            lines.append(
                f"  {mode:10s} log loss {q['log_loss']:.4f}  AUC {q['auc']:.3f}  accuracy {q['accuracy']:.3f}  "
                f"{q['frames_per_video']:.1f} frames, {q['faces_per_video']:.1f} faces per video, {len(q['fallbacks'])} fallbacks"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from bench.jobs import VARIANTS

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="weights file or bundled name (default: the bundled default weights)")
    parser.add_argument("--frames", type=int, default=None, help="frames per video (default: the weights' choice)")
    parser.add_argument("--sets", default="generated,real", help="clip sets to time")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="pipeline variants to time")
    parser.add_argument("--partners", default=None, help="the ensemble variant's other members, comma-separated (default: the default's others, else random weights)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="model configs timed side by side on the generated clips (empty: none)")
    parser.add_argument("--workdir", type=Path, default=Path("bench/.cache"), help="generated clips (reused)")
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    parser.add_argument("--report-from", type=Path, default=None, help="measure nothing: summarise the raw results of this earlier run again")
    args = parser.parse_args(argv)
    if args.report_from is not None:
        payload = json.loads(args.report_from.read_text())
    else:
        payload = measure(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=1) + "\n")  # the measurements are kept even if a summary fails
    raw, meta = payload["raw"], payload["meta"]
    payload["summary"] = {name: summarise(raw["sets"][name], rounds) for name, rounds in raw["rounds"].items()}
    generated = payload["summary"].get("generated")
    if raw["configs"] and generated and "shipped" in generated["variants"]:
        payload["configs"] = compare_configs(raw["configs"], generated, f"{meta['config']} ({meta['weights']})", meta["input_size"])
    payload["table"] = text = report(payload["summary"], raw["decode_modes"], raw["quality"], meta, payload.get("configs", {}))
    print(text)
    out = args.out if args.report_from is None else args.report_from
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out} ({payload['total_bench_s']:.0f}s of measuring)")


def measure(args) -> dict:
    """Run every job; the raw results, the settings and the machine."""
    from dfd_kit.inference.predict import INFERENCE_DEFAULTS
    from dfd_kit.models.weights import resolve_members

    t0 = time.perf_counter()
    members = resolve_members(args.weights)
    info = members[0]
    weights = info.path
    frames = args.frames or info.inference.get("frames", INFERENCE_DEFAULTS["frames"])
    sets = clip_sets(args.workdir, args.sets.split(","))
    variants = [v for v in args.variants.split(",") if v]
    # the ensemble's other members: --partners, the default's others, or random weights of the same config (same speed)
    if args.partners:
        partners = [m.path for m in resolve_members(args.partners)]
    elif len(members) > 1:
        partners = [m.path for m in members[1:]]
    else:
        partners = [config_weights(args.workdir, info.config.name, info.inference)]
    print(f"clips ready in {time.perf_counter() - t0:.0f}s; weights {weights.name}, {frames} frames; running jobs:", flush=True)
    rounds: dict[str, list[dict]] = {name: [] for name in sets}
    for k in range(args.rounds):
        for name, spec in sets.items():
            print(f"round {k + 1}/{args.rounds}, {name} clips:", flush=True)
            order = [("floor_decode", {}), ("floor_classify", {}), ("naive", {})] + [("pipeline", {"variant": v, **({"partners": ",".join(map(str, partners))} if v == "ensemble" else {})}) for v in variants]
            results: dict = {"pipeline": {}}
            for job, extra in order if k % 2 == 0 else order[::-1]:
                result = run_job(job, None if job == "floor_classify" else spec, weights, frames, **extra)
                if job == "pipeline":
                    results["pipeline"][extra["variant"]] = result
                else:
                    results[job] = result
            rounds[name].append(results)
    print("once per set: decode modes; then each mode on the labelled clips:", flush=True)
    modes = {name: run_job("decode_modes", spec, weights, frames) for name, spec in sets.items()}
    quality = None
    if (SHARED_CLIPS / "metadata.json").is_file():
        labelled = {"folder": SHARED_CLIPS, "names": sorted(p.name for p in SHARED_CLIPS.glob("*.mp4")), "repeats": 1}
        quality = run_job("quality", labelled, weights, args.frames)
    configs = {}
    if "generated" in sets and "shipped" in variants:
        for name in filter(None, args.configs.split(",")):
            if name == info.config.name and args.weights is None:
                continue  # the main run already timed the shipped weights' config
            print(f"model config {name}:", flush=True)
            w = config_weights(args.workdir, name, info.inference)
            configs[name] = {job: run_job(job, None if job == "floor_classify" else sets["generated"], w, frames, **extra)
                             for job, extra in (("floor_classify", {}), ("naive", {}), ("pipeline", {"variant": "shipped"}))}  # fmt: skip
            configs[name]["input_size"] = int(configs[name]["pipeline"]["input_size"])
    first = next(iter(rounds.values()))[0]["pipeline"]
    some = first.get("shipped") or next(iter(first.values()))
    meta = {
        "config": some["config"], "input_size": info.config.input_size, "frames": some["frames"], "flip": some["flip"],
        "backend": some["backend"], "cpus": os.cpu_count(), "rounds": args.rounds, "weights": weights.name,
        "partners": [p.name for p in partners],
    }  # fmt: skip
    sets_json = {name: {**spec, "folder": str(spec["folder"])} for name, spec in sets.items()}
    return {
        "machine": {"platform": platform.platform(), "processor": _cpu_name(), "cpus": os.cpu_count()},
        "meta": meta,
        "raw": {"sets": sets_json, "rounds": rounds, "decode_modes": modes, "quality": quality, "configs": configs},
        "total_bench_s": time.perf_counter() - t0,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()

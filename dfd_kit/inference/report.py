"""See why a video was scored: one self-contained HTML file for a predict run.

:class:`ReportBuilder` takes each :class:`~dfd_kit.inference.predict.VideoResult` as the run produces it, turns
its face crops into small JPEG thumbnails (and, with ``explain``, Grad-CAM heat maps of its
highest-scoring faces: :mod:`dfd_kit.models.gradcam`) and drops the crops, so a run holds at most a few
hundred KB per shown video. Only the ``max_videos`` highest-P(FAKE) videos keep images; every video
keeps its row (face scores and frame numbers are a few numbers each).

:meth:`ReportBuilder.write` saves the report's data as JSON beside the HTML (:func:`data_path`) and
renders the HTML from it (:func:`render`): a summary (videos, fallbacks by reason, time per stage,
weights and settings, the histogram of P(FAKE)) and a row per video, sorted by P(FAKE), with sort and
filter controls (a few lines of inline JavaScript): the face thumbnails with their scores, the face
scores along the clip (inline SVG), the aggregation rule's result and the fallback reason. Images are
inlined as base64 JPEG/PNG, so the file opens from disk with no network. :func:`add_evaluation`
(``dfd evaluate --report``) adds the metrics, the ROC/histogram picture and the worst-scored labelled
videos from the same data; :func:`gallery_html` gives the rows of the N most suspicious videos for a
notebook.
"""

from __future__ import annotations

import base64
import datetime
import heapq
import html
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .aggregate import aggregate

log = logging.getLogger(__name__)

__all__ = ["ReportBuilder", "data_path", "load", "render", "gallery_html", "add_evaluation", "jpeg_base64"]

THUMB_PX = 64  # side of a face thumbnail
EXPLAIN_PX = 96  # side of a crop and its heat map in the explanation
MAX_THUMBS = 10  # face thumbnails per video (evenly spaced along the clip when there are more faces)
WORST = 10  # worst-scored labelled videos listed by add_evaluation


def jpeg_base64(image: np.ndarray, side: int, quality: int = 70) -> str:
    """uint8 ``[H, W, 3]`` RGB → base64 JPEG of ``side`` x ``side`` pixels (area-resampled)."""
    import cv2

    small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(small[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} image as JPEG")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def data_path(report: str | Path) -> Path:
    """The JSON data file of a report: ``report.html`` → ``report.json``."""
    report = Path(report)
    if report.suffix.lower() == ".json":
        raise ValueError(f"the report is an HTML file; its data goes beside it as .json: {report}")
    return report.with_suffix(".json")


class ReportBuilder:
    """Collects a predict run's rows for the report.

    Args:
        predictor: the run's :class:`~dfd_kit.inference.predict.Predictor` (its settings and, to explain, the
            Keras model of each member of its ``ensemble``).
        explain: Grad-CAM heat maps of this many highest-scoring faces per shown video, one per member
            of an ensemble (0: none; each costs a backward pass).
        max_videos: the most videos shown with images: the highest P(FAKE) so far keep theirs.
    """

    def __init__(self, predictor, explain: int = 0, max_videos: int = 200) -> None:
        self.settings = predictor.settings()
        self.explain = max(0, int(explain))
        self.max_videos = max(0, int(max_videos))
        self._members = predictor.ensemble.members
        self._names = predictor.ensemble.names
        self._cams = None
        self.records: list[dict] = []
        self._shown: list[tuple[float, int]] = []  # min-heap of (label, record index) of videos with images
        self.seconds = 0.0

    def add(self, result) -> None:
        """Add one video's row; its :class:`~dfd_kit.inference.predict.FaceScores` become images and are dropped."""
        t0 = time.perf_counter()
        faces, result.faces = result.faces, None
        record = {
            "filename": result.filename,
            "label": float(result.label),
            "reason": result.reason,
            "n_frames": int(result.n_frames),
            "n_faces": int(result.n_faces),
            "frames": [],
            "scores": [],
            "thumbs": [],
            "explained": [],
        }
        if faces is not None and len(faces.scores):
            record["frames"] = [int(f) for f in faces.frames]
            record["scores"] = [round(float(s), 4) for s in faces.scores]
            if faces.member_scores is not None and len(faces.member_scores) > 1:
                record["member_scores"] = [[round(float(s), 4) for s in row] for row in faces.member_scores]
            record["unclipped"] = aggregate(faces.scores, self.settings["rule"], (0.0, 1.0))
            if self._enters(record["label"]):
                self._add_images(record, faces)
                heapq.heappush(self._shown, (record["label"], len(self.records)))
                if len(self._shown) > self.max_videos:
                    _, dropped = heapq.heappop(self._shown)
                    self.records[dropped]["thumbs"], self.records[dropped]["explained"] = [], []
        self.records.append(record)
        self.seconds += time.perf_counter() - t0

    def _enters(self, label: float) -> bool:
        return len(self._shown) < self.max_videos or (self.max_videos > 0 and label > self._shown[0][0])

    def _add_images(self, record: dict, faces) -> None:
        k = len(faces.crops)
        picks = np.unique(np.linspace(0, k - 1, min(k, MAX_THUMBS)).round().astype(int))
        record["thumbs"] = [{"face": int(i), "jpeg": jpeg_base64(faces.crops[i], THUMB_PX)} for i in picks]
        if self.explain:
            from ..models.gradcam import GradCam, overlay

            if self._cams is None:
                from ..models.classifier import preprocess_for

                self._cams = [GradCam(m.model, preprocess_for(m.config)) for m in self._members]
            top = np.argsort(-faces.scores, kind="stable")[: self.explain]
            crops = faces.member_crops or (faces.crops,)
            record["explained"] = []
            for m, (cam, member_crops) in enumerate(zip(self._cams, crops)):
                heat = overlay(member_crops[top], cam(member_crops[top]))
                record["explained"] += [
                    {"face": int(i), "member": m, "crop": jpeg_base64(member_crops[i], EXPLAIN_PX), "heat": jpeg_base64(h, EXPLAIN_PX)}
                    for i, h in zip(top, heat)
                ]

    def data(self, summary) -> dict:
        """The report's data: the summary of ``summary`` (a :class:`~dfd_kit.inference.predict.Summary`) and the rows."""
        return {
            "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "submission": str(summary.out),
            "rows": summary.rows,
            "wall_s": summary.wall_s,
            "seconds": dict(summary.seconds),
            "report_s": self.seconds,
            "fallbacks": dict(summary.fallback_counts()),
            "settings": self.settings,
            "max_videos": self.max_videos,
            "explain": self.explain,
            "videos": self.records,
        }

    def write(self, path: str | Path, summary) -> Path:
        """Write the data (:func:`data_path`) and the HTML report at ``path``; return ``path``."""
        return _save(Path(path), self.data(summary))


def _save(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data_path(path).write_text(json.dumps(data), encoding="utf-8")
    path.write_text(render(data), encoding="utf-8")
    return path


def load(report: str | Path) -> dict:
    """The data of a report written by :meth:`ReportBuilder.write` (give the HTML or the JSON path)."""
    path = Path(report)
    path = path if path.suffix.lower() == ".json" else data_path(path)
    if not path.is_file():
        from ..errors import InputError

        raise InputError(f"report data not found: {path} (written by `dfd predict --report` beside the HTML)")
    return json.loads(path.read_text(encoding="utf-8"))


def add_evaluation(report: str | Path, evaluation, table: pd.DataFrame, plot_png: str | Path | None = None, worst: int = WORST) -> Path:
    """Add (or replace) the evaluation section of a report and write it again.

    Args:
        report: the HTML report of a predict run (its data file must be beside it).
        evaluation: an :class:`~dfd_kit.training.evaluate.Evaluation`.
        table: ``filename, p, y`` from :func:`dfd_kit.training.evaluate.evaluate` (1 = FAKE).
        plot_png: the ROC/histogram PNG of :func:`dfd_kit.training.evaluate.plot`, inlined.
        worst: how many labelled videos with the largest log loss to list.
    """
    data = load(report)
    reported = {v["filename"]: v["label"] for v in data["videos"]}
    differ = [f for f, p in zip(table["filename"], table["p"]) if f in reported and not math.isclose(reported[f], p, abs_tol=1e-9)]
    if differ:
        log.warning("%d videos have another P(FAKE) in the submission than in %s (another run?), e.g. %s", len(differ), report, differ[:3])
    p = table["p"].to_numpy(np.float64).clip(1e-15, 1 - 1e-15)
    loss = -np.where(table["y"].to_numpy() == 1, np.log(p), np.log(1 - p))
    order = np.argsort(-loss, kind="stable")[:worst]
    data["evaluation"] = {
        "metrics": evaluation.to_dict(),
        "plot": base64.b64encode(Path(plot_png).read_bytes()).decode("ascii") if plot_png else None,
        "truth": {str(f): int(y) for f, y in zip(table["filename"], table["y"])},
        "worst": [{"filename": str(table["filename"][i]), "p": float(table["p"][i]), "y": int(table["y"][i]), "loss": float(loss[i])} for i in order],
    }
    return _save(Path(report), data)


# --- HTML ------------------------------------------------------------------------------------------

CSS = """
.dfd-report { font: 14px/1.4 system-ui, sans-serif; color: #222; }
.dfd-report h1 { font-size: 22px; margin: 8px 0; }
.dfd-report h2 { font-size: 17px; margin: 18px 0 6px; }
.dfd-report table.kv, .dfd-report table.rows { border-collapse: collapse; }
.dfd-report table.kv td, .dfd-report table.kv th { padding: 1px 10px 1px 0; text-align: left; vertical-align: top; }
.dfd-report .cards { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.dfd-report table.rows { width: 100%; }
.dfd-report table.rows th { text-align: left; border-bottom: 2px solid #888; padding: 4px; position: sticky; top: 0; background: #fff; }
.dfd-report table.rows td { border-bottom: 1px solid #ddd; padding: 4px; vertical-align: top; }
.dfd-report .p { font-size: 18px; font-weight: 600; }
.dfd-report .hot { color: #b00; } .dfd-report .cold { color: #06a; } .dfd-report .prior { color: #888; }
.dfd-report small, .dfd-report .note { color: #666; }
.dfd-report .faces { display: flex; flex-wrap: wrap; gap: 3px; }
.dfd-report figure { margin: 0; text-align: center; font-size: 11px; color: #444; }
.dfd-report figure img { display: block; border-radius: 3px; }
.dfd-report figure.pair div { display: flex; gap: 2px; }
.dfd-report td.cam { min-width: 200px; }
.dfd-report .reason { color: #a40; max-width: 260px; word-break: break-word; }
.dfd-report .controls { margin: 8px 0; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
.dfd-report .badge { display: inline-block; padding: 0 5px; border-radius: 3px; font-size: 11px; color: #fff; }
.dfd-report .badge.FAKE { background: #b00; } .dfd-report .badge.REAL { background: #06a; }
"""

SCRIPT = """
(function () {
  var body = document.querySelector('#videos tbody');
  var rows = Array.prototype.slice.call(body.rows);
  var sort = document.getElementById('sort'), filter = document.getElementById('filter');
  var only = document.getElementById('only-fallbacks'), count = document.getElementById('count');
  function apply() {
    var key = sort.value, q = filter.value.toLowerCase(), shown = 0;
    rows.sort(function (a, b) {
      if (key === 'name') { return a.dataset.name.localeCompare(b.dataset.name); }
      var d = parseFloat(a.dataset.label) - parseFloat(b.dataset.label);
      return key === 'p-asc' ? d : -d;
    });
    rows.forEach(function (r) {
      var ok = r.dataset.name.toLowerCase().indexOf(q) >= 0 && (!only.checked || r.dataset.fallback === '1');
      r.hidden = !ok;
      if (ok) { shown += 1; }
      body.appendChild(r);
    });
    count.textContent = shown + ' of ' + rows.length + ' videos';
  }
  sort.addEventListener('change', apply);
  filter.addEventListener('input', apply);
  only.addEventListener('change', apply);
  apply();
})();
"""


def render(data: dict) -> str:
    """The whole HTML page of a report's data (see :meth:`ReportBuilder.data`)."""
    videos = _by_label(data["videos"])
    n_images = sum(1 for v in videos if v["thumbs"])
    with_images = [v for v in videos if v["scores"]]
    note = ""
    if len(with_images) > n_images:
        note = (
            f'<p class="note">Face images are kept for the {n_images} videos with the highest P(FAKE) '
            f"(<code>--report-videos {data['max_videos']}</code>); the other {len(with_images) - n_images} scored videos "
            "show their scores only.</p>"
        )
    controls = (
        '<div class="controls"><label>sort <select id="sort"><option value="p-desc">P(FAKE), highest first</option>'
        '<option value="p-asc">P(FAKE), lowest first</option><option value="name">name</option></select></label>'
        '<label>filter <input id="filter" type="search" placeholder="name contains"></label>'
        '<label><input id="only-fallbacks" type="checkbox"> fallbacks only</label><span id="count"></span></div>'
    )
    title = f"dfd_kit report: {html.escape(Path(data['submission']).name)}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f'<body><div class="dfd-report"><h1>{title}</h1>{_summary(data)}{_evaluation(data)}'
        f"<h2>Videos</h2>{note}{controls}{_rows_table(data, videos, 'videos')}</div>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def gallery_html(data: dict, n: int = 10) -> str:
    """The rows of the ``n`` videos with the highest P(FAKE), with the report's style, for a notebook."""
    videos = _by_label(data["videos"])[:n]
    return f'<div class="dfd-report"><style>{CSS}</style>{_rows_table(data, videos, "gallery")}</div>'


def _by_label(videos: list[dict]) -> list[dict]:
    return sorted(videos, key=lambda v: -v["label"])


def _summary(data: dict) -> str:
    videos = data["videos"]
    n_fallback = sum(1 for v in videos if v["reason"])
    s = data["settings"]
    head = (
        f"<p>{len(videos)} videos scored in this run ({len(videos) - n_fallback} from faces, {n_fallback} fallbacks) "
        f"of the {data['rows']} rows of <code>{html.escape(data['submission'])}</code>; "
        f"{data['wall_s']:.1f} s wall, {data['wall_s'] / max(1, len(videos)):.2f} s per video. "
        f"<small>Made {html.escape(data['created'])}.</small></p>"
    )
    if data["rows"] > len(videos):
        head += f'<p class="note">{data["rows"] - len(videos)} rows were written by an earlier run (--resume) and are not shown.</p>'
    fallbacks = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in sorted(data["fallbacks"].items()))
    fallbacks = f'<table class="kv"><tr><th>fallback</th><th>videos</th></tr>{fallbacks or "<tr><td>none</td></tr>"}</table>'
    n = max(1, len(videos))
    stages = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.2f} s</td><td>{v / n:.3f} s</td></tr>" for k, v in data["seconds"].items())
    stages += f"<tr><td>report</td><td>{data['report_s']:.2f} s</td><td>{data['report_s'] / n:.3f} s</td></tr>"
    stages = f'<table class="kv"><tr><th>stage</th><th>total</th><th>per video</th></tr>{stages}</table>'
    config = ", ".join(f"{k} {v}" for k, v in s["config"].items())
    rows = [
        ("weights", s["weights"]),
        ("model config", config),
        ("device / runtime", f"{s['device']} / {s['backend']}, {s['precision']}" + (", flip averaged" if s.get("flip") else "")),
        ("frames", f"{s['frames']} per video ({s['policy']})"),
        ("rule", f"{s['rule']} of the face scores, clipped to [{s['clip'][0]}, {s['clip'][1]}]"),
        ("prior", f"{s['prior']} (fallback label)"),
        ("explained", f"{data['explain']} highest-scoring faces per shown video (Grad-CAM)" if data["explain"] else "no (--explain N)"),
    ]
    settings = '<table class="kv">' + "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows) + "</table>"
    return (
        f'<h2>Summary</h2>{head}<div class="cards"><div>{_histogram(videos)}</div><div>{fallbacks}</div>'
        f"<div>{stages}</div><div>{settings}</div></div>"
    )


def _evaluation(data: dict) -> str:
    ev = data.get("evaluation")
    if not ev:
        return ""
    m = ev["metrics"]
    metrics = (
        f"<p>{m['videos']} labelled videos ({m['fake']} FAKE): log loss <b>{m['log_loss']:.4f}</b> "
        f"(constant prior {m['prior']:.3f}: {m['prior_log_loss']:.4f}; constant 0.5: {m['half_log_loss']:.4f}), "
        f"ROC AUC <b>{m['auc']:.4f}</b>, accuracy <b>{m['accuracy']:.4f}</b> (threshold 0.5).</p>"
    )
    plot = f'<img alt="ROC curve and score histograms" src="data:image/png;base64,{ev["plot"]}" style="width:600px;max-width:100%">' if ev.get("plot") else ""
    worst = "".join(
        f'<tr><td><a href="#videos-{_anchor(w["filename"])}">{html.escape(w["filename"])}</a></td>'
        f'<td><span class="badge {_truth(w["y"])}">{_truth(w["y"])}</span></td><td>{w["p"]:.3f}</td><td>{w["loss"]:.3f}</td></tr>'
        for w in ev["worst"]
    )
    worst = f'<table class="kv"><tr><th>video</th><th>truth</th><th>P(FAKE)</th><th>log loss</th></tr>{worst}</table>'
    return f'<h2>Evaluation</h2>{metrics}<div class="cards"><div>{plot}</div><div><h3>Worst-scored labelled videos</h3>{worst}</div></div>'


def _truth(y: int) -> str:
    return "FAKE" if y == 1 else "REAL"


def _anchor(filename: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in filename)


def _rows_table(data: dict, videos: list[dict], table_id: str) -> str:
    explain = any(v["explained"] for v in videos)
    head = "<th>#</th><th>video</th><th>P(FAKE)</th><th>face scores along the clip</th><th>faces (P(FAKE) of each)</th>"
    head += "<th>where the model looks (Grad-CAM)</th>" if explain else ""
    head += "<th>fallback</th>"
    truth = (data.get("evaluation") or {}).get("truth", {})
    rule = data["settings"]["rule"]
    members = [m["name"] for m in data["settings"].get("members", [])]
    body = "".join(_row(k + 1, v, rule, explain, truth.get(v["filename"]), table_id, members) for k, v in enumerate(videos))
    return f'<table class="rows" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _member_note(v: dict, face: int, members: list[str]) -> str:
    """Each member's score of one face, for an ensemble's row (empty for one model)."""
    if "member_scores" not in v:
        return ""
    return " (" + ", ".join(f"{html.escape(n)} {row[face]:.3f}" for n, row in zip(members, v["member_scores"])) + ")"


def _row(rank: int, v: dict, rule: str, explain: bool, truth: int | None, table_id: str, members: list[str] = ()) -> str:
    name = html.escape(v["filename"])
    label = v["label"]
    cls = "prior" if v["reason"] else "hot" if label >= 0.5 else "cold"
    result = f'<div class="p {cls}">{label:.3f}</div>'
    if v["reason"]:
        result += "<small>the prior (fallback)</small>"
    elif v["scores"]:
        result += f"<small>{html.escape(rule)} of {len(v['scores'])} faces"
        raw = v.get("unclipped")
        result += f", clipped from {raw:.3f}" if raw is not None and abs(raw - label) > 5e-4 else ""
        result += "</small>"
    if truth is not None:
        result += f'<div><span class="badge {_truth(truth)}">{_truth(truth)}</span></div>'
    faces = "".join(
        f'<figure><img src="data:image/jpeg;base64,{t["jpeg"]}" width="{THUMB_PX}" height="{THUMB_PX}" alt="face {t["face"]}" '
        f'title="frame {v["frames"][t["face"]]}, P(FAKE) {v["scores"][t["face"]]:.3f}{_member_note(v, t["face"], members)}">'
        f'{v["scores"][t["face"]]:.2f}{_member_line(v, t["face"])}</figure>'
        for t in v["thumbs"]
    )
    if v["scores"] and not v["thumbs"]:
        faces = '<span class="note">no images (beyond the cap)</span>'
    cells = (
        f'<td>{rank}</td><td><b>{name}</b><br><small>{v["n_frames"]} frames, {v["n_faces"]} faces</small></td>'
        f'<td>{result}</td><td>{_score_plot(v)}</td><td><div class="faces">{faces}</div></td>'
    )
    if explain:
        pairs = "".join(
            f'<figure class="pair"><div><img src="data:image/jpeg;base64,{e["crop"]}" width="{EXPLAIN_PX}" height="{EXPLAIN_PX}" alt="face {e["face"]}">'
            f'<img src="data:image/jpeg;base64,{e["heat"]}" width="{EXPLAIN_PX}" height="{EXPLAIN_PX}" alt="heat map of face {e["face"]}"></div>'
            f'frame {v["frames"][e["face"]]}: P(FAKE) {_explained_score(v, e, members)}</figure>'
            for e in v["explained"]
        )
        cells += f'<td class="cam"><div class="faces">{pairs}</div></td>'
    cells += f'<td class="reason">{html.escape(v["reason"] or "")}</td>'
    return (
        f'<tr id="{table_id}-{_anchor(v["filename"])}" data-name="{name}" data-label="{label!r}" '
        f'data-fallback="{1 if v["reason"] else 0}">{cells}</tr>'
    )


def _member_line(v: dict, face: int) -> str:
    """Under an ensemble's thumbnail: each member's score of that face, ``0.71|0.90``."""
    if "member_scores" not in v:
        return ""
    return "<br><small>" + "|".join(f"{row[face]:.2f}" for row in v["member_scores"]) + "</small>"


def _explained_score(v: dict, e: dict, members: list[str]) -> str:
    """The score under a heat map: the face's, or for an ensemble the member's whose heat map it is."""
    if "member_scores" not in v or "member" not in e:
        return f"{v['scores'][e['face']]:.3f}"
    return f"{v['member_scores'][e['member']][e['face']]:.3f} ({html.escape(members[e['member']])}; ensemble {v['scores'][e['face']]:.3f})"


def _score_plot(v: dict, width: int = 220, height: int = 64) -> str:
    """Inline SVG: each face's P(FAKE) (dots) against its frame number, the per-frame mean (line),
    the video's label (dashed red) and 0.5 (grey)."""
    if not v["scores"]:
        return '<span class="note">no face scores</span>'
    frames, scores = np.asarray(v["frames"], float), np.asarray(v["scores"], float)
    pad, top, bottom = 6, 4, 12
    last = max(1.0, frames.max())

    def x(f):
        return pad + (width - 2 * pad) * f / last

    def y(s):
        return top + (height - top - bottom) * (1.0 - s)

    per_frame = pd.Series(scores).groupby(frames).mean()
    line = " ".join(f"{x(f):.1f},{y(s):.1f}" for f, s in per_frame.items())
    dots = "".join(f'<circle cx="{x(f):.1f}" cy="{y(s):.1f}" r="2" fill="#333"/>' for f, s in zip(frames, scores))
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
        f"<title>P(FAKE) per face along the clip (frames 0 to {int(last)})</title>"
        f'<rect x="{pad}" y="{top}" width="{width - 2 * pad}" height="{height - top - bottom}" fill="#f6f6f6"/>'
        f'<line x1="{pad}" x2="{width - pad}" y1="{y(0.5):.1f}" y2="{y(0.5):.1f}" stroke="#bbb"/>'
        f'<line x1="{pad}" x2="{width - pad}" y1="{y(v["label"]):.1f}" y2="{y(v["label"]):.1f}" stroke="#c00" stroke-dasharray="4 3"/>'
        f'<polyline points="{line}" fill="none" stroke="#06a" stroke-width="1.5"/>{dots}'
        f'<text x="{pad}" y="{height - 1}" font-size="10" fill="#666">frame 0</text>'
        f'<text x="{width - pad}" y="{height - 1}" font-size="10" fill="#666" text-anchor="end">{int(last)}</text></svg>'
    )


def _histogram(videos: list[dict], bins: int = 20, width: int = 360, height: int = 150) -> str:
    """Inline SVG: histogram of the videos' P(FAKE), face-scored (blue) and fallback (orange) stacked."""
    labels = np.array([v["label"] for v in videos], float)
    fallback = np.array([bool(v["reason"]) for v in videos])
    edges = np.linspace(0, 1, bins + 1)
    scored, _ = np.histogram(labels[~fallback], edges)
    fell, _ = np.histogram(labels[fallback], edges)
    peak = max(1, int((scored + fell).max()) if len(labels) else 1)
    left, bottom, top = 28, 22, 8
    w = (width - left - 4) / bins
    h = height - bottom - top
    bars = []
    for i, (a, b) in enumerate(zip(scored, fell)):
        x0 = left + i * w
        for count, base, colour in ((a, 0, "#3b7dd8"), (b, a, "#f0a030")):
            if count:
                bars.append(
                    f'<rect x="{x0 + 0.5:.1f}" y="{top + h * (1 - (base + count) / peak):.1f}" width="{w - 1:.1f}" '
                    f'height="{h * count / peak:.1f}" fill="{colour}"><title>{count} videos in [{edges[i]:.2f}, {edges[i + 1]:.2f})</title></rect>'
                )
    ticks = "".join(
        f'<text x="{left + (width - left - 4) * t:.1f}" y="{height - 8}" font-size="10" text-anchor="middle">{t:g}</text>' for t in (0, 0.25, 0.5, 0.75, 1)
    )
    return (
        f'<svg width="{width}" height="{height + 14}" viewBox="0 0 {width} {height + 14}" role="img" id="histogram">'
        f"<title>Histogram of P(FAKE)</title>{''.join(bars)}"
        f'<line x1="{left}" x2="{width - 4}" y1="{top + h}" y2="{top + h}" stroke="#333"/>{ticks}'
        f'<text x="2" y="{top + 8}" font-size="10">{peak}</text><text x="2" y="{top + h}" font-size="10">0</text>'
        f'<text x="{left}" y="{height + 10}" font-size="11">P(FAKE) per video: <tspan fill="#3b7dd8">scored</tspan>, '
        f'<tspan fill="#f0a030">fallback</tspan></text></svg>'
    )

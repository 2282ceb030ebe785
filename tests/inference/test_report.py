"""The HTML report: built from a real predict run, opened in a real headless browser, checked against
the submission; the evaluation section; the notebook gallery; the cap on videos with images."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dfd_kit.cli import app
from dfd_kit.inference.predict import FaceScores, Summary, VideoResult, predict_folder
from dfd_kit.inference.report import MAX_THUMBS, ReportBuilder, data_path, gallery_html, load

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.fixture(scope="module")
def run(demo_videos, predictor, tmp_path_factory):
    """The demo folder (two astronaut clips, a faceless and a corrupt one) predicted with a report
    explaining the top face of each video, then evaluated against its metadata into the same report."""
    work = tmp_path_factory.mktemp("report")
    summary = predict_folder(
        demo_videos,
        work / "submission.csv",
        sample_submission=demo_videos / "sample_submission.csv",
        predictor=predictor,
        report=work / "report.html",
        explain=1,
        progress=False,
    )
    result = CliRunner().invoke(
        app, ["evaluate", str(summary.out), str(demo_videos / "metadata.json"), "--report", str(summary.report_path)]
    )
    assert result.exit_code == 0, result.output
    return summary


@pytest.mark.slow
def test_report_holds_every_row_and_drops_the_crops(run):
    submission = pd.read_csv(run.out).set_index("filename")["label"]
    data = load(run.report_path)
    assert data_path(run.report_path).is_file() and run.report_path.suffix == ".html"
    assert {v["filename"]: v["label"] for v in data["videos"]} == submission.to_dict()
    by_name = {v["filename"]: v for v in data["videos"]}
    assert by_name["corrupt.mp4"]["reason"].startswith("DecodeError") and not by_name["corrupt.mp4"]["thumbs"]
    assert data["fallbacks"] == {"DecodeError": 1, "NoFaceError": 1}
    for name in ("real_astronaut.mp4", "fake_astronaut.mp4"):
        v = by_name[name]
        assert len(v["scores"]) == len(v["frames"]) == v["n_faces"] >= 6
        assert len(v["thumbs"]) == min(MAX_THUMBS, v["n_faces"]) and len(v["explained"]) == 1
        assert v["scores"][v["explained"][0]["face"]] == max(v["scores"])  # the highest-scoring face
        assert v["frames"] == sorted(v["frames"]) and max(v["frames"]) < 30  # video frame numbers of a 30-frame clip
    assert all(r.faces is None for r in run.results)  # images made, crops let go
    assert data["settings"]["rule"] == "mean" and data["settings"]["config"]["input_size"] == 96


def test_no_per_face_data_without_a_report(demo_videos, predictor, tmp_path):
    summary = predict_folder(demo_videos, tmp_path / "s.csv", predictor=predictor, progress=False)
    assert summary.report_path is None and all(r.faces is None for r in summary.results)
    kept = predictor.predict_video(demo_videos / "real_astronaut.mp4", keep_faces=True).faces
    assert kept.crops.shape == (len(kept.scores), 96, 96, 3) and kept.crops.dtype == np.uint8
    assert kept.frames.dtype == np.int64 and kept.scores.dtype == np.float32


def test_evaluation_section(run, demo_videos):
    data = load(run.report_path)
    ev = data["evaluation"]
    assert ev["metrics"]["videos"] == 4 and ev["truth"]["fake_astronaut.mp4"] == 1
    assert base64.b64decode(ev["plot"])[:8] == b"\x89PNG\r\n\x1a\n"
    worst = ev["worst"]
    assert [w["loss"] for w in worst] == sorted((w["loss"] for w in worst), reverse=True)
    # evaluating again rewrites the section instead of adding a second one
    CliRunner().invoke(app, ["evaluate", str(run.out), str(demo_videos / "metadata.json"), "--report", str(run.report_path)])
    page = run.report_path.read_text()
    assert page.count("<h2>Evaluation</h2>") == 1 and "Worst-scored labelled videos" in page


def test_evaluate_needs_the_reports_data(run, demo_videos, tmp_path):
    result = CliRunner().invoke(app, ["evaluate", str(run.out), str(demo_videos / "metadata.json"), "--report", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and "report data not found" in result.output


def test_evaluating_another_submission_warns(run, demo_videos, tmp_path, caplog):
    other = tmp_path / "other.csv"
    pd.read_csv(run.out).assign(label=lambda t: 1 - t["label"]).to_csv(other, index=False)
    report = tmp_path / "r.html"
    shutil.copy(run.report_path, report)
    shutil.copy(data_path(run.report_path), data_path(report))
    result = CliRunner().invoke(app, ["evaluate", str(other), str(demo_videos / "metadata.json"), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "2 videos have another P(FAKE) in the submission" in caplog.text  # the astronauts; 1 - 0.5 is 0.5


def test_gallery_shows_the_most_suspicious_videos(run):
    data = load(run.report_path)
    page = gallery_html(data, 2)
    shown = re.findall(r'data-label="([^"]+)"', page)
    assert [float(x) for x in shown] == sorted((v["label"] for v in data["videos"]), reverse=True)[:2]
    assert "<script" not in page and "dfd-report" in page


def _fake_result(name: str, label: float, rng) -> VideoResult:
    crops = rng.integers(0, 255, (4, 96, 96, 3), dtype=np.uint8)
    faces = FaceScores(crops, np.array([0, 5, 10, 15]), np.full(4, label, np.float32))
    return VideoResult(name, label, None, 4, 4, {}, faces)


def test_only_the_most_suspicious_videos_keep_images(predictor, tmp_path):
    rng = np.random.default_rng(0)
    builder = ReportBuilder(predictor, max_videos=2)
    for k, label in enumerate([0.2, 0.9, 0.1, 0.6, 0.4]):
        builder.add(_fake_result(f"v{k}.mp4", label, rng))
    with_images = {r["filename"] for r in builder.records if r["thumbs"]}
    assert with_images == {"v1.mp4", "v3.mp4"}  # 0.9 and 0.6
    assert all(len(r["scores"]) == 4 for r in builder.records)  # every row keeps its scores
    path = builder.write(tmp_path / "r.html", Summary(tmp_path / "s.csv", 5, {}, {}, 1.0, "w", []))
    page = path.read_text()
    assert "Face images are kept for the 2 videos with the highest P(FAKE)" in page and page.count("data:image/jpeg") == 8


PROBE = """<script>
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var decoded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var filter = document.getElementById('filter');
  filter.value = 'astronaut';
  filter.dispatchEvent(new Event('input'));
  var filtered = document.getElementById('count').textContent;
  filter.value = '';
  filter.dispatchEvent(new Event('input'));
  var thumb = document.querySelector('#videos .faces img').getBoundingClientRect();
  var probe = document.createElement('div');
  probe.id = 'probe';
  probe.dataset.images = images.length;
  probe.dataset.decoded = decoded;
  probe.dataset.filtered = filtered;
  probe.dataset.thumb = JSON.stringify([thumb.left + window.scrollX, thumb.top + window.scrollY, thumb.width, thumb.height]);
  document.body.appendChild(probe);
  console.log('probe-done');
});
</script></body>"""


@pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (apt-get install chromium; `make test` installs it where apt-get exists)")
def test_report_in_a_headless_browser(run, tmp_path):
    page = tmp_path / "probed.html"
    page.write_text(run.report_path.read_text().replace("</body>", PROBE))
    # the same window for both runs, so that the probe's layout is the screenshot's
    common = [BROWSER, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--virtual-time-budget=5000", "--window-size=1400,2200"]
    dom = subprocess.run(
        [*common, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert any("probe-done" in line for line in console), dom.stderr[-2000:]  # the console is read, and the probe ran
    assert [line for line in console if "probe-done" not in line] == []  # no error, no other console output

    probe = re.search(r'<div id="probe" ([^>]*)>', dom.stdout).group(1)
    attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', probe))
    data = load(run.report_path)
    images = sum(len(v["thumbs"]) + 2 * len(v["explained"]) for v in data["videos"]) + 1  # + the evaluation plot
    assert int(attrs["images"]) == images and int(attrs["decoded"]) == images
    assert attrs["filtered"] == "2 of 4 videos"  # the filter control works

    # one row per video, sorted by P(FAKE), with the submission's numbers
    rows = re.findall(r'<tr id="videos-[^"]*" data-name="([^"]*)" data-label="([^"]*)"[^>]*>(.*?)</tr>', dom.stdout, re.S)
    submission = pd.read_csv(run.out).set_index("filename")["label"]
    assert sorted(name for name, _, _ in rows) == sorted(submission.index)
    assert [float(label) for _, label, _ in rows] == sorted(submission, reverse=True)
    for name, label, cells in rows:
        assert float(label) == submission[name]
        assert f">{submission[name]:.3f}</div>" in cells  # the number a person reads
    assert re.search(r'<span id="count">4 of 4 videos</span>', dom.stdout)

    # the screenshot shows the first thumbnail where the browser laid it out, decoded as in the data
    shot = tmp_path / "shot.png"
    subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    image = cv2.imread(str(shot))[..., ::-1]
    assert image.shape == (2200, 1400, 3)
    x, y, w, h = (round(v) for v in json.loads(attrs["thumb"].replace("&quot;", '"')))
    assert (w, h) == (64, 64) and y + h <= 2200
    first = next(v for v in sorted(data["videos"], key=lambda v: -v["label"]) if v["thumbs"])
    thumb = cv2.imdecode(np.frombuffer(base64.b64decode(first["thumbs"][0]["jpeg"]), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    shown = image[y : y + h, x : x + w].astype(float)
    assert np.abs(shown - thumb).mean() < 12  # the thumbnail is on screen (rounded corners and resampling aside)
    assert np.abs(shown - 255).mean() > 40  # and it is not the white page

"""`dfd evaluate`: metrics equal scikit-learn's computed independently, baseline beside them, a PNG."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score
from typer.testing import CliRunner

from dfd_kit.cli import app
from dfd_kit.errors import InputError
from dfd_kit.training.evaluate import evaluate, read_labels


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """40 videos, 30 FAKE, noisy scores; the submission also has 2 unlabelled rows, misses 1 labelled video."""
    folder = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(0)
    names = [f"v{i:02d}.mp4" for i in range(40)]
    y = np.r_[np.ones(30, int), np.zeros(10, int)]
    p = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.25, 40), 0.01, 0.99)
    meta = {n: {"label": "FAKE" if t else "REAL", "split": "train", "original": None} for n, t in zip(names, y)}
    meta["missing.mp4"] = {"label": "REAL", "split": "train", "original": None}
    (folder / "metadata.json").write_text(json.dumps(meta))
    sub = pd.DataFrame({"filename": names + ["extra1.mp4", "extra2.mp4"], "label": np.r_[p, 0.5, 0.5]})
    sub.to_csv(folder / "submission.csv", index=False)
    return folder, y, p


def test_metrics_match_scikit_learn(scored, caplog):
    folder, y, p = scored
    result, table = evaluate(folder / "submission.csv", folder / "metadata.json", folder / "plot.png")
    assert result.videos == 40 and result.fake == 30 and len(table) == 40
    assert result.log_loss == pytest.approx(log_loss(y, p))
    assert result.auc == pytest.approx(roc_auc_score(y, p))
    assert result.accuracy == pytest.approx(np.mean((p >= 0.5) == y))
    assert result.prior == pytest.approx(0.75)
    assert result.prior_log_loss == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert result.half_log_loss == pytest.approx(math.log(2))
    assert "have no row in the submission" in caplog.text and "have no label" in caplog.text


def test_plot_is_a_png(scored):
    folder, _, _ = scored
    evaluate(folder / "submission.csv", folder / "metadata.json", folder / "roc.png")
    assert (folder / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_class_gives_nan_auc_not_an_error(tmp_path):
    (tmp_path / "metadata.json").write_text(json.dumps({"a.mp4": {"label": "FAKE"}, "b.mp4": {"label": "FAKE"}}))
    pd.DataFrame({"filename": ["a.mp4", "b.mp4"], "label": [0.9, 0.2]}).to_csv(tmp_path / "s.csv", index=False)
    result, _ = evaluate(tmp_path / "s.csv", tmp_path / "metadata.json", tmp_path / "p.png")
    assert math.isnan(result.auc) and result.log_loss == pytest.approx(log_loss([1, 1], [0.9, 0.2], labels=[0, 1]))


def test_bad_inputs_raise_input_errors(tmp_path):
    (tmp_path / "metadata.json").write_text(json.dumps({"a.mp4": {"label": "MAYBE"}}))
    with pytest.raises(InputError, match="REAL or FAKE"):
        read_labels(tmp_path / "metadata.json")
    (tmp_path / "m2.json").write_text(json.dumps({"a.mp4": {"label": "REAL"}}))
    pd.DataFrame({"filename": ["zzz.mp4"], "label": [0.3]}).to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(InputError, match="no file name"):
        evaluate(tmp_path / "s.csv", tmp_path / "m2.json")


def test_cli_prints_the_metrics_and_writes_the_plot(scored):
    folder, y, p = scored
    res = CliRunner().invoke(app, ["evaluate", str(folder / "submission.csv"), str(folder / "metadata.json"), "--per-video"])
    assert res.exit_code == 0, res.output
    assert f"{log_loss(y, p):.4f}" in res.output and f"{roc_auc_score(y, p):.4f}" in res.output
    assert "v00.mp4" in res.output and (folder / "submission.png").is_file()


def test_metrics_per_source():
    from dfd_kit.training.evaluate import by_source

    table = pd.DataFrame({
        "filename": ["ff_real_1.mp4", "ff_real_2.mp4", "ff_df_1.mp4", "ff_df_2.mp4", "dfd_1.mp4", "dfd_2.mp4"],
        "p": [0.1, 0.3, 0.8, 0.2, 0.6, 0.4],
        "y": [0, 0, 1, 1, 0, 0],
    })  # fmt: skip
    assert list(by_source(table, r"^ff_[a-z]+").index) == ["dfd_1.mp4", "dfd_2.mp4", "ff_df", "ff_real"]  # no match: the name
    rows = by_source(table, r"^(ff_[a-z]+|dfd)")
    assert rows.loc["ff_df", "videos"] == 2 and np.isnan(rows.loc["ff_df", "auc"])
    # the two fakes (0.8, 0.2) against the four reals (0.1, 0.3, 0.6, 0.4): 5 of 8 pairs ranked right
    assert rows.loc["ff_df", "auc_vs_rest"] == pytest.approx(5 / 8)
    # the DFD reals (0.6, 0.4) against the fakes: 0.4 < 0.8, 0.4 > 0.2, 0.6 < 0.8, 0.6 > 0.2 → 2 of 4
    assert rows.loc["dfd", "auc_vs_rest"] == pytest.approx(0.5)
    assert rows.loc["dfd", "mean_p"] == pytest.approx(0.5)

import pandas as pd
import pytest

from dfd_kit.errors import InputError
from dfd_kit.inference.submission import SubmissionWriter, list_videos, read_sample_submission


def test_rows_follow_expected_order_and_missing_get_prior(tmp_path):
    out = tmp_path / "sub.csv"
    w = SubmissionWriter(out, ["b.mp4", "a.mp4", "c.mp4"], prior=0.42)
    w.add("a.mp4", 0.9)
    w.add("b.mp4", 0.1, "reason")
    assert w.pending() == ["c.mp4"]
    w.close()
    df = pd.read_csv(out)
    assert df["filename"].tolist() == ["b.mp4", "a.mp4", "c.mp4"]
    assert df["label"].tolist() == [0.1, 0.9, 0.42]
    assert not w.partial.exists()
    assert list(tmp_path.iterdir()) == [out]


def test_resume_keeps_done_rows_and_ignores_a_torn_line(tmp_path):
    out = tmp_path / "sub.csv"
    w = SubmissionWriter(out, ["a.mp4", "b.mp4", "c.mp4"])
    w.add("a.mp4", 0.7)
    w._fh.write("b.mp4,0.3")  # a line cut short by a crash: no reason field, no newline
    w._fh.flush()
    w2 = SubmissionWriter(out, ["a.mp4", "b.mp4", "c.mp4"], resume=True)
    assert w2.labels == {"a.mp4": 0.7}
    assert w2.pending() == ["b.mp4", "c.mp4"]
    w2.add("b.mp4", 0.2)
    w2.add("c.mp4", 0.6)
    w2.close()
    assert pd.read_csv(out)["label"].tolist() == [0.7, 0.2, 0.6]


def test_rejects_unknown_and_bad_labels(tmp_path):
    w = SubmissionWriter(tmp_path / "s.csv", ["a.mp4"])
    with pytest.raises(KeyError):
        w.add("zzz.mp4", 0.5)
    with pytest.raises(ValueError):
        w.add("a.mp4", float("nan"))
    with pytest.raises(ValueError):
        w.add("a.mp4", 1.5)


def test_sample_submission_with_extra_columns(tmp_path):
    p = tmp_path / "sample_submission.csv"
    p.write_text("filename,label,extra\nz.mp4,0.5,x\na b.mp4,0.5,y\n")
    assert read_sample_submission(p) == ["z.mp4", "a b.mp4"]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,label\nz.mp4,0.5\n")
    with pytest.raises(InputError):
        read_sample_submission(bad)
    with pytest.raises(InputError):
        read_sample_submission(tmp_path / "missing.csv")


def test_list_videos(tmp_path):
    for n in ["b.mp4", "a.MP4", "notes.txt", "c.webm"]:
        (tmp_path / n).write_bytes(b"")
    assert list_videos(tmp_path) == ["a.MP4", "b.mp4", "c.webm"]
    with pytest.raises(InputError):
        list_videos(tmp_path / "nope")

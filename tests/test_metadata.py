import json

import pytest

from dfd_kit.errors import InputError
from dfd_kit.training.extract import folder_tasks
from dfd_kit.metadata import read_metadata


def _write(tmp_path, content) -> object:
    path = tmp_path / "metadata.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_valid_metadata(tmp_path):
    meta = {"a.mp4": {"label": "FAKE", "split": "train", "original": "b.mp4"}, "b.mp4": {"label": "REAL", "original": None}}
    assert read_metadata(_write(tmp_path, meta)) == meta


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "must map file names"),
        ({"a.mp4": "FAKE"}, "not an object"),
        ({"a.mp4": {"label": "fake"}}, "is not REAL or FAKE"),
        ({"a.mp4": {"split": "train"}}, "is not REAL or FAKE"),
        ({"a.mp4": {"label": "FAKE", "original": 3}}, "not a file name or null"),
    ],
)
def test_wrong_metadata_gets_a_clear_error(tmp_path, content, message):
    with pytest.raises(InputError, match=message):
        read_metadata(_write(tmp_path, content))


def test_extract_refuses_a_wrong_metadata_json(tmp_path):
    (tmp_path / "v.mp4").write_bytes(b"")
    _write(tmp_path, {"v.mp4": {"label": "MAYBE"}})
    with pytest.raises(InputError, match="metadata.json: 1 bad entries"):
        folder_tasks(tmp_path)
    with pytest.raises(InputError, match="metadata not found"):
        read_metadata(tmp_path / "nope.json")

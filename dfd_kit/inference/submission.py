"""The submission file: ``filename,label`` with one row per expected video, written atomically.

Rows are appended to ``<out>.partial`` as they are produced (flushed and fsync'd), so a run that is
killed can be resumed with ``resume=True``; :meth:`SubmissionWriter.close` writes every expected row,
in order, to a temporary file and renames it over ``out``. A row never goes missing: a video with no
result gets the prior.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from pathlib import Path

import pandas as pd

from ..errors import InputError

log = logging.getLogger(__name__)

__all__ = ["SubmissionWriter", "read_sample_submission", "list_videos", "VIDEO_SUFFIXES"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def list_videos(videos_dir: str | Path) -> list[str]:
    """Sorted file names of the videos directly inside ``videos_dir`` (symlinks included)."""
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise InputError(f"videos folder not found: {videos_dir}")
    return sorted(p.name for p in videos_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and not p.is_dir())


def read_sample_submission(path: str | Path) -> list[str]:
    """The ``filename`` column of a DFDC ``sample_submission.csv``, in order (extra columns ignored)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sample submission not found: {path}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {path}: {err}") from err
    if "filename" not in table.columns:
        raise InputError(f"{path} has no 'filename' column (columns: {list(table.columns)})")
    return table["filename"].tolist()


class SubmissionWriter:
    """Collect ``label`` = P(FAKE) per file name and write ``filename,label``.

    Args:
        out: final CSV path.
        filenames: the expected rows, in output order.
        prior: label written for any expected row that never got a result.
        resume: keep the rows already in ``<out>.partial`` instead of starting over.
    """

    def __init__(self, out: str | Path, filenames: list[str], prior: float = 0.5, resume: bool = False) -> None:
        self.out = Path(out)
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.filenames = list(filenames)
        self.prior = prior
        self._expected = set(self.filenames)
        self.labels: dict[str, float] = {}
        self.reasons: dict[str, str] = {}
        if resume and self.partial.is_file():
            self._load_partial()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.partial, "a" if resume else "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._fh)

    def _load_partial(self) -> None:
        with open(self.partial, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                if len(row) != 3 or row[0] not in self._expected:
                    continue
                try:
                    label = float(row[1])
                except ValueError:
                    continue
                if math.isfinite(label) and 0.0 <= label <= 1.0:
                    self.labels[row[0]] = label
                    if row[2]:
                        self.reasons[row[0]] = row[2]
        log.info("resuming: %d of %d rows already done in %s", len(self.labels), len(self.filenames), self.partial)

    def pending(self) -> list[str]:
        """Expected file names without a result yet, in output order, each once."""
        return list(dict.fromkeys(f for f in self.filenames if f not in self.labels))

    def add(self, filename: str, label: float, reason: str | None = None) -> None:
        """Record one video's result; ``reason`` says why a fallback value was used."""
        if filename not in self._expected:
            raise KeyError(f"{filename!r} is not an expected row")
        if not (math.isfinite(label) and 0.0 <= label <= 1.0):
            raise ValueError(f"label for {filename!r} must be finite and in [0, 1], got {label}")
        self.labels[filename] = float(label)
        if reason:
            self.reasons[filename] = reason
        self._csv.writerow([filename, repr(float(label)), reason or ""])
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> Path:
        """Write every expected row (missing ones get the prior) to ``out`` atomically; return ``out``."""
        self._fh.close()
        for name in self.pending():
            log.warning("no result for %s: writing the prior %.3f", name, self.prior)
            self.labels[name] = self.prior
            self.reasons.setdefault(name, "no result")
        tmp = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")
        pd.DataFrame({"filename": self.filenames, "label": [self.labels[f] for f in self.filenames]}).to_csv(tmp, index=False)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.out)
        self.partial.unlink(missing_ok=True)
        return self.out

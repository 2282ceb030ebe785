"""Read and check a DFDC ``metadata.json``: ``{"x.mp4": {"label": "FAKE"|"REAL", "split": ..., "original": "y.mp4"|null}}``."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InputError

__all__ = ["LABELS", "read_metadata"]

LABELS = ("REAL", "FAKE")


def read_metadata(path: str | Path) -> dict[str, dict]:
    """The entries of a DFDC ``metadata.json``, checked.

    Every entry must be an object with ``label`` REAL or FAKE; ``original``, when present, a file
    name or null. Raises :class:`~dfd_kit.errors.InputError` naming the file and the first bad entries.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"metadata not found: {path}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict):
        raise InputError(f"{path} must map file names to entries, got a {type(meta).__name__}")
    bad = []
    for name, entry in meta.items():
        if not isinstance(entry, dict):
            bad.append(f"{name!r}: not an object")
        elif entry.get("label") not in LABELS:
            bad.append(f"{name!r}: label {entry.get('label')!r} is not REAL or FAKE")
        elif not isinstance(entry.get("original"), (str, type(None))):
            bad.append(f"{name!r}: original {entry.get('original')!r} is not a file name or null")
    if bad:
        raise InputError(f"{path}: {len(bad)} bad entries, e.g. " + "; ".join(bad[:3]))
    return meta

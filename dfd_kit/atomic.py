"""Write a file so that it is either absent, old, or complete: never half-written.

The bytes go to ``<name>.partial`` beside the target and are renamed over it (``os.replace`` is
atomic on one file system). A process killed mid-write leaves only the ``.partial`` file, which
the next run may delete.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PARTIAL", "write_atomic"]

PARTIAL = ".partial"


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through ``<path>.partial`` and a rename, making ``path``'s folder
    if it is missing; return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + PARTIAL)
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return path

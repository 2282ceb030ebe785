"""The faces table: one row per face crop, the input of training.

:mod:`dfd_kit.training.extract` writes it (``faces.parquet``, :data:`FACE_COLUMNS`) and
:mod:`dfd_kit.training.crops` makes one from ready-cut crops; :mod:`dfd_kit.training.split` adds
``group`` and ``split``; :func:`read_table` reads one or more for training and calibration.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["FACE_COLUMNS", "read_table"]

#: the columns of ``faces.parquet``, in order (:func:`dfd_kit.training.extract.merge_parts`)
FACE_COLUMNS = [
    "video", "folder", "frame", "face", "x1", "y1", "x2", "y2", "crop_x1", "crop_y1", "crop_x2", "crop_y2",
    "prob", "label", "original", "path",
]  # fmt: skip


def read_table(*paths: str | Path) -> pd.DataFrame:
    """One or more split faces tables, concatenated, with every ``path`` made absolute.

    A table's relative ``path`` entries are relative to the table's folder (as :mod:`dfd_kit.training.extract`
    writes them); absolute ones (:mod:`dfd_kit.training.crops`) are kept.
    """
    parts = []
    for path in map(Path, paths):
        table = pd.read_parquet(path)
        missing = {"split", "label", "path", "folder", "video"} - set(table.columns)
        if missing:
            raise ValueError(f"{path} lacks columns {sorted(missing)}: run extraction, then split")
        root = path.resolve().parent
        parts.append(table.assign(path=[str(root / p) for p in table["path"]]))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

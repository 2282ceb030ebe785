"""Train/validation split that never separates a fake from its original.

DFDC fakes name their source clip in ``original``; a REAL video is its own group. Every row of a
group (all faces of the real clip and of every fake made from it) lands on the same side, so no
identity or source clip leaks from training into validation. Photos extracted with
``photos=True`` carry the person's identity in ``original``, so all photos of a person stay together.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_atomic

log = logging.getLogger(__name__)

__all__ = ["group_of", "split_table", "split_file"]


def group_of(table: pd.DataFrame, pattern: str | None = None) -> pd.Series:
    """The group key of every row: ``original`` where set, else the row's own ``video``.

    With ``pattern`` (a regular expression), the key is its first match in that name (the whole name
    where it does not match): ``^[a-z0-9]+`` groups ``obama_1.mp4`` with ``obama_2.mp4``, for clips
    whose names start with the person or the source they share.
    """
    key = table["original"].where(table["original"].notna() & (table["original"] != ""), table["video"]).astype(str)
    if pattern is None:
        return key
    matched = key.str.extract(f"({pattern})", expand=False)
    return matched.where(matched.notna() & (matched != ""), key)


def split_table(table: pd.DataFrame, val_fraction: float = 0.2, seed: int = 0, pattern: str | None = None,
                groups: pd.Series | None = None) -> pd.DataFrame:  # fmt: skip
    """Add a ``group`` column and a ``split`` column (``"train"`` / ``"val"``), split by group.

    Args:
        table: a faces (or videos) table with ``video`` and ``original`` columns.
        val_fraction: share of the groups that go to validation (at least one group when there
            are two or more).
        seed: seed of the group shuffle (same seed, same table: same split).
        pattern: coarser groups by a regular expression over the names (see :func:`group_of`).
        groups: the groups themselves, one per row (a dataset's own, e.g. FF++ id ranges); they
            replace :func:`group_of`.

    Returns:
        A copy of ``table`` with ``group`` and ``split``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    from sklearn.model_selection import GroupShuffleSplit

    out = table.copy()
    out["group"] = group_of(out, pattern) if groups is None else np.asarray(groups, str)
    out["split"] = "train"
    if out["group"].nunique() < 2:
        log.warning("only one group: everything is training data, validation is empty")
        return out
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    _, val_idx = next(splitter.split(np.zeros(len(out)), groups=out["group"]))
    out.iloc[val_idx, out.columns.get_loc("split")] = "val"
    counts = out.groupby("split")["group"].nunique().to_dict()
    log.info("split: %s groups, %s rows", counts, out["split"].value_counts().to_dict())
    return out


def split_file(path: str | Path, val_fraction: float = 0.2, seed: int = 0, pattern: str | None = None) -> pd.DataFrame:
    """:func:`split_table` on a Parquet table, written back in place (atomically)."""
    path = Path(path)
    table = split_table(pd.read_parquet(path), val_fraction, seed, pattern)
    write_atomic(path, table.to_parquet(index=False))
    return table

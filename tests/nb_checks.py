"""Checks shared by the notebook and bundle tests: a submission's rows, an executed notebook's text."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd


def outputs_text(nb) -> str:
    """Every stream and text/plain output of an executed notebook, joined."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text") or out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def check_submission(path: Path, sample_submission: Path) -> pd.DataFrame:
    """One finite label in [0, 1] per row of the sample submission, in its order; indexed by filename."""
    sub = pd.read_csv(path)
    assert list(sub.columns) == ["filename", "label"]
    assert sub["filename"].tolist() == pd.read_csv(sample_submission)["filename"].tolist()
    assert all(math.isfinite(x) and 0.0 <= x <= 1.0 for x in sub["label"])
    return sub.set_index("filename")

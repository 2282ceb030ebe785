"""Face scores of one video → one probability of FAKE.

Rules are pure functions of a 1-D score array, registered by name in :data:`RULES`:

- ``mean``: the plain average (the original solution).
- ``median``: robust to a few wild faces.
- ``confident``: the DFDC winner's ``confident_strategy``: if enough faces are confidently fake,
  average those; else if nearly all are confidently real, average those; else average all.

:func:`aggregate` drops non-finite scores, applies the rule and clips to ``clip`` (log loss punishes
a confident mistake without bound, so the clip is the cheapest insurance there is).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import NoScoreError

__all__ = ["RULES", "aggregate", "confident", "mean", "median"]


def mean(scores: np.ndarray) -> float:
    """Average of the face scores."""
    return float(np.mean(scores))


def median(scores: np.ndarray) -> float:
    """Median of the face scores."""
    return float(np.median(scores))


def confident(
    scores: np.ndarray,
    fake_threshold: float = 0.8,
    min_fake_fraction: float = 0.4,
    real_threshold: float = 0.2,
    min_real_fraction: float = 0.9,
) -> float:
    """The DFDC winner's rule, with its counts made relative to the number of faces.

    If more than ``min_fake_fraction`` of the faces score above ``fake_threshold``, average those;
    else if more than ``min_real_fraction`` score below ``real_threshold``, average those; else
    average all. (The original used ``count > n // 2.5 and count > 11`` for 32 frames.)
    """
    n = len(scores)
    fake = scores[scores > fake_threshold]
    if len(fake) > min_fake_fraction * n:
        return float(np.mean(fake))
    real = scores[scores < real_threshold]
    if len(real) > min_real_fraction * n:
        return float(np.mean(real))
    return float(np.mean(scores))


RULES: dict[str, Callable[[np.ndarray], float]] = {"mean": mean, "median": median, "confident": confident}


def aggregate(scores: np.ndarray, rule: str = "mean", clip: tuple[float, float] = (0.01, 0.99)) -> float:
    """One probability of FAKE for a video.

    Args:
        scores: float ``[K]`` face scores in ``[0, 1]``; NaN and inf are dropped.
        rule: a key of :data:`RULES`.
        clip: ``(low, high)`` bounds for the result, ``0 <= low <= high <= 1``.

    Returns:
        A float in ``[low, high]``.

    Raises:
        NoScoreError: no finite score is left.
    """
    if rule not in RULES:
        raise ValueError(f"unknown aggregation rule {rule!r}; choose one of {sorted(RULES)}")
    low, high = clip
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"clip must satisfy 0 <= low <= high <= 1, got {clip}")
    scores = np.asarray(scores, dtype=np.float64).ravel()
    scores = np.clip(scores[np.isfinite(scores)], 0.0, 1.0)
    if not len(scores):
        raise NoScoreError("no finite face score to aggregate")
    return float(np.clip(RULES[rule](scores), low, high))

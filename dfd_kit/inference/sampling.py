"""Which frames of a clip to look at.

``sample_indices(n_total, n)`` returns sorted, unique 0-based frame indices. Policies are registered
by name in :data:`POLICIES`, so a config or CLI flag can pick one.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["POLICIES", "sample_indices"]


def _even(n_total: int, n: int) -> np.ndarray:
    """``n`` indices spread evenly over the whole clip, first and last frame included."""
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(np.int64))


def _head(n_total: int, n: int) -> np.ndarray:
    """The first ``n`` frames: cheapest to decode, blind to the rest of the clip."""
    return np.arange(n, dtype=np.int64)


def _centered(n_total: int, n: int) -> np.ndarray:
    """``n`` evenly spaced indices at the middles of ``n`` equal segments (skips the first/last frame)."""
    return np.unique(((np.arange(n) + 0.5) * n_total / n).astype(np.int64))


POLICIES: dict[str, Callable[[int, int], np.ndarray]] = {
    "even": _even,
    "head": _head,
    "centered": _centered,
}


def sample_indices(n_total: int, n: int = 17, policy: str = "even") -> np.ndarray:
    """Frame indices to decode from a clip of ``n_total`` frames.

    Args:
        n_total: number of frames in the clip (0 or less gives an empty array).
        n: number of frames wanted; every frame is returned when ``n >= n_total``.
        policy: a key of :data:`POLICIES` (``"even"`` spreads them over the whole clip).

    Returns:
        int64 array of shape ``[min(n, n_total)]`` (fewer if rounding merges indices), sorted,
        unique, each in ``[0, n_total)``.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown sampling policy {policy!r}; choose one of {sorted(POLICIES)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if n_total <= 0:
        return np.zeros(0, dtype=np.int64)
    if n >= n_total:
        return np.arange(n_total, dtype=np.int64)
    return POLICIES[policy](n_total, n)

"""A wall-clock budget for a folder of videos: fewer frames when time runs short, then the prior.

:class:`TimeBudget` learns the cost of a video from the ones already done (seconds per sampled
frame, from wall time between finished videos, so overlap and overheads are included) and, before
each video, grants the most frames that still let every remaining video fit before the deadline.
When fewer than ``min_frames`` would fit, it grants 0: the caller writes the prior.
"""

from __future__ import annotations

import math
import time

__all__ = ["TimeBudget"]


class TimeBudget:
    """Frames to spend on the next video so that the whole folder ends before ``seconds``.

    Args:
        seconds: the budget for the whole run, in seconds; ``None`` means no limit.
        frames: frames per video when time is plentiful.
        min_frames: below this many frames a video is not worth decoding: grant 0 (use the prior).
        reserve: seconds kept back at the end for writing the submission.
        safety: fraction of the remaining time that is planned for (the rest absorbs noise).
        clock: a monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        seconds: float | None,
        frames: int = 17,
        min_frames: int = 2,
        reserve: float = 5.0,
        safety: float = 0.85,
        clock=time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.frames = frames
        self.min_frames = min(min_frames, frames)
        self.reserve = reserve
        self.safety = safety
        self.clock = clock
        self.start = clock()
        self._last = self.start
        self._spent = 0.0
        self._frames_done = 0

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    @property
    def left(self) -> float:
        """Seconds left before the deadline minus the reserve (``inf`` without a budget)."""
        if self.seconds is None:
            return math.inf
        return self.seconds - self.reserve - self.elapsed

    def seconds_per_frame(self) -> float | None:
        """Measured wall seconds per sampled frame so far (``None`` before the first video)."""
        if not self._frames_done:
            return None
        return self._spent / self._frames_done

    def grant(self, videos_left: int) -> int:
        """Frames for the next video, given ``videos_left`` videos (this one included) still to do."""
        if self.seconds is None:
            return self.frames
        left = self.left
        if left <= 0:
            return 0
        per_frame = self.seconds_per_frame()
        if per_frame is None:
            return self.frames
        per_video = self.safety * left / max(videos_left, 1)
        n = min(self.frames, int(per_video / max(per_frame, 1e-6)))
        return n if n >= self.min_frames else 0

    def record(self, frames: int) -> None:
        """Note that a video using ``frames`` frames just finished (0 frames: a fallback row)."""
        now = self.clock()
        if frames > 0:
            self._spent += now - self._last
            self._frames_done += frames
        self._last = now

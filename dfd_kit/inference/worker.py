"""Decode and face detection in separate, restartable processes.

Each worker holds the torch side of the pipeline (decoder, MTCNN) and sends back only the face crops
(``[K, S, S, 3]`` uint8, a few MB), so the parent keeps TensorFlow to itself. With one worker per
core, decoding and detection of the next videos run on every core while the parent classifies the
current one. A file that hangs or crashes a decoder takes down only its worker: pebble kills it on
timeout, replaces it, the video gets the prior with the reason, and the other workers carry on.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
from concurrent.futures import Future
from pathlib import Path

from pebble import ProcessPool

from ..device import cpu_cores

__all__ = ["FaceWorker"]

_finder = None


def _init(finder: str, finder_args: dict, threads: int) -> None:
    import cv2
    import torch

    from ..console import is_verbose, setup

    setup(is_verbose())  # the parent's choice, inherited through the environment

    global _finder
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    module, name = finder.split(":")
    _finder = getattr(importlib.import_module(module), name)(**finder_args, threads=threads)


def _find(path: str, n_frames: int, policy: str):
    return _finder(path, n_frames, policy)


class FaceWorker:
    """Worker processes running :class:`~dfd_kit.inference.predict.FaceFinder` on the videos they are given.

    Args:
        finder_args: keyword arguments of the face finder.
        finder: ``"module:Class"`` of the face finder each worker builds (a class taking
            ``finder_args`` and ``threads`` whose instances are called as ``(path, n_frames, policy)``).
        workers: worker processes (videos decoded and searched for faces at once).
        threads: intra-op threads of each worker: torch (MTCNN), OpenCV and FFmpeg decoding;
            ``None``: the cores divided among the workers, at least 1. Idle OpenMP threads sleep
            (``OMP_WAIT_POLICY=PASSIVE`` unless the environment says otherwise).

    ``submit`` returns a future whose ``result()`` is a :class:`~dfd_kit.inference.predict.FoundFaces`, or raises
    the stage's error, ``concurrent.futures.TimeoutError`` after ``timeout`` seconds of work (counted
    from when a worker takes the video up), or ``pebble.ProcessExpired`` if its worker died.
    """

    def __init__(
        self, finder_args: dict, finder: str = "dfd_kit.inference.predict:FaceFinder", workers: int = 1, threads: int | None = None
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.threads = max(1, cpu_cores() // workers) if threads is None else threads
        # OpenMP threads that wait by spinning take the cores the other workers need: on a busy
        # 2-core machine MTCNN on 2 spinning threads took 7x the time of 1 thread, 1.1x when they sleep.
        # Set before the workers start (they inherit it; OpenMP reads it when torch loads).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self._pool = ProcessPool(
            max_workers=workers,
            initializer=_init,
            initargs=(finder, finder_args, self.threads),
            context=multiprocessing.get_context("spawn"),
        )

    def submit(self, path: str | Path, n_frames: int, policy: str, timeout: float | None) -> Future:
        return self._pool.schedule(_find, args=(str(path), n_frames, policy), timeout=timeout)

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()

    def __enter__(self) -> "FaceWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Decode and face detection in a separate, restartable process.

The worker holds the torch side of the pipeline (decoder, MTCNN) and sends back only the face crops
(``[K, S, S, 3]`` uint8, a few MB), so the parent keeps TensorFlow to itself and the two halves run on
different cores at once. A file that hangs or crashes a decoder takes down only the worker: pebble
kills it on timeout, replaces it, and the video gets the prior with the reason.
"""

from __future__ import annotations

import importlib
import multiprocessing
from concurrent.futures import Future
from pathlib import Path

from pebble import ProcessPool

__all__ = ["FaceWorker"]

_finder = None


def _init(finder: str, finder_args: dict, torch_threads: int) -> None:
    import torch

    from ..console import is_verbose, setup

    setup(is_verbose())  # the parent's choice, inherited through the environment

    global _finder
    torch.set_num_threads(torch_threads)
    module, name = finder.split(":")
    _finder = getattr(importlib.import_module(module), name)(**finder_args)


def _find(path: str, n_frames: int, policy: str):
    return _finder(path, n_frames, policy)


class FaceWorker:
    """One worker process running :class:`~dfd_kit.inference.predict.FaceFinder` on the videos it is given.

    Args:
        finder_args: keyword arguments of the face finder.
        finder: ``"module:Class"`` of the face finder the worker builds (a class taking
            ``finder_args`` whose instances are called as ``(path, n_frames, policy)``).
        torch_threads: intra-op threads for MTCNN in the worker.

    ``submit`` returns a future whose ``result()`` is a :class:`~dfd_kit.inference.predict.FoundFaces`, or raises
    the stage's error, ``concurrent.futures.TimeoutError`` after ``timeout`` seconds of work, or
    ``pebble.ProcessExpired`` if the worker died.
    """

    def __init__(self, finder_args: dict, finder: str = "dfd_kit.inference.predict:FaceFinder", torch_threads: int = 1) -> None:
        self._pool = ProcessPool(
            max_workers=1,
            initializer=_init,
            initargs=(finder, finder_args, torch_threads),
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

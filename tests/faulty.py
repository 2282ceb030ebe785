"""Fault injection for the worker tests: a face finder that hangs or dies on chosen file names.

Loaded by name inside the spawned worker (``finder="faulty:FaultyFinder"``); everything else goes
to the real :class:`dfd_kit.inference.predict.FaceFinder`. A file named ``threads*`` fails with a
reason that tells the worker's thread settings.
"""

import os
import time
from pathlib import Path

from dfd_kit.errors import NoFaceError
from dfd_kit.inference.predict import FaceFinder


class FaultyFinder(FaceFinder):
    def __init__(self, *args, threads: int = 0, **kwargs):
        super().__init__(*args, threads=threads, **kwargs)
        self.threads = threads

    def __call__(self, path, n_frames, policy="even"):
        name = Path(path).name
        if name.startswith("hang"):
            time.sleep(3600)
        if name.startswith("crash"):
            os.abort()  # SIGABRT: the worker process dies as a native crash would take it down
        if name.startswith("threads"):
            import cv2
            import torch

            omp = os.environ.get("OMP_WAIT_POLICY")
            raise NoFaceError(f"torch={torch.get_num_threads()} opencv={cv2.getNumThreads()} ffmpeg={self.threads} omp={omp}")
        return super().__call__(path, n_frames, policy)

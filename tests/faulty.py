"""Fault injection for the worker tests: a face finder that hangs or dies on chosen file names.

Loaded by name inside the spawned worker (``finder="faulty:FaultyFinder"``); everything else goes
to the real :class:`dfd_kit.inference.predict.FaceFinder`.
"""

import os
import time
from pathlib import Path

from dfd_kit.inference.predict import FaceFinder


class FaultyFinder(FaceFinder):
    def __call__(self, path, n_frames, policy="even"):
        name = Path(path).name
        if name.startswith("hang"):
            time.sleep(3600)
        if name.startswith("crash"):
            os.abort()  # SIGABRT: the worker process dies as a native crash would take it down
        return super().__call__(path, n_frames, policy)

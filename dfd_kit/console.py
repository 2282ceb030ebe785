"""What a person sees in the terminal: dfd_kit's own log lines, without third-party start-up noise.

By default TensorFlow's C++ start-up lines (oneDNN, absl), Python warnings of the frameworks and
their INFO logs (matplotlib's font cache) are kept out; ``verbose`` lets everything through. The
choice is kept in ``$DFD_KIT_VERBOSE`` so that the decode worker, a spawned process, makes the same
one (:mod:`dfd_kit.inference.worker` calls :func:`setup` with :func:`is_verbose`).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator

__all__ = ["FORMAT", "setup", "is_verbose", "quiet_libraries", "stderr_silenced"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ENV = "DFD_KIT_VERBOSE"
# Frameworks whose Python warnings are start-up or deprecation chatter in dfd_kit's use of them.
NOISY_MODULES = r"(keras|tensorflow|tf2onnx|onnx|onnxruntime|torch|torchvision|facenet_pytorch|absl|google|h5py)(\.|$)"


def is_verbose() -> bool:
    """True when ``$DFD_KIT_VERBOSE`` is ``1`` (set by ``setup(verbose=True)`` or by the user)."""
    return os.environ.get(ENV, "0") == "1"


def setup(verbose: bool = False) -> None:
    """Log dfd_kit at INFO (everything at DEBUG with ``verbose``) in one format; quiet the frameworks.

    Call before TensorFlow is imported: its C++ log level is read from the environment at import.
    """
    os.environ[ENV] = "1" if verbose else "0"
    # a no-op where logging is set up already (a notebook, pytest): only dfd_kit's level changes there
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format=FORMAT, datefmt="%H:%M:%S")
    logging.getLogger("dfd_kit").setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        quiet_libraries()


def quiet_libraries() -> None:
    """TensorFlow's C++ logs to errors (unless ``$TF_CPP_MIN_LOG_LEVEL`` says otherwise), absl's and
    the frameworks' Python logs to errors, their warnings off."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", module=NOISY_MODULES)
    for name in ("absl", "tensorflow", "matplotlib", "h5py", "tf2onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "absl.logging" in sys.modules:
        sys.modules["absl.logging"].set_verbosity("error")


@contextmanager
def stderr_silenced(silence: bool = True) -> Iterator[None]:
    """Send file descriptor 2 to ``/dev/null`` inside the block (when ``silence``).

    TensorFlow 2.16+ prints its oneDNN and absl start-up lines from C++ at import time, before its
    own log level applies; only the file descriptor can be closed to them.
    """
    if not silence:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)

"""Resolve ``device="auto"|"cpu"|"cuda"`` once, at the top, and hand the answer down."""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


def cuda_available() -> bool:
    """True when torch sees a CUDA device (torch is imported first: see :func:`import_tensorflow`)."""
    import torch

    return bool(torch.cuda.is_available())


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which a container's CPU set limits), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity masks on this platform
        return max(1, os.cpu_count() or 1)


def resolve_device(device: str = "auto") -> str:
    """Map ``"auto"`` to ``"cuda"`` when a GPU is usable, else ``"cpu"``; check explicit choices."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise RuntimeError("device='cuda' was asked for but torch sees no CUDA device")
    return device


def import_tensorflow():
    """Import TensorFlow the safe way and return the module.

    torch and torchvision are imported first: importing TensorFlow before torchvision (which
    facenet-pytorch loads) in one process has segfaulted, even with torch already loaded.
    GPU memory growth is switched on before anything allocates, so TF shares the GPU with torch
    and DALI instead of taking all of it. Unless verbose (:func:`dfd_kit.console.is_verbose`), its
    start-up lines and framework warnings are kept out of the output (:mod:`dfd_kit.console`).
    """
    import torch  # noqa: F401  (must load before TensorFlow)
    import torchvision  # noqa: F401  (must load before TensorFlow)

    from .console import is_verbose, quiet_libraries, stderr_silenced

    quiet = not is_verbose()
    if quiet:
        quiet_libraries()
    with stderr_silenced("tensorflow" not in sys.modules and quiet):
        import tensorflow as tf
    if quiet:
        quiet_libraries()  # again, now that absl's Python logging is loaded

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as err:  # raised once TF has already initialised the device
            log.debug("memory growth not set on %s: %s", gpu.name, err)
    return tf

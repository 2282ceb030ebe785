"""Extraction spread over a Ray cluster: one task per group of videos, the same on-disk format.

Each task builds a decoder and a face sampler once and runs :func:`dfd_kit.training.extract.extract_one` on
its videos, which writes the crops and the per-video part files exactly as the local path does. The
driver only collects the parts; :func:`dfd_kit.training.dispatch.extract` then merges them into one table.
``out_dir`` must be on storage that every node sees (NFS, a mounted bucket) for a real cluster.

Tasks ask Ray for a fraction of a GPU when the cluster has GPUs (decoding with DALI and MTCNN on
CUDA), otherwise one CPU each. ``address="local"`` starts a Ray instance on this machine.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .extract import extract_one

log = logging.getLogger(__name__)

__all__ = ["run_on_ray"]


def _extract_group(tasks: list, out_dir: Path, settings, device: str, torch_threads: int) -> list[dict]:
    import torch

    torch.set_num_threads(torch_threads)
    finder = settings.finder(device)
    return [extract_one(task, out_dir, settings, finder) for task in tasks]


def run_on_ray(
    tasks: list, out_dir: Path, settings, address: str = "local", group_size: int = 8, gpus_per_task: float = 0.25, on_part=None
) -> list[dict]:
    """Run ``tasks`` (:class:`dfd_kit.training.extract.Task`) as Ray tasks of ``group_size`` videos each.

    Args:
        tasks: the videos still to do.
        out_dir: the extraction folder (shared storage on a cluster).
        settings: :class:`dfd_kit.training.extract.ExtractSettings`.
        address: a Ray cluster address (``"auto"``, ``"ray://host:10001"``) or ``"local"``.
        group_size: videos per Ray task (amortises building MTCNN in the task).
        gpus_per_task: GPU share each task asks for when the cluster has GPUs.
        on_part: called with each video's part as groups finish (progress, logging).

    Returns:
        The parts of all ``tasks`` (``status`` ``"ok"`` or ``"failed"``).
    """
    import ray

    started = not ray.is_initialized()
    if started:
        if address == "local":
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    try:
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        device = "cuda" if has_gpu else "cpu"
        remote = ray.remote(num_cpus=1, num_gpus=gpus_per_task if has_gpu else 0)(_extract_group)
        log.info("ray: %d videos in groups of %d on %s (%s)", len(tasks), group_size, ray.cluster_resources(), device)
        groups = [tasks[i : i + group_size] for i in range(0, len(tasks), group_size)]
        pending = [remote.remote(g, Path(out_dir), settings, device, 1) for g in groups]
        parts: list[dict] = []
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for group_parts in ray.get(done):
                for part in group_parts:
                    if on_part is not None:
                        on_part(part)
                parts.extend(group_parts)
        return parts
    finally:
        if started:
            ray.shutdown()

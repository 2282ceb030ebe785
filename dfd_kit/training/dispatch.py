"""An extraction run: every video not done yet, in this process, in a process pool or on a Ray cluster.

:func:`extract` takes the videos whose part file is missing, runs
:func:`~dfd_kit.training.extract.extract_one` on each of them, in this process (``workers=0``), in
a process pool (``workers`` processes, one torch thread each, so both cores of a small machine
work) or as Ray tasks (:mod:`dfd_kit.training.ray_extract`), then merges all parts of their
folders into the two tables (:func:`~dfd_kit.training.extract.merge_parts`). Every way writes the
same files, so runs mix freely and resume where any of them stopped.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import pandas as pd

from ..atomic import PARTIAL
from ..errors import InputError
from .extract import ExtractSettings, Task, extract_one, folder_tasks, merge_parts, part_path, photo_tasks
from .ray_extract import run_on_ray

log = logging.getLogger(__name__)

__all__ = ["extract", "extract_folders"]


_WORKER: dict = {}


def _init_worker(settings: ExtractSettings, torch_threads: int) -> None:
    """Process-pool initializer: one decoder and one face sampler per worker process."""
    import torch

    torch.set_num_threads(torch_threads)
    _WORKER["finder"] = settings.finder()
    _WORKER["settings"] = settings


def _run_task(task: Task, out_dir: Path) -> dict:
    """Worker entry point: :func:`~dfd_kit.training.extract.extract_one` with the worker's stage objects."""
    return extract_one(task, out_dir, _WORKER["settings"], _WORKER["finder"])


def extract(
    tasks: list[Task],
    out_dir: str | Path,
    settings: ExtractSettings,
    workers: int = 2,
    progress: bool = True,
    ray: str | None = None,
    source: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Extract every task not done yet, then merge all parts of their folders into the two tables.

    Args:
        tasks: videos or photos (see :func:`~dfd_kit.training.extract.folder_tasks`, :func:`~dfd_kit.training.extract.photo_tasks`).
        out_dir: the extraction folder (created if needed).
        settings: sampling and crop settings.
        workers: processes (each with one torch thread); ``0`` runs in this process.
        progress: show a tqdm progress bar.
        ray: a Ray cluster address, or ``"local"``: run the videos as Ray tasks instead
            (:mod:`dfd_kit.training.ray_extract`); same files, same tables.
        source: one source name for all the tasks' folders in the tables (see
            :func:`~dfd_kit.training.extract.merge_parts`).

    Returns:
        ``(faces, videos)``: the tables written to ``faces.parquet`` and ``videos.parquet``.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.rglob(f"*{PARTIAL}"):
        stale.unlink()
    todo = [t for t in tasks if not part_path(out_dir, t).is_file()]
    log.info("extract: %d of %d videos to do (%d already done)", len(todo), len(tasks), len(tasks) - len(todo))
    bar = tqdm(total=len(todo), desc="extract", unit="video", disable=not progress)
    if ray is not None and todo:
        def on_part(part: dict) -> None:
            _log_part(part)
            bar.update()

        run_on_ray(todo, out_dir, settings, ray, on_part=on_part)
    elif workers <= 0:
        finder = settings.finder()
        for task in todo:
            _log_part(extract_one(task, out_dir, settings, finder))
            bar.update()
    elif todo:
        torch_threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(settings, torch_threads)) as pool:
            for future in as_completed([pool.submit(_run_task, t, out_dir) for t in todo]):
                _log_part(future.result())
                bar.update()
    bar.close()
    return merge_parts(out_dir, sorted({t.folder for t in tasks}), source)


def _log_part(part: dict) -> None:
    if part["status"] != "ok":
        log.warning("%s/%s failed: %s", part["folder"], part["video"], part["error"])


def extract_folders(
    folders: list[str | Path],
    out_dir: str | Path,
    settings: ExtractSettings,
    photos: bool = False,
    workers: int = 2,
    progress: bool = True,
    ray: str | None = None,
    source: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`extract` over DFDC folders (or, with ``photos=True``, folders of real face photos)."""
    if len({Path(f).name for f in folders}) != len(folders):
        raise InputError("folders must have distinct names: the name is the 'folder' column")
    make = photo_tasks if photos else folder_tasks
    return extract([t for f in folders for t in make(f)], out_dir, settings, workers, progress, ray, source)

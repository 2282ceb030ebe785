"""What the notebooks call besides the pipeline: logging, a stage clock, the environment, summaries.

The notebooks in ``notebooks/`` stay thin: a ``parameters`` cell, one call per stage inside
``clock.stage(...)``, and a closing summary built here from pandas tables and a matplotlib figure.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from ..inference.predict import STAGES, Summary

log = logging.getLogger(__name__)

__all__ = [
    "PACKAGES",
    "setup_logging",
    "StageClock",
    "environment",
    "stage_table",
    "plot_labels",
    "show_inference_summary",
    "show_gallery",
    "show_extract_summary",
    "show_train_summary",
]

# Import name -> the distribution names that may provide it, for the environment table.
PACKAGES: dict[str, tuple[str, ...]] = {
    "dfd_kit": ("dfd_kit",),
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "keras": ("keras",),
    "facenet_pytorch": ("facenet-pytorch",),
    "av": ("av",),
    "cv2": ("opencv-python-headless", "opencv-python", "opencv-contrib-python"),
    "numpy": ("numpy",),
    "nvidia.dali": ("nvidia-dali-cuda120",),
}


def setup_logging(level: int = logging.INFO) -> None:
    """Show dfd_kit's log lines (fallbacks, budget decisions) in the notebook's output."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", force=True)


class StageClock:
    """Wall-clock seconds per named stage of a notebook run, and what is left of a time budget.

    Args:
        start: the run's start, a :func:`time.monotonic` value (default: now).
    """

    def __init__(self, start: float | None = None) -> None:
        self.start = time.monotonic() if start is None else start
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        """Count ``seconds`` towards stage ``name`` (for a stage timed before dfd_kit was importable)."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as stage ``name`` and log its start and end."""
        log.info("stage %s: started", name)
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - t0)
            log.info("stage %s: %.1f s", name, self.seconds[name])

    def remaining(self, budget_s: float | None) -> float | None:
        """Seconds left of ``budget_s`` counted from ``start`` (``None`` when there is no budget)."""
        if not budget_s:
            return None
        return budget_s - (time.monotonic() - self.start)


def environment() -> pd.DataFrame:
    """Version and folder of each package in :data:`PACKAGES`, found without importing them."""
    rows = []
    for module, dists in PACKAGES.items():
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            spec = None
        origin = spec.origin if spec is not None and spec.origin else None
        rows.append({"package": module, "version": _version(dists), "location": str(Path(origin).parent.parent) if origin else "-"})
    return pd.DataFrame(rows).set_index("package")


def _version(dists: tuple[str, ...]) -> str:
    """The installed version of the first of ``dists`` that is installed, else ``"-"``."""
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "-"


def stage_table(clock: StageClock, summary: Summary | None = None) -> pd.DataFrame:
    """Seconds per notebook stage, then (indented) the per-video stage totals inside ``predict``."""
    rows = [{"stage": name, "seconds": round(s, 2)} for name, s in clock.seconds.items()]
    if summary is not None:
        rows += [{"stage": f"  predict/{name}", "seconds": round(summary.seconds.get(name, 0.0), 2)} for name in STAGES]
    rows.append({"stage": "total (wall)", "seconds": round(time.monotonic() - clock.start, 2)})
    return pd.DataFrame(rows).set_index("stage")


def plot_labels(summary: Summary):
    """Histogram of the written labels, P(FAKE), scored videos and fallback rows stacked."""
    import matplotlib.pyplot as plt

    labels = pd.read_csv(summary.out).set_index("filename")["label"]
    fallback = labels.index.isin(list(summary.fallbacks))
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist([labels[~fallback], labels[fallback]], bins=20, range=(0, 1), stacked=True, label=["scored", "fallback"])
    ax.set(xlabel="label = P(FAKE)", ylabel="videos", title=f"{len(labels)} rows in {summary.out.name}")
    ax.legend()
    fig.tight_layout()
    return fig


def show_inference_summary(summary: Summary, clock: StageClock) -> None:
    """The closing cell of ``inference.ipynb``: rows, fallbacks and why, time per stage, label histogram."""
    from IPython.display import display

    print(summary.report())
    counts = summary.fallback_counts()
    if counts:
        display(pd.Series(counts, name="videos").rename_axis("fallback").to_frame())
    display(stage_table(clock, summary))
    _show(plot_labels(summary))


def show_gallery(summary: Summary, n: int = 10) -> None:
    """The report's rows of the ``n`` videos with the highest P(FAKE), inline: face thumbnails with
    their scores, the scores along the clip, Grad-CAM heat maps (see :mod:`dfd_kit.inference.report`)."""
    from IPython.display import HTML, display

    from ..inference.report import gallery_html, load

    if summary.report_path is None or n <= 0:
        print("no gallery: predict_folder ran without report=" if summary.report_path is None else "no gallery: gallery = 0")
        return
    print(f"the {min(n, len(summary.results))} most suspicious videos; every video: {summary.report_path}")
    display(HTML(gallery_html(load(summary.report_path), n)))


def show_extract_summary(faces: pd.DataFrame, videos: pd.DataFrame, clock: StageClock) -> None:
    """The closing cell of the extract notebook: videos done and failed (and why), faces per split, times."""
    from IPython.display import display

    failed = videos[videos["status"] != "ok"]
    print(f"{len(faces)} faces from {len(videos) - len(failed)} videos; {len(failed)} videos failed")
    if len(failed):
        display(failed[["folder", "video", "error"]])
    display(faces.groupby(["split", "label"]).agg(faces=("path", "size"), videos=("video", "nunique")))
    display(stage_table(clock))


def show_train_summary(state: dict, run_dir: str | Path, clock: StageClock) -> None:
    """The closing cell of the train notebook: the best epoch and its metrics, times, curves from log.csv."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    print(f"best epoch {state['best_epoch']}: {state['metrics']}")
    display(stage_table(clock))
    history = pd.read_csv(Path(run_dir) / "log.csv")
    fig, ax = plt.subplots(figsize=(6, 3))
    for name in ("loss", "val_video_log_loss"):
        if name in history:
            ax.plot(history["epoch"] + 1, history[name], marker="o", label=name)
    ax.set(xlabel="epoch", title="training history")
    ax.legend()
    fig.tight_layout()
    _show(fig)


def _show(fig) -> None:
    """Display ``fig`` once (and close it, so that the inline backend does not show it again)."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)

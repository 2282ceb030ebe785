"""Score a submission against DFDC labels: log loss, ROC AUC, accuracy, a constant baseline, a plot.

:func:`evaluate` joins ``submission.csv`` (``filename,label`` with label = P(FAKE)) with a DFDC
``metadata.json`` (``label`` REAL/FAKE per file name), computes the metrics with scikit-learn and, if
asked, draws the ROC curve and the score histogram per label with matplotlib.

The metrics that training selects by and calibration fits live here too: Platt scaling of the logit
(:func:`fit_platt`, :func:`apply_platt`), the class-balanced log loss after it
(:func:`calibrated_log_loss`) and per source (:func:`source_log_losses`, :func:`cell_weights`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..metadata import read_metadata

log = logging.getLogger(__name__)

__all__ = [
    "Evaluation", "binary_metrics", "fit_platt", "cell_weights", "source_log_losses", "apply_platt", "calibrated_log_loss",
    "balanced_log_loss", "read_labels", "join", "evaluate", "by_source", "plot",
]  # fmt: skip


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one submission.

    Attributes:
        videos: videos scored (in both the submission and the metadata); ``fake`` of them FAKE.
        log_loss: binary cross-entropy of the submitted probabilities (natural log).
        auc: ROC AUC (NaN when only one class is present).
        accuracy: accuracy of ``label >= 0.5``.
        prior: the constant baseline's prediction: the FAKE share of these videos.
        prior_log_loss: log loss of predicting ``prior`` for every video (the best constant).
        half_log_loss: log loss of predicting 0.5 for every video (``ln 2``).
    """

    videos: int
    fake: int
    log_loss: float
    auc: float
    accuracy: float
    prior: float
    prior_log_loss: float
    half_log_loss: float

    def to_dict(self) -> dict:
        return asdict(self)

    def report(self) -> str:
        return (
            f"{self.videos} videos ({self.fake} FAKE, {self.videos - self.fake} REAL)\n"
            f"log loss  {self.log_loss:.4f}   (constant prior {self.prior:.3f}: {self.prior_log_loss:.4f}; constant 0.5: {self.half_log_loss:.4f})\n"
            f"ROC AUC   {self.auc:.4f}\n"
            f"accuracy  {self.accuracy:.4f}   (threshold 0.5)"
        )


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """``log_loss``, ``auc`` (NaN with one class) and ``accuracy`` (of ``p >= 0.5``) of the
    probabilities of FAKE ``p`` (float ``[N]``) against the labels ``y`` (``[N]``, 1 = FAKE)."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    return {
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan"),
        "accuracy": float(accuracy_score(y, p >= 0.5)),
    }


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def fit_platt(scores: np.ndarray, labels: np.ndarray, balanced: bool = True, sample_weight: np.ndarray | None = None) -> tuple[float, float]:
    """Platt scaling: ``a, b`` such that ``sigmoid(a * logit(score) + b)`` fits ``labels`` (1 = FAKE).

    Args:
        scores: float ``[N]`` probabilities from the model.
        labels: ``[N]`` 0/1.
        balanced: weight the classes to equal shares (the fitted prior is then 0.5).
        sample_weight: float ``[N]`` weights instead (e.g. :func:`cell_weights`: every source and label alike).
    """
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=1e4, class_weight="balanced" if balanced and sample_weight is None else None)
    fit.fit(_logit(scores)[:, None], np.asarray(labels).astype(int), sample_weight=sample_weight)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def cell_weights(labels: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Weights ``[N]`` that give every (source, label) cell the same total: no source or class outweighs another."""
    cells = pd.Series(list(zip(sources, np.asarray(labels).astype(int))))
    counts = cells.map(cells.value_counts())
    return (len(cells) / (cells.nunique() * counts)).to_numpy(np.float64)


def source_log_losses(scores: np.ndarray, labels: np.ndarray, sources: np.ndarray) -> dict[str, dict[str, float]]:
    """Per source, the class-balanced log loss and AUC after one Platt fit over all sources (:func:`cell_weights`).

    Args:
        scores: float ``[N]`` video P(FAKE); labels: ``[N]`` 0/1; sources: ``[N]`` source names.

    Returns:
        ``{source: {"log_loss", "auc", "videos"}}`` for the sources with both labels (the others
        cannot be told apart from a constant); empty when none has both.
    """
    labels, sources = np.asarray(labels).astype(int), np.asarray(sources)
    both = [str(s) for s in sorted(set(sources)) if len(set(labels[sources == s])) == 2]
    if not both:
        return {}
    keep = np.isin(sources, both)
    ab = fit_platt(scores[keep], labels[keep], sample_weight=cell_weights(labels[keep], sources[keep]))
    p = apply_platt(scores, ab)
    out = {}
    for s in both:
        mask = sources == s
        out[s] = {"log_loss": balanced_log_loss(labels[mask], p[mask]), "auc": binary_metrics(labels[mask], p[mask])["auc"], "videos": int(mask.sum())}
    return out


def apply_platt(scores: np.ndarray, ab: tuple[float, float]) -> np.ndarray:
    """``sigmoid(a * logit(scores) + b)`` for the ``ab = (a, b)`` of :func:`fit_platt`."""
    return 1.0 / (1.0 + np.exp(-(ab[0] * _logit(scores) + ab[1])))


def calibrated_log_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    """The class-balanced log loss of ``scores`` after Platt scaling fitted on them (both classes needed)."""
    return balanced_log_loss(np.asarray(labels).astype(int), apply_platt(scores, fit_platt(scores, labels)))


def balanced_log_loss(labels: np.ndarray, p: np.ndarray) -> float:
    """The log loss of the probabilities ``p`` with the two classes of ``labels`` (0/1) weighted to equal shares."""
    from sklearn.metrics import log_loss
    from sklearn.utils.class_weight import compute_sample_weight

    return float(log_loss(labels, np.clip(p, 1e-7, 1 - 1e-7), sample_weight=compute_sample_weight("balanced", labels), labels=[0, 1]))



def read_labels(metadata: str | Path) -> pd.Series:
    """``metadata.json`` → int Series (1 = FAKE, 0 = REAL) indexed by file name."""
    meta = read_metadata(metadata)
    labels = pd.Series({name: entry["label"] for name, entry in meta.items()}, dtype=object)
    return (labels == "FAKE").astype(int).rename("y")


def join(submission: str | Path, metadata: str | Path) -> pd.DataFrame:
    """``filename, p, y``: the submitted P(FAKE) and the true label (1 = FAKE) of every video in both."""
    path = Path(submission)
    if not path.is_file():
        raise InputError(f"submission not found: {path}")
    sub = pd.read_csv(path)
    if not {"filename", "label"} <= set(sub.columns):
        raise InputError(f"{path} must have 'filename' and 'label' columns, has {list(sub.columns)}")
    labels = read_labels(metadata)
    table = sub.rename(columns={"label": "p"}).merge(labels, left_on="filename", right_index=True, how="inner")
    missing = sorted(set(labels.index) - set(sub["filename"]))
    unlabelled = sorted(set(sub["filename"]) - set(labels.index))
    if missing:
        log.warning("%d labelled videos have no row in the submission (not scored), e.g. %s", len(missing), missing[:3])
    if unlabelled:
        log.warning("%d submission rows have no label (not scored), e.g. %s", len(unlabelled), unlabelled[:3])
    if table.empty:
        raise InputError(f"no file name of {path} is in {metadata}")
    return table.reset_index(drop=True)


def evaluate(submission: str | Path, metadata: str | Path, plot_path: str | Path | None = None) -> tuple[Evaluation, pd.DataFrame]:
    """Metrics of a submission (and, with ``plot_path``, a PNG of the ROC curve and score histograms).

    Returns:
        The :class:`Evaluation` and the joined ``filename, p, y`` table.
    """
    from sklearn.metrics import log_loss

    table = join(submission, metadata)
    y, p = table["y"].to_numpy(), table["p"].to_numpy(np.float64)
    prior = float(y.mean())
    result = Evaluation(
        videos=len(table),
        fake=int(y.sum()),
        **binary_metrics(y, p),
        prior=prior,
        prior_log_loss=float(log_loss(y, np.full(len(y), prior), labels=[0, 1])),
        half_log_loss=float(log_loss(y, np.full(len(y), 0.5), labels=[0, 1])),
    )
    if plot_path is not None:
        plot(table, result, plot_path)
    return result, table


def by_source(table: pd.DataFrame, pattern: str) -> pd.DataFrame:
    """Metrics per source: the videos whose file name gives the same first match of ``pattern``.

    A source with both labels gets its own AUC; a source of one label is ranked against every video
    of the other label in the whole set (``auc_vs_rest``: e.g. one manipulation method's fakes
    against all the real videos), so single-label sources still say how well they are separated.

    Args:
        table: ``filename, p, y`` from :func:`evaluate`.
        pattern: a regular expression; its first match in a file name names the source (the whole
            name where it does not match).

    Returns:
        One row per source: ``videos, fake, mean_p, log_loss, auc, auc_vs_rest``.
    """
    from sklearn.metrics import log_loss, roc_auc_score

    import re

    source = table["filename"].map(lambda name: m.group(0) if (m := re.search(pattern, name)) and m.group(0) else name)
    rows = []
    for name, part in table.groupby(source, sort=True):
        y, p = part["y"].to_numpy(), part["p"].to_numpy(np.float64)
        others = table[(source != name) & (table["y"] != (y[0] if len(set(y)) == 1 else -1))]
        vs_rest = pd.concat([part, others])
        rows.append({
            "source": name, "videos": len(part), "fake": int(y.sum()), "mean_p": float(p.mean()),
            "log_loss": float(log_loss(y, p, labels=[0, 1])),
            "auc": float(roc_auc_score(y, p)) if len(set(y)) == 2 else float("nan"),
            "auc_vs_rest": float(roc_auc_score(vs_rest["y"], vs_rest["p"])) if vs_rest["y"].nunique() == 2 else float("nan"),
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("source")


def plot(table: pd.DataFrame, result: Evaluation, path: str | Path) -> Path:
    """Write a PNG: the ROC curve (left) and the histogram of P(FAKE) per true label (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import RocCurveDisplay

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (roc, hist) = plt.subplots(1, 2, figsize=(10, 4.2))
    if table["y"].nunique() == 2:
        RocCurveDisplay.from_predictions(table["y"], table["p"], ax=roc, name="submission")
    roc.plot([0, 1], [0, 1], "k:", lw=1, label="chance")
    roc.set_title(f"ROC (AUC {result.auc:.3f})")
    roc.legend(loc="lower right")
    bins = np.linspace(0, 1, 21)
    for value, name, colour in ((0, "REAL", "tab:blue"), (1, "FAKE", "tab:red")):
        scores = table.loc[table["y"] == value, "p"]
        hist.hist(scores, bins=bins, alpha=0.6, color=colour, label=f"{name} ({len(scores)})")
    hist.axvline(0.5, color="k", ls=":", lw=1)
    hist.set_xlabel("submitted P(FAKE)")
    hist.set_ylabel("videos")
    hist.set_title(f"log loss {result.log_loss:.3f} (constant prior {result.prior_log_loss:.3f})")
    hist.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

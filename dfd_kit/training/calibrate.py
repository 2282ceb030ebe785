"""Make trained weights say what they mean: calibration and inference settings chosen on validation data.

The metric is log loss, which punishes a confident mistake far more than it rewards a confident hit,
so a model trained on balanced batches must still be told how sure to be. Two steps, both written
into the weights' manifest entry and applied by :class:`~dfd_kit.inference.predict.Predictor` by default:

1. :func:`calibrate_weights` scores the validation crops of the training tables (with and without
   flip test-time augmentation), fits **Platt scaling** of the logit on them (:func:`~dfd_kit.training.evaluate.fit_platt`,
   classes weighted to equal shares, so the calibrated prior is 0.5 whatever the validation mix),
   keeps the flip setting with the lower calibrated log loss, and stores ``calibration: {a, b}``.
2. :func:`choose_inference` runs the whole pipeline on a folder of labelled validation videos at
   the largest frame count, then scores every frame count and aggregation rule on the same faces
   (an even subset of the frames) and stores the best as ``inference: {frames, rule, flip}``.

For an ensemble of calibrated members, :func:`calibrate_ensemble` chooses how they combine (the
mean of their log-odds or of their probabilities, equal or fitted member weights) and the frame
count and rule, and stores it under the manifest's ``ensembles``.
"""

from __future__ import annotations

import logging
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd

from ..inference.aggregate import RULES, aggregate
from ..inference.sampling import sample_indices
from ..metadata import read_metadata
from ..models.classifier import Classifier
from ..models.ensemble import COMBINES, Ensemble, combine_scores
from ..models.weights import ensemble_key, read_manifest, resolve_members, resolve_weights, write_manifest
from .crops import read_crop, resize_crop
from .evaluate import apply_platt, balanced_log_loss, binary_metrics, cell_weights, fit_platt
from .tables import read_table

log = logging.getLogger(__name__)

__all__ = ["calibrate_weights", "choose_inference", "calibrate_ensemble", "fit_member_weights"]

FRAME_COUNTS = (8, 17, 32)


def _update_entry(path: Path, **fields) -> None:
    manifest = read_manifest(path.parent)
    manifest["files"][path.name].update(fields)
    write_manifest(path.parent, manifest)


def _val_crops(tables: list[str | Path], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = read_table(*tables)
    val = table[table["split"] == "val"]
    crops = np.stack([read_crop(path, size) for path in val["path"]])
    return crops, (val["label"] == "FAKE").to_numpy(int), val["folder"].astype(str).to_numpy()


BALANCES = ("label", "source")


def calibrate_weights(weights: str | Path, tables: list[str | Path], backend: str = "tf", balance: str = "label") -> dict:
    """Fit Platt scaling on the validation crops of ``tables`` (with and without flip) and store it.

    Args:
        weights: a ``.weights.h5`` file with a manifest entry.
        tables: the split faces tables the weights were trained on (their ``val`` rows are used).
        backend: classifier runtime for scoring.
        balance: ``"label"`` weights the two classes to equal shares; ``"source"`` weights every
            (source, label) cell alike (:func:`~dfd_kit.training.evaluate.cell_weights`; a source is a table's ``folder``), so
            a large source does not set the calibration of the small ones, and the flip setting is
            chosen by the mean of the per-source balanced log losses.

    Returns:
        The entry's new ``calibration`` (``a``, ``b``, ``flip``, metrics before and after, per folder).
    """
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {BALANCES}, got {balance!r}")
    info = resolve_weights(weights)
    crops, labels, folders = _val_crops(tables, info.config.input_size)
    weight = cell_weights(labels, folders) if balance == "source" else None
    results = {}
    for flip in (False, True):
        raw = Classifier(info.config, info.path, backend=backend, flip=flip).predict(crops)
        ab = fit_platt(raw, labels, sample_weight=weight)
        calibrated = apply_platt(raw, ab)
        per_folder = {}
        for f in sorted(set(folders)):
            mask = folders == f
            per_folder[f] = {**binary_metrics(labels[mask], calibrated[mask]), "crops": int(mask.sum())}
            if len(set(labels[mask])) == 2:
                per_folder[f]["balanced_log_loss"] = balanced_log_loss(labels[mask], calibrated[mask])
        by_source = [m["balanced_log_loss"] for m in per_folder.values() if "balanced_log_loss" in m]
        results[flip] = {
            "a": ab[0], "b": ab[1], "flip": flip, "balance": balance,
            "balanced_log_loss_before": balanced_log_loss(labels, raw),
            "balanced_log_loss": balanced_log_loss(labels, calibrated),
            "mean_source_log_loss": float(np.mean(by_source)) if by_source else None,
            "per_folder": per_folder,
        }  # fmt: skip
        log.info("flip=%s: a=%.3f b=%.3f, balanced log loss %.4f -> %.4f", flip, ab[0], ab[1],
                 results[flip]["balanced_log_loss_before"], results[flip]["balanced_log_loss"])  # fmt: skip
    key = "mean_source_log_loss" if balance == "source" and by_source else "balanced_log_loss"
    best = min(results.values(), key=lambda r: r[key])
    best["data"] = {"tables": [str(Path(t).resolve()) for t in tables], "crops": int(len(labels)), "fake": int(labels.sum())}
    best["method"] = "Platt scaling of the logit, classes weighted to equal shares (prior 0.5)"
    inference = {**info.inference, "flip": best["flip"]}
    _update_entry(info.path, calibration=best, inference=inference)
    return best


def choose_inference(weights: str | Path, videos_dir: str | Path, frame_counts: tuple[int, ...] = FRAME_COUNTS, **predictor_kwargs) -> dict:
    """Pick the frame count and aggregation rule with the lowest log loss on labelled validation videos.

    The pipeline runs once per video at ``max(frame_counts)`` frames; each smaller count takes the
    faces of an even subset of those frames (as :func:`~dfd_kit.inference.sampling.sample_indices` spaces them).

    Args:
        weights: calibrated weights (the entry's ``calibration`` and ``flip`` apply).
        videos_dir: a DFDC folder (videos + ``metadata.json``) that no training saw.
        frame_counts: candidate frame counts.
        **predictor_kwargs: passed to :class:`~dfd_kit.inference.predict.Predictor` (``device``, ``backend`` ...).

    Returns:
        The entry's new ``inference`` (``frames``, ``rule``, ``flip``, the table of log losses).
    """
    from ..inference.predict import Predictor

    most = max(frame_counts)
    predictor = Predictor(weights, frames=most, **predictor_kwargs)
    labels, faces = _video_faces(predictor, videos_dir, most)
    table = _settings_table(faces, labels, frame_counts, predictor.clip, {"": predictor.ensemble})
    best = table.iloc[0]
    inference = {"frames": int(best["frames"]), "rule": str(best["rule"]), "flip": predictor.classifier.flip,
                 "validation": {"videos": str(videos_dir), "table": table.drop(columns="ensemble").round(4).to_dict("records")}}  # fmt: skip
    _update_entry(predictor.weights.path, inference=inference)
    return inference


def _video_faces(predictor, videos_dir: str | Path, n_frames: int) -> tuple[dict[str, int], dict]:
    """Labels and, per video, ``(n_frames, frame_of [K], member scores [M, K])`` of a labelled folder at ``n_frames``."""
    from ..errors import DFDError

    videos_dir = Path(videos_dir)
    labels = {name: int(item["label"] == "FAKE") for name, item in read_metadata(videos_dir / "metadata.json").items()}
    faces = {}
    for name in sorted(labels):
        try:
            found = predictor.find_faces(videos_dir / name, n_frames)
        except DFDError as err:
            log.info("%s: %s (left out)", name, err)
            continue
        faces[name] = (found.n_frames, found.faces.frame_of, predictor.ensemble.member_scores(predictor.member_crops(found)))
    return labels, faces


def _settings_table(faces: dict, labels: dict[str, int], frame_counts, clip, ensembles: dict[str, Ensemble]) -> pd.DataFrame:
    """Video log loss, AUC, accuracy of every (ensemble candidate, frame count, rule), best first."""
    rows = []
    for (key, ensemble), n, rule in product(ensembles.items(), frame_counts, RULES):
        p, y = [], []
        for name, (n_frames, frame_of, member_scores) in faces.items():
            chosen = np.isin(frame_of, sample_indices(n_frames, min(n, n_frames)))
            if chosen.any():
                p.append(aggregate(ensemble.combine_scores(member_scores[:, chosen]), rule, clip))
                y.append(labels[name])
        rows.append({"ensemble": key, "frames": n, "rule": rule, **binary_metrics(np.array(y), np.array(p)), "videos": len(y)})
    return pd.DataFrame(rows).sort_values("log_loss", kind="stable")


def fit_member_weights(member_scores: np.ndarray, labels: np.ndarray, sources: np.ndarray, combine: str) -> np.ndarray:
    """Member weights (on the simplex) minimising the mean per-source class-balanced log loss of the combined scores."""
    from scipy.optimize import minimize

    def simplex(theta: np.ndarray) -> np.ndarray:
        e = np.exp(theta - theta.max())
        return e / e.sum()

    def loss(theta: np.ndarray) -> float:
        p = combine_scores(member_scores, combine, simplex(theta))
        return float(np.mean([balanced_log_loss(labels[sources == s], p[sources == s]) for s in np.unique(sources)]))

    n = len(member_scores)  # start from equal weights with steps of one log-unit (scipy's default steps from 0 are 0.00025, under xatol)
    start = np.vstack([np.zeros(n), np.eye(n)])
    return simplex(minimize(loss, np.zeros(n), method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-5, "initial_simplex": start}).x)


def calibrate_ensemble(weights, videos_dir: str | Path, tables: list[str | Path] = (), frame_counts: tuple[int, ...] = FRAME_COUNTS,
                       **predictor_kwargs) -> dict:  # fmt: skip
    """Choose how an ensemble of calibrated members combines, and its frame count and rule; store it.

    Candidates: the mean of the members' log-odds or of their probabilities (:data:`~dfd_kit.models.ensemble.COMBINES`),
    each with equal member weights and with weights fitted to the validation crops of ``tables``
    (the mean over sources of the class-balanced log loss; each member scores the crops resized to
    its input size), or, without tables, to the videos. Every candidate is scored with every frame
    count and rule on the videos of ``videos_dir``; the lowest video log loss wins.

    Args:
        weights: the members (a list, or names joined by commas), each already calibrated (:func:`calibrate_weights`).
        videos_dir: labelled validation videos (a DFDC folder) no training saw.
        tables: split faces tables whose ``val`` rows fit the member weights.
        frame_counts: candidate frame counts.
        **predictor_kwargs: passed to :class:`~dfd_kit.inference.predict.Predictor` (``device``, ``backend`` ...).

    Returns:
        The manifest's new ``ensembles`` entry: ``members``, ``combine``, ``member_weights``,
        ``inference`` (``frames``, ``rule``) and the validation table of every candidate.
    """
    from ..inference.predict import Predictor

    members = resolve_members(weights)
    if len(members) < 2:
        raise ValueError("an ensemble needs two or more members")
    most = max(frame_counts)
    predictor = Predictor([m.path for m in members], frames=most, **predictor_kwargs)
    labels, faces = _video_faces(predictor, videos_dir, most)
    if tables:
        table = read_table(*tables)
        val = table[table["split"] == "val"]
        images = [read_crop(p) for p in val["path"]]  # read once, sized for each member
        fit_scores = np.stack([m.predict(np.stack([resize_crop(i, m.config.input_size) for i in images])) for m in predictor.ensemble.members])
        fit_labels, fit_sources = (val["label"] == "FAKE").to_numpy(int), val["folder"].astype(str).to_numpy()
    else:
        names = sorted(faces)
        fit_scores = np.stack([np.concatenate([faces[n][2][m] for n in names]) for m in range(len(members))])
        fit_labels = np.concatenate([np.full(faces[n][2].shape[1], labels[n]) for n in names])
        fit_sources = np.zeros(len(fit_labels), str)
    candidates = {}
    for combine in COMBINES:
        candidates[f"{combine}, equal"] = Ensemble(predictor.ensemble.members, combine)
        fitted = fit_member_weights(fit_scores, fit_labels, fit_sources, combine)
        candidates[f"{combine}, fitted"] = Ensemble(predictor.ensemble.members, combine, fitted)
    table = _settings_table(faces, labels, frame_counts, predictor.clip, candidates)
    best = table.iloc[0]
    chosen = candidates[best["ensemble"]]
    entry = {
        "members": [m.path.name for m in members],
        "combine": chosen.combine,
        "member_weights": [round(float(w), 4) for w in chosen.weights],
        "inference": {"frames": int(best["frames"]), "rule": str(best["rule"])},
        "validation": {"videos": str(videos_dir), "tables": [str(Path(t).resolve()) for t in tables], "table": table.round(4).to_dict("records")},
    }
    manifest = read_manifest(members[0].path.parent)
    manifest.setdefault("ensembles", {})[ensemble_key(members)] = entry
    write_manifest(members[0].path.parent, manifest)
    log.info("ensemble %s: %s, weights %s, %d frames, %s: video log loss %.4f", ensemble_key(members), entry["combine"],
             entry["member_weights"], entry["inference"]["frames"], entry["inference"]["rule"], best["log_loss"])  # fmt: skip
    return entry

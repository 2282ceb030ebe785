"""Several classifiers scoring the same faces, each on crops cut at its own framing, combined per face.

Every leading DFDC solution averaged several classifiers. Here each member is a :class:`Classifier`
with its own config (architecture, input size, crop framing), calibration and flip setting; the
pipeline finds each video's faces once and cuts every member its own crops from the same boxes
(:meth:`dfd_kit.inference.faces.FaceSampler.crop`). Per face, the members' calibrated
probabilities ``p_m`` combine as

- ``"logit_mean"``: ``sigmoid(sum_m w_m * logit(p_m))``, the weighted mean of the log-odds, or
- ``"prob_mean"``: ``sum_m w_m * p_m``, the weighted mean of the probabilities,

with member weights ``w_m`` summing to 1 (equal by default; fitted on validation videos by
:func:`dfd_kit.training.calibrate.calibrate_ensemble`). One member is an ensemble too: its
combination is the member's own score, unchanged.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .classifier import Classifier

__all__ = ["COMBINES", "combine_scores", "Ensemble"]

COMBINES = ("logit_mean", "prob_mean")
_EPS = 1e-7


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def combine_scores(scores: np.ndarray, combine: str, weights: np.ndarray) -> np.ndarray:
    """Combine float ``[M, K]`` member scores into float32 ``[K]`` face scores.

    Args:
        scores: member ``m``'s P(FAKE) of face ``k``.
        combine: one of :data:`COMBINES` (see the module docstring).
        weights: float ``[M]`` member weights summing to 1.
    """
    scores = np.asarray(scores, np.float64)
    if len(scores) == 1:
        return scores[0].astype(np.float32)
    w = np.asarray(weights, np.float64)[:, None]
    if combine == "prob_mean":
        return (w * scores).sum(axis=0).astype(np.float32)
    return (1.0 / (1.0 + np.exp(-(w * _logit(scores)).sum(axis=0)))).astype(np.float32)


class Ensemble:
    """Members scoring the same faces; their scores combined per face.

    Args:
        members: the classifiers, one per member (each applies its own calibration and flip).
        combine: one of :data:`COMBINES`.
        weights: one non-negative weight per member (normalised to sum 1); ``None``: equal.
        names: a name per member for reports (default ``member0``, ``member1`` ...).
    """

    def __init__(self, members: Sequence[Classifier], combine: str = "logit_mean", weights: Sequence[float] | None = None,
                 names: Sequence[str] | None = None) -> None:  # fmt: skip
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
        w = np.ones(len(members)) if weights is None else np.asarray(weights, np.float64)
        if w.shape != (len(members),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(members)} non-negative numbers with a positive sum, got {weights!r}")
        self.members = list(members)
        self.combine = combine
        self.weights = w / w.sum()
        self.names = list(names) if names is not None else [f"member{i}" for i in range(len(members))]

    @classmethod
    def for_weights(cls, infos: Sequence, entry: dict | None = None, flip: bool | None = None, **classifier_kwargs) -> Ensemble:
        """The ensemble of resolved weights (:func:`dfd_kit.models.weights.resolve_members`).

        Args:
            infos: one :class:`~dfd_kit.models.weights.WeightsInfo` per member.
            entry: the manifest's ``ensembles`` entry for them (``combine``, ``member_weights``);
                ``None`` or ``{}``: the mean of the log-odds, equal weights.
            flip: flip test-time augmentation for every member; ``None``: each member's manifest choice.
            **classifier_kwargs: passed to every :meth:`Classifier.for_weights` (``precision``, ``backend`` ...).
        """
        entry = entry or {}
        members = [Classifier.for_weights(info, flip=flip, **classifier_kwargs) for info in infos]
        names = [info.path.name if info.path is not None else info.config.name for info in infos]
        return cls(members, entry.get("combine", "logit_mean"), entry.get("member_weights"), names)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def configs(self) -> list:
        """Each member's :class:`~dfd_kit.models.registry.ModelConfig` (its input size and crop framing)."""
        return [m.config for m in self.members]

    def member_scores(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Every member's scores of the same ``K`` faces.

        Args:
            crops: one uint8 ``[K, S_m, S_m, 3]`` RGB array per member, cut at that member's framing.

        Returns:
            float32 ``[M, K]``: member ``m``'s calibrated P(FAKE) of face ``k``.
        """
        if len(crops) != len(self.members):
            raise ValueError(f"{len(self.members)} members need {len(self.members)} crop arrays, got {len(crops)}")
        scores = [m.predict(c) for m, c in zip(self.members, crops)]
        if len({len(s) for s in scores}) > 1:
            raise ValueError(f"the members' crops hold different numbers of faces: {[len(s) for s in scores]}")
        return np.stack(scores).astype(np.float32)

    def combine_scores(self, scores: np.ndarray) -> np.ndarray:
        """Combine float ``[M, K]`` member scores into float32 ``[K]`` face scores (:func:`combine_scores`)."""
        return combine_scores(scores, self.combine, self.weights)

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Face scores, float32 ``[K]``: :meth:`member_scores` then :meth:`combine_scores`."""
        return self.combine_scores(self.member_scores(crops))

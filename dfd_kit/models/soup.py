"""Average the weights of several files of one config into one file: a model soup.

Files fine-tuned from a common ancestor (here the two EfficientNet-Lite0 members, both grown from
the same DFDC run) sit in one basin of the loss, and the average of their weights often scores like
the ensemble of their outputs at one model's cost (Wortsman et al., "Model soups", ICML 2022;
the interpolation between a model and its fine-tuned copy is their WiSE-FT). Every variable is
averaged, BatchNormalization's moving mean and variance included, as the paper does.

The soup gets a manifest entry that names its ingredients (file, sha256, share); it carries no
calibration, since the ingredients' Platt fits do not transfer: run ``dfd calibrate`` on it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from .classifier import create_model
from .registry import ModelConfig
from .weights import resolve_weights, save_weights, sha256

log = logging.getLogger(__name__)

__all__ = ["soup"]


def soup(weights: list[str | Path], out: str | Path, shares: list[float] | None = None, config: str | ModelConfig | None = None,
         **meta) -> Path:
    """Write the weighted average of ``weights`` (``.weights.h5`` files or bundled names) to ``out``.

    Args:
        weights: two or more files of the same model config.
        out: target ``.weights.h5``; its folder's manifest gets the entry (not made the default).
        shares: one non-negative number per file (normalised to sum to 1); ``None``: equal shares.
        config: the model config, only for files no manifest describes.
        **meta: extra manifest fields (``command`` ...).

    Returns:
        ``out`` as a :class:`Path`.

    Raises:
        WeightsError: fewer than two files, configs that differ, an untrained placeholder among them,
            or ``out`` one of the ingredients.
        ValueError: ``shares`` of the wrong length, negative, or summing to zero.
    """
    infos = [resolve_weights(w, config) for w in weights]
    if len(infos) < 2:
        raise WeightsError(f"a soup needs two or more weights files, got {len(infos)}")
    if any(info.path is None for info in infos):
        raise WeightsError("the untrained placeholder cannot go into a soup")
    if Path(out).resolve() in {info.path.resolve() for info in infos}:
        raise WeightsError(f"{out} is one of the ingredients: write the soup to a new file")
    config = infos[0].config
    for info in infos[1:]:
        if info.config != config:
            raise WeightsError(f"a soup averages files of one config: {infos[0].path.name} is {config.name!r}, "
                               f"{info.path.name} is {info.config.name!r} ({info.config} against {config})")  # fmt: skip
    shares = np.ones(len(infos)) if shares is None else np.asarray(shares, dtype=np.float64)
    if shares.shape != (len(infos),) or (shares < 0).any() or shares.sum() <= 0:
        raise ValueError(f"shares must be {len(infos)} non-negative numbers with a positive sum, got {shares.tolist()}")
    shares = shares / shares.sum()
    model = create_model(config, infos[0].path)
    first = model.get_weights()
    total = [shares[0] * np.asarray(v, np.float64) for v in first]
    for share, info in zip(shares[1:], infos[1:]):
        for acc, v in zip(total, create_model(config, info.path).get_weights()):
            acc += share * np.asarray(v, np.float64)
    model.set_weights([acc.astype(v.dtype) for acc, v in zip(total, first)])
    ingredients = [{"file": info.path.name, "sha256": sha256(info.path), "share": round(float(s), 6)} for info, s in zip(infos, shares)]
    path = save_weights(model, out, config, default=False, trained=all(info.trained for info in infos), soup={"ingredients": ingredients}, **meta)
    log.info("soup of %s written to %s; calibrate it (`dfd calibrate`) before use",
             " + ".join(f"{i['share']:.2f} x {i['file']}" for i in ingredients), path)  # fmt: skip
    return path

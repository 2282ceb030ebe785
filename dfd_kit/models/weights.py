"""Find, describe and save classifier weights.

Weights live in a folder with a ``manifest.json``::

    {"default": "xception_sbi.weights.h5",
     "files": {"xception_sbi.weights.h5": {"config": {...ModelConfig...}, "sha256": "...",
                                           "trained": true, "storage": "float16", ...}},
     "ensembles": {"a.weights.h5+b.weights.h5": {"combine": "logit_mean", "member_weights": [0.5, 0.5],
                                                 "inference": {"frames": 8, "rule": "median"}, ...}}}

``default`` names one file or a list of files (an ensemble: :func:`resolve_members`); an
``ensembles`` entry, keyed by the member names joined with ``+``, says how those members combine
(written by :func:`dfd_kit.training.calibrate.calibrate_ensemble`).

The folder is found, in order, from ``$DFD_KIT_WEIGHTS``, the ``dfd_kit/_weights`` folder an installed
wheel carries, and the top-level ``weights/`` of a checkout. Files are Keras ``.weights.h5`` with
float32 tensors stored as float16 (half the size; Keras casts them back on load).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsError
from .registry import ModelConfig, get_config

log = logging.getLogger(__name__)

__all__ = [
    "WEIGHTS_ENV", "PLACEHOLDER", "WeightsInfo", "weights_dir", "resolve_weights", "resolve_members", "ensemble_key", "ensemble_entry",
    "save_weights", "sha256", "read_manifest", "write_manifest",
]  # fmt: skip

WEIGHTS_ENV = "DFD_KIT_WEIGHTS"
MANIFEST = "manifest.json"
#: the ``weights`` value that asks for an untrained, randomly initialised model (tests, speed runs)
PLACEHOLDER = "placeholder"


@dataclass(frozen=True)
class WeightsInfo:
    """A weights file, the config it fits and its manifest entry (``path=None``: untrained placeholder)."""

    path: Path | None
    config: ModelConfig
    entry: dict

    @property
    def calibration(self) -> tuple[float, float] | None:
        """Platt scaling ``(a, b)`` of the logit fitted for these weights (``None``: none stored)."""
        fit = self.entry.get("calibration")
        return (float(fit["a"]), float(fit["b"])) if fit else None

    @property
    def inference(self) -> dict:
        """Inference settings chosen for these weights on validation videos (``frames``, ``rule``, ``flip``), if any."""
        return dict(self.entry.get("inference", {}))

    @property
    def trained(self) -> bool:
        return self.path is not None and bool(self.entry.get("trained", False))

    def describe(self) -> str:
        if self.path is None:
            return f"UNTRAINED PLACEHOLDER ({self.config.name}, random init): scores are meaningless"
        status = "trained" if self.trained else "UNTRAINED PLACEHOLDER"
        digest = self.entry.get("sha256", "")[:12]
        return f"{self.path.name} ({self.config.name}, {self.config.input_size}px, {status}{', sha256 ' + digest if digest else ''})"


def weights_dir() -> Path | None:
    """The folder holding the bundled weights and their manifest, or ``None`` if there is none."""
    env = os.environ.get(WEIGHTS_ENV)
    candidates = [Path(env)] if env else []
    package = Path(__file__).resolve().parents[1]
    candidates += [package / "_weights", package.parent / "weights"]
    for folder in candidates:
        if folder.is_dir() and (folder / MANIFEST).is_file():
            return folder
    return None


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        return {"default": None, "files": {}}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise WeightsError(f"{path} is not valid JSON: {err}") from err
    manifest.setdefault("files", {})
    return manifest


def write_manifest(folder: Path, manifest: dict) -> Path:
    """Write ``folder/manifest.json`` (indented JSON)."""
    path = Path(folder) / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _config_of(entry: dict, fallback: str | ModelConfig | None, path: Path) -> ModelConfig:
    if "config" in entry:
        cfg = ModelConfig.from_dict(entry["config"])
        if fallback is not None and (get_config(fallback).input_size, get_config(fallback).arch) != (cfg.input_size, cfg.arch):
            raise WeightsError(
                f"{path.name} was made for config {cfg.name!r} ({cfg.input_size}px), "
                f"not {get_config(fallback).name!r} ({get_config(fallback).input_size}px)"
            )
        return cfg
    if fallback is None:
        raise WeightsError(f"{path.name} is not in a manifest: pass the model config it was trained with")
    return get_config(fallback)


def resolve_weights(weights: str | Path | None = None, config: str | ModelConfig | None = None) -> WeightsInfo:
    """Find the weights to use and the config they fit.

    Args:
        weights: ``None`` for the manifest's default, a file path, a file name in the bundled
            manifest, or :data:`PLACEHOLDER` for an untrained model of ``config`` (default ``"xception"``).
        config: the model config, needed only for a file no manifest describes (checked otherwise).

    Returns:
        A :class:`WeightsInfo`; its ``path`` is ``None`` for the placeholder.

    Raises:
        WeightsError: no default where one was asked for, or a file that is missing or does not fit ``config``.
    """
    if str(weights) == PLACEHOLDER:
        log.warning("weights=%r: an UNTRAINED placeholder model, every score is meaningless", PLACEHOLDER)
        return WeightsInfo(None, get_config(config or "xception"), {"trained": False})
    if weights is None:
        folder, names = _default_names()
        if len(names) > 1:
            raise WeightsError(f"the default in {folder} is an ensemble of {len(names)} files: resolve it with resolve_members")
        weights = folder / names[0]
    path = Path(weights)
    if not path.exists() and weights_dir() is not None and (weights_dir() / str(weights)).is_file():
        path = weights_dir() / str(weights)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {weights}")
    entry = read_manifest(path.parent).get("files", {}).get(path.name, {})
    return WeightsInfo(path, _config_of(entry, config, path), entry)


def _default_names() -> tuple[Path, list[str]]:
    """The weights folder and the file name(s) its manifest's ``default`` names (a name or a list)."""
    folder = weights_dir()
    manifest = read_manifest(folder) if folder else {"files": {}}
    default = manifest.get("default")
    names = [default] if isinstance(default, str) else list(default or [])
    if not names:
        known = ", ".join(sorted(manifest.get("files", {}))) or "none"
        raise WeightsError(
            f"no default weights (folder: {folder or 'none found'}; files: {known}): pass a weights file, "
            f"or {PLACEHOLDER!r} for an untrained model"
        )
    return folder, names


def resolve_members(weights=None, config: str | ModelConfig | None = None) -> list[WeightsInfo]:
    """The weights of every member of an ensemble (one member for a single file).

    Args:
        weights: ``None`` for the manifest's default (a name or a list of names), one file (path or
            bundled name), several as a list or as one comma-separated string, or :data:`PLACEHOLDER`.
        config: the model config of files no manifest describes (every member then shares it).

    Returns:
        One :class:`WeightsInfo` per member, in the given order (at least one; no file twice).
    """
    if weights is None:
        folder, names = _default_names()
        items = [folder / n for n in names]
    elif isinstance(weights, (list, tuple)):
        items = list(weights)
    else:
        items = [w.strip() for w in str(weights).split(",") if w.strip()] if "," in str(weights) else [weights]
    if not items:
        raise WeightsError("no weights given")
    members = [resolve_weights(item, config) for item in items]
    paths = [m.path for m in members if m.path is not None]
    if len(set(paths)) < len(paths):
        raise WeightsError(f"an ensemble names the same file twice: {[p.name for p in paths]}")
    return members


def ensemble_key(members: list[WeightsInfo]) -> str:
    """The key of an ensemble in a manifest's ``ensembles``: the member file names joined with ``+``."""
    return "+".join(m.path.name if m.path is not None else PLACEHOLDER for m in members)


def ensemble_entry(members: list[WeightsInfo]) -> dict:
    """How ``members`` combine, from the first member's manifest (``{}`` when it says nothing, or for one member)."""
    if len(members) < 2 or members[0].path is None:
        return {}
    return dict(read_manifest(members[0].path.parent).get("ensembles", {}).get(ensemble_key(members), {}))


def save_weights(model, path: str | Path, config: ModelConfig, default: bool = True, **meta) -> Path:
    """Save ``model``'s weights with float16 storage and record them in the folder's manifest.

    Only the model's variables are kept: a compiled model's optimizer state (which would triple
    the file) is dropped.

    Args:
        model: a Keras model built for ``config``.
        path: target ``*.weights.h5`` file.
        config: the config the weights fit (written into the manifest).
        default: make this file the folder's default.
        **meta: extra manifest fields (``trained``, ``training``, ``metrics``, ``command`` ...).
    """
    import h5py
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name.replace(".weights.h5", ".tmp.weights.h5"))
    model.save_weights(tmp)
    half = path.with_name(path.name + ".half")
    with h5py.File(tmp, "r") as src, h5py.File(half, "w") as dst:

        def copy(name, obj):
            if name.split("/")[0] == "optimizer":  # training state, not needed (nor wanted) at inference
                return
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                if data.dtype == np.float32:
                    data = data.astype(np.float16)
                dst.create_dataset(name, data=data)
            else:
                dst.require_group(name)
            for key, value in obj.attrs.items():
                dst[name].attrs[key] = value

        for key, value in src.attrs.items():
            dst.attrs[key] = value
        src.visititems(copy)
    tmp.unlink()
    os.replace(half, path)
    manifest = read_manifest(path.parent)
    manifest["files"][path.name] = {
        "config": config.to_dict(),
        "storage": "float16",
        "bytes": path.stat().st_size,
        "sha256": sha256(path),
        **meta,
    }
    if default:
        manifest["default"] = path.name
    write_manifest(path.parent, manifest)
    return path

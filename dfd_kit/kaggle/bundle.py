"""Turn the project into Kaggle artefacts: an offline wheel dataset and a kernel folder.

A Kaggle kernel that scores the competition's videos runs without internet, so everything it installs
comes from an attached dataset. Both folders are uploaded with the ``kaggle`` CLI.

The **dataset** (:func:`build_dataset`) is flat, because the uploader skips sub-folders by default::

    dfd_kit-<version>-py3-none-any.whl   the package (it carries its own copy of the weights)
    facenet_pytorch, av, pebble wheels    what the Kaggle image lacks (:data:`KAGGLE_LACKS`)
    nvidia_dali_cuda120-….whl, …          optional: DALI and the dependencies it brings (:data:`DALI`)
    requirements.txt                      what the kernel installs: every wheel above, pinned, with its sha256
    manifest.json, *.weights.h5           the weights and their manifest (see :mod:`dfd_kit.models.weights`)
    dataset-metadata.json                 read by ``kaggle datasets create/version``

The **kernel** (:func:`build_kernel`) is ``inference.ipynb`` with its parameters baked in by papermill
(``prepare_only``: Kaggle runs a notebook as it is) and ``kernel-metadata.json`` (read by
``kaggle kernels push``). The notebook's first cell runs
``pip install --no-index --require-hashes --find-links <dataset> -r <dataset>/requirements.txt``: each
line pins one wheel of the dataset and its sha256 (:func:`requirements_with_hashes`), so a damaged or
swapped wheel stops the install, with pip's "DO NOT MATCH THE HASHES" and the file's name, before any
video is scored. pip leaves the dependencies that the image already satisfies alone, and the dataset
never holds a wheel of a :data:`PROTECTED` package, so torch, TensorFlow and the rest of the image
cannot be replaced.
"""

from __future__ import annotations

import email.parser
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .. import __version__
from ..errors import DFDError
from ..models.weights import MANIFEST, read_manifest, sha256, weights_dir, write_manifest

log = logging.getLogger(__name__)

__all__ = [
    "KAGGLE_LACKS",
    "DALI",
    "PROTECTED",
    "COMPETITION",
    "BundleError",
    "Dataset",
    "build_dataset",
    "kernel_parameters",
    "build_kernel",
    "notebook_path",
    "slugify",
]

# Distributions that dfd_kit requires and the Kaggle Python image does not have. Their version specs
# come from the dfd_kit wheel's own requirements. They are bundled without their dependencies: the
# image has those, and bundling them would invite pip to replace the image's builds.
KAGGLE_LACKS: dict[str, str] = {
    "facenet-pytorch": (
        "MTCNN face detector (dfd_kit.inference.faces). Not in the Kaggle image; its own requirements "
        "(numpy, requests, torchvision, pillow) are."
    ),
    "av": (
        "PyAV, the CPU fallback decoder with its own FFmpeg (dfd_kit.inference.decode). Not in the Kaggle image; "
        "where an image has it, pip keeps that one."
    ),
    "pebble": (
        "process pool with per-task timeouts: the restartable decode worker (dfd_kit.inference.worker). Pure Python, "
        "no dependencies; not in the Kaggle image."
    ),
}

# NVIDIA DALI, the GPU (NVDEC) decoder of dfd_kit.inference.decode, from dfd_kit's `gpu` extra. Not in the Kaggle
# image and about 500 MB with its dependencies, hence optional (`dfd bundle --no-dali`). Unlike
# KAGGLE_LACKS it is bundled with its dependencies (nvtx, makefun, libcst, nvimgcodec, nvcomp, ...,
# which the image lacks), minus PROTECTED; pip skips those the image already satisfies.
DALI = "nvidia-dali-cuda120"

# Never shipped in the dataset, whatever pulls them in: the Kaggle image's own builds must stay.
PROTECTED = frozenset(
    {"torch", "torchvision", "torchaudio", "tensorflow", "tensorflow-cpu", "keras", "numpy", "jax", "jaxlib"}
)

COMPETITION = "deepfake-detection-challenge"
KAGGLE_PYTHON = "3.11"  # the Kaggle image's CPython: the wheels are chosen for it, not for this machine
KAGGLE_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
DATASET_METADATA = "dataset-metadata.json"
KERNEL_METADATA = "kernel-metadata.json"
REQUIREMENTS = "requirements.txt"
DEFAULT_TITLE = "dfd_kit offline bundle"
DEFAULT_SUBTITLE = "Offline wheels and weights for dfd_kit deepfake video inference"


class BundleError(DFDError):
    """The bundle cannot be built as asked (a missing wheel, a bad id, an unsafe output folder)."""


@dataclass(frozen=True)
class Dataset:
    """A built dataset folder.

    Attributes:
        path: the folder.
        dataset_id: ``"<owner>/<slug>"``.
        wheels: file names of the wheels in it, sorted.
        weights: the default weights: a file name in it, a list of them (an ensemble), or ``None``
            when it ships none (the kernel then uses the weights inside the dfd_kit wheel).
    """

    path: Path
    dataset_id: str
    wheels: list[str]
    weights: str | list[str] | None

    @property
    def slug(self) -> str:
        return self.dataset_id.split("/", 1)[1]


def slugify(text: str) -> str:
    """Kaggle's URL slug of a title: lower case, runs of other characters become one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    """The canonical distribution name a requirement spec (``"facenet-pytorch==2.5.3"``) starts with."""
    return _canonical(re.match(r"[A-Za-z0-9._-]+", spec.strip()).group(0))


def _wheel_name(path: Path) -> str:
    """The canonical distribution name of a wheel file."""
    return _canonical(path.name.split("-", 1)[0])


def requirements_with_hashes(folder: Path, wheels: list[str]) -> str:
    """``requirements.txt`` for pip's ``--require-hashes``: one line per wheel, ``name==version --hash=sha256:<hex>``."""
    lines = []
    for name in sorted(wheels):
        meta = _wheel_metadata(folder / name)
        lines.append(f"{meta['Name']}=={meta['Version']} --hash=sha256:{sha256(folder / name)}")
    return "\n".join(lines) + "\n"


def _wheel_metadata(path: Path):
    """The ``METADATA`` of a wheel as an :class:`email.message.Message`."""
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        return email.parser.Parser().parsestr(zf.read(name).decode("utf-8"))


def _check_id(ref: str, what: str, min_slug: int) -> None:
    owner, _, slug = ref.partition("/")
    if not owner or not slug or "/" in slug:
        raise BundleError(f"{what} id must be '<owner>/<slug>', got {ref!r}")
    if slug != slugify(slug) or not min_slug <= len(slug) <= 50:
        raise BundleError(f"{what} slug must be {min_slug}-50 characters of a-z, 0-9 and '-', got {slug!r}")


def _project_root() -> Path | None:
    """The checkout this package runs from (a folder with ``pyproject.toml``), or ``None``."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def notebook_path(name: str = "inference.ipynb") -> Path:
    """A notebook of ``notebooks/``: from the checkout, or the copy an installed wheel carries."""
    package = Path(__file__).resolve().parents[1]
    for folder in (package / "_notebooks", package.parent / "notebooks"):
        if (folder / name).is_file():
            return folder / name
    raise BundleError(f"notebook {name} not found next to {package}")


class _Pip:
    """Runs ``python -m pip``, trying the local wheel folders first and the package index second."""

    def __init__(self, find_links: Iterable[Path], offline: bool) -> None:
        self.find_links = [Path(p) for p in find_links]
        self.offline = offline

    def __call__(self, *args: str) -> None:
        links = [a for p in self.find_links if p.is_dir() for a in ("--find-links", str(p))]
        cmd = [sys.executable, "-m", "pip", *args, *links]
        if links:
            local = subprocess.run([*cmd, "--no-index"], capture_output=True, text=True)
            if local.returncode == 0:
                return
            if self.offline:
                raise BundleError(f"offline, and the local wheels do not satisfy `pip {' '.join(args)}`:\n{local.stderr}")
            log.info("local wheels do not satisfy `pip %s`: asking the package index", args[0])
        elif self.offline:
            raise BundleError("offline and no local wheel folder: pass --wheels-from DIR")
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise BundleError(f"`pip {' '.join(args)}` failed:\n{done.stderr}")


def _target_args(python_version: str) -> list[str]:
    """pip options that choose wheels for the Kaggle image instead of the machine building the bundle."""
    abi = "cp" + python_version.replace(".", "")
    args = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp", "--abi", abi]
    return args + [a for p in KAGGLE_PLATFORMS for a in ("--platform", p)]


def _prepare_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / DATASET_METADATA).is_file():
        raise BundleError(f"{out} is neither empty nor an earlier bundle: choose another --out")
    out.mkdir(parents=True, exist_ok=True)


def _build_dfd_kit(pip: _Pip, out: Path) -> Path:
    """The dfd_kit wheel: built from the checkout, else taken from the local wheel folders."""
    root = _project_root()
    if root is not None:
        log.info("building the dfd_kit wheel from %s", root)
        pip("wheel", "--no-deps", "--wheel-dir", str(out), str(root))
    else:
        pip("download", "--no-deps", "--only-binary=:all:", "--dest", str(out), f"dfd_kit=={__version__}")
    wheel = out / f"dfd_kit-{__version__}-py3-none-any.whl"
    if not wheel.is_file():
        raise BundleError(f"no {wheel.name} was produced")
    return wheel


def _requirement_specs(dfd_wheel: Path, names: Iterable[str]) -> list[str]:
    """dfd_kit's own requirement spec (``"av>=12"``) for each of ``names``, markers dropped."""
    specs = {}
    for line in _wheel_metadata(dfd_wheel).get_all("Requires-Dist") or []:
        spec = line.split(";", 1)[0].strip().replace(" ", "")
        specs[_requirement_name(spec)] = spec
    missing = [n for n in names if _canonical(n) not in specs]
    if missing:
        raise BundleError(f"{dfd_wheel.name} does not require {missing}: update KAGGLE_LACKS")
    return [specs[_canonical(n)] for n in names]


def _copy_weights(src: Path | None, out: Path) -> tuple[list[str], str | None]:
    """Copy the manifest and the files it lists (checked against their sha256); return names, default."""
    if src is None:
        log.warning("no weights folder found: the dataset ships no weights")
        return [], None
    manifest = read_manifest(src)
    names = sorted(manifest["files"])
    for name in names:
        path = src / name
        if not path.is_file():
            raise BundleError(f"{src / MANIFEST} lists {name}, which is missing")
        expected = manifest["files"][name].get("sha256")
        if expected and sha256(path) != expected:
            raise BundleError(f"{path} does not match the sha256 in its manifest")
        shutil.copy2(path, out / name)
    write_manifest(out, manifest)
    default = manifest.get("default")
    if not default:
        raise BundleError(f"{src / MANIFEST} names no default weights: the kernel would have nothing to score with")
    return [MANIFEST, *names], default


def _describe(out: Path, wheels: list[str], weights: list[str], reasons: dict[str, str]) -> str:
    """The dataset's description (Markdown): each file, its size, why it is there and its license."""
    lines = [
        "Everything a Kaggle kernel needs to run dfd_kit without internet. Install with",
        "`pip install --no-index --require-hashes --find-links /kaggle/input/<this dataset> -r /kaggle/input/<this dataset>/requirements.txt` (every wheel is pinned with its sha256).",
        "",
        "| file | MB | why | license |",
        "| --- | ---: | --- | --- |",
    ]
    for name in wheels:
        meta = _wheel_metadata(out / name)
        classifiers = [c.rsplit("::", 1)[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
        license_ = meta.get("License-Expression") or (meta.get("License") or "").split("\n")[0] or ", ".join(classifiers) or "see the wheel"
        why = reasons.get(_wheel_name(out / name), f"a dependency of {DALI}")
        lines.append(f"| {name} | {(out / name).stat().st_size / 2**20:.1f} | {why} | {license_[:60]} |")
    for name in weights:
        lines.append(f"| {name} | {(out / name).stat().st_size / 2**20:.1f} | classifier weights / manifest | see manifest |")
    return "\n".join(lines) + "\n"


def build_dataset(
    out: str | Path,
    dataset_id: str,
    *,
    title: str = DEFAULT_TITLE,
    license_name: str = "other",
    weights: str | Path | None = None,
    with_dali: bool = True,
    extra: Sequence[str] = (),
    wheels_from: Sequence[str | Path] = (),
    offline: bool = False,
    python_version: str = KAGGLE_PYTHON,
) -> Dataset:
    """Build the Kaggle dataset folder ``out`` (see the module docstring for its layout).

    Args:
        out: the folder; it must be empty, missing, or an earlier bundle (whose wheels are reused and
            whose files that this build does not make again are removed).
        dataset_id: ``"<owner>/<slug>"``, the slug 6–50 characters.
        title: 6–50 characters.
        license_name: a Kaggle license name; ``"other"`` (the description lists each file's license).
        weights: the weights folder to ship (a ``manifest.json`` and its files); ``None``: the one
            :func:`dfd_kit.models.weights.weights_dir` finds.
        with_dali: also ship NVIDIA DALI and its dependencies (about 500 MB more).
        extra: more requirement specs to ship without their dependencies (for a package some Kaggle
            image lacks, when the kernel's install reports ``No matching distribution``).
        wheels_from: folders of wheels to use before the package index (``pip --find-links``).
        offline: never ask the package index; fail if the local folders do not suffice.
        python_version: the Kaggle image's Python (``"3.11"``); wheels are chosen for it.

    Returns:
        The :class:`Dataset`.
    """
    _check_id(dataset_id, "dataset", 6)
    if not 6 <= len(title) <= 50:
        raise BundleError(f"the dataset title must be 6-50 characters, got {title!r}")
    out = Path(out)
    _prepare_out(out)
    before = {p.name for p in out.iterdir()}
    weight_files, default = _copy_weights(Path(weights) if weights else weights_dir(), out)  # first: fail before any download
    with tempfile.TemporaryDirectory(prefix="dfd-bundle-") as tmp:
        staging = Path(tmp)
        pip = _Pip([out, *map(Path, wheels_from)], offline)
        dfd_wheel = _build_dfd_kit(pip, staging)
        target = _target_args(python_version)
        pip("download", "--no-deps", *target, "--dest", str(staging), *_requirement_specs(dfd_wheel, KAGGLE_LACKS), *extra)
        if with_dali:
            (dali_spec,) = _requirement_specs(dfd_wheel, [DALI])
            pip("download", *target, "--dest", str(staging), dali_spec)
        wheels = []
        for wheel in sorted(staging.glob("*.whl")):
            if _wheel_name(wheel) in PROTECTED:
                log.warning("dropping %s: the Kaggle image's own build must stay", wheel.name)
                continue
            shutil.move(str(wheel), out / wheel.name)
            wheels.append(wheel.name)
    (out / REQUIREMENTS).write_text(requirements_with_hashes(out, wheels))
    reasons = {**KAGGLE_LACKS, DALI: "NVIDIA DALI, the GPU video decoder (optional)", "dfd-kit": "the package"}
    reasons.update({_requirement_name(spec): "asked for with --extra" for spec in extra})
    metadata = {
        "title": title,
        "id": dataset_id,
        "subtitle": DEFAULT_SUBTITLE,
        "description": _describe(out, wheels, weight_files, reasons),
        "licenses": [{"name": license_name}],
        "keywords": [],
    }
    (out / DATASET_METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    keep = {*wheels, *weight_files, REQUIREMENTS, DATASET_METADATA}
    for name in sorted(before - keep):
        log.info("removing %s, left from an earlier bundle", name)
        (out / name).unlink()
    log.info("dataset %s: %d wheels, weights %s, in %s", dataset_id, len(wheels), default, out)
    return Dataset(out, dataset_id, wheels, default)


def kernel_parameters(dataset: Dataset, mount: str | Path | None = None) -> dict[str, str]:
    """The inference notebook's parameters for a kernel that attaches ``dataset``.

    Args:
        dataset: the built dataset.
        mount: where the dataset is at run time; by default Kaggle's ``/kaggle/input/<slug>``.

    Returns:
        ``wheels_dir`` (install from the dataset) and, when it ships weights, ``weights``: the
        default file, or the default ensemble's files joined by commas.
    """
    mount = str(mount or f"/kaggle/input/{dataset.slug}")
    params = {"wheels_dir": mount}
    names = [dataset.weights] if isinstance(dataset.weights, str) else list(dataset.weights or [])
    if names:
        params["weights"] = ",".join(f"{mount}/{name}" for name in names)
    return params


def build_kernel(
    out: str | Path,
    kernel_id: str,
    dataset_id: str,
    parameters: dict | None = None,
    *,
    title: str | None = None,
    enable_gpu: bool = True,
    is_private: bool = True,
    notebook: str | Path | None = None,
) -> Path:
    """Write the kernel folder ``out``: the inference notebook with ``parameters`` baked in, and its metadata.

    Args:
        out: the folder (created; its two files are overwritten).
        kernel_id: ``"<owner>/<slug>"``, the slug at least 5 characters.
        dataset_id: the dataset the kernel attaches (``dataset_sources``).
        parameters: values for the notebook's ``parameters`` cell (see :func:`kernel_parameters`).
        title: the kernel's title; it must turn into the slug (default: the slug with spaces).
        enable_gpu: ask Kaggle for a GPU.
        is_private: keep the kernel private.
        notebook: the notebook to bake (default: ``notebooks/inference.ipynb``).

    Returns:
        The path of ``kernel-metadata.json``.
    """
    import papermill as pm

    _check_id(kernel_id, "kernel", 5)
    _check_id(dataset_id, "dataset", 6)
    slug = kernel_id.split("/", 1)[1]
    title = title or slug.replace("-", " ")
    if slugify(title) != slug:
        raise BundleError(f"the kernel title {title!r} must turn into its slug {slug!r} (it gives {slugify(title)!r})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    code_file = f"{slug}.ipynb"
    pm.execute_notebook(
        str(notebook or notebook_path()),
        str(out / code_file),
        parameters=dict(parameters or {}),
        prepare_only=True,
        kernel_name="python3",
        language="python",
        progress_bar=False,
    )
    metadata = {
        "id": kernel_id,
        "title": title,
        "code_file": code_file,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": is_private,
        "enable_gpu": enable_gpu,
        "enable_tpu": False,
        "enable_internet": False,
        "dataset_sources": [dataset_id],
        "competition_sources": [COMPETITION],
        "kernel_sources": [],
        "model_sources": [],
    }
    path = out / KERNEL_METADATA
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    log.info("kernel %s (dataset %s) in %s", kernel_id, dataset_id, out)
    return path

"""`dfd bundle`: the Kaggle dataset and kernel folders, their metadata, and an offline install from them.

The offline test stands in for the Kaggle image with a fresh virtual environment that sees this
interpreter's packages (torch, TensorFlow, Keras, papermill …) through a ``.pth`` file, except those
the image lacks (dfd_kit and :data:`dfd_kit.kaggle.bundle.KAGGLE_LACKS`). pip runs there with no index, no
configuration and a proxy that leads nowhere, so only the bundle can supply a wheel.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePath

import jsonschema
import nbformat
import pandas as pd
import pytest
from typer.testing import CliRunner

from dfd_kit import __version__
from dfd_kit.kaggle.bundle import (
    COMPETITION,
    KAGGLE_LACKS,
    PROTECTED,
    BundleError,
    Dataset,
    build_dataset,
    build_kernel,
    kernel_parameters,
    slugify,
)
from dfd_kit.cli import app
from dfd_kit.models.weights import sha256
from nb_checks import check_submission, outputs_text

USER = "tester"
DATASET_ID = f"{USER}/dfd-kit"
KERNEL_ID = f"{USER}/dfd-kit-inference"
OFFLINE_KERNEL = "dfd-offline-test"
NOWHERE = "http://127.0.0.1:9"  # a closed local port: any network access fails at once

# The license names `kaggle datasets create` accepts (the Kaggle API's dataset-metadata documentation).
KAGGLE_LICENSES = [
    "CC0-1.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC-BY-NC-SA-4.0", "GPL-2.0", "ODbL-1.0", "DbCL-1.0",
    "copyright-authors", "other", "unknown", "CC-BY-4.0", "CC-BY-NC-4.0", "PDDL", "CC-BY-3.0", "CC-BY-3.0-IGO",
    "US-Government-Works", "CC-BY-NC-SA-3.0-IGO", "CDLA-Permissive-1.0", "CDLA-Sharing-1.0", "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0", "ODC-BY-1.0", "LGPL-3.0", "AGPL-3.0", "FDL-1.3", "EU-ODP-Legal-Notice", "apache-2.0", "GPL-3.0",
]  # fmt: skip

# What `kaggle datasets create/version` reads and checks: id owner/slug with a 6-50 character slug,
# a 6-50 character title, exactly one license, an optional 20-80 character subtitle.
DATASET_SCHEMA = {
    "type": "object",
    "required": ["title", "id", "licenses"],
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string", "minLength": 6, "maxLength": 50},
        "id": {"type": "string", "pattern": r"^[^/\s]+/[a-z0-9-]{6,50}$"},
        "id_no": {"type": "integer"},
        "subtitle": {"type": "string", "minLength": 20, "maxLength": 80},
        "description": {"type": "string"},
        "licenses": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"enum": KAGGLE_LICENSES}}},
        },
        "keywords": {"type": "array", "items": {"type": "string"}},
        "resources": {"type": "array", "items": {"type": "object", "required": ["path"]}},
    },
}

# What `kaggle kernels push` reads: an owner/slug id (slug at least 5 characters), a title of at least
# 5 characters, a code file, language and kernel type from fixed sets, boolean switches (internet is
# on unless the file says false), owner/slug dataset and kernel sources, competition slugs.
KERNEL_SCHEMA = {
    "type": "object",
    "required": [
        "id", "title", "code_file", "language", "kernel_type", "is_private", "enable_gpu", "enable_internet",
        "dataset_sources", "competition_sources", "kernel_sources",
    ],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": r"^[^/\s]+/[a-z0-9-]{5,}$"},
        "id_no": {"type": "integer"},
        "title": {"type": "string", "minLength": 5},
        "code_file": {"type": "string", "minLength": 1},
        "language": {"enum": ["python", "r", "rmarkdown"]},
        "kernel_type": {"enum": ["script", "notebook"]},
        "is_private": {"type": "boolean"},
        "enable_gpu": {"type": "boolean"},
        "enable_tpu": {"type": "boolean"},
        "enable_internet": {"const": False},
        "dataset_sources": {"type": "array", "items": {"type": "string", "pattern": r"^[^/\s]+/[^/\s]+$"}},
        "competition_sources": {"type": "array", "items": {"type": "string", "pattern": r"^[a-z0-9-]+$"}},
        "kernel_sources": {"type": "array", "items": {"type": "string", "pattern": r"^[^/\s]+/[a-z0-9-]{5,}$"}},
        "model_sources": {"type": "array", "items": {"type": "string"}},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "docker_image_pinning_type": {"enum": ["original", "latest"]},
    },
}  # fmt: skip


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_kernel_folder(folder: Path, dataset_id: str) -> tuple[dict, nbformat.NotebookNode]:
    """Validate kernel-metadata.json like `kaggle kernels push` would; return it and the notebook."""
    meta = json.loads((folder / "kernel-metadata.json").read_text())
    jsonschema.validate(meta, KERNEL_SCHEMA)
    assert slugify(meta["title"]) == meta["id"].split("/")[1], "the title must resolve to the id"
    assert meta["dataset_sources"] == [dataset_id]
    assert meta["competition_sources"] == [COMPETITION] == ["deepfake-detection-challenge"]
    nb = nbformat.read(folder / meta["code_file"], as_version=4)
    nbformat.validate(nb)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    k = next(i for i, t in enumerate(tags) if "parameters" in t)
    assert "injected-parameters" in tags[k + 1], "papermill bakes the parameters right after the parameters cell"
    assert all(not c.get("outputs") for c in nb.cells), "prepared, not executed"
    return meta, nb


def injected(nb) -> dict:
    """The values papermill baked into the notebook."""
    cell = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    values: dict = {}
    exec(cell.source, {}, values)  # noqa: S102 - assignments of literals written by papermill
    return values


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, demo_videos, tiny_weights_dir) -> tuple[Path, Path]:
    """`dfd bundle --no-dali` through the CLI; its kernel is baked for this machine (the dataset where it is)."""
    root = tmp_path_factory.mktemp("bundle")
    dataset, kernel = root / "dataset", root / "kernel"
    args = ["bundle", "--out", str(dataset), "--kernel-out", str(kernel), "--user", USER, "--no-dali"]
    args += ["--weights", str(tiny_weights_dir), "--mount", str(dataset)]
    for param in (f"videos_dir={demo_videos}", f"sample_submission={demo_videos / 'sample_submission.csv'}", "frames=4", "device=cpu"):
        args += ["-p", param]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"kaggle datasets create -p {dataset}" in result.output and f"kaggle kernels push -p {kernel}" in result.output
    return dataset, kernel


def test_dataset_is_flat_and_holds_what_kaggle_lacks(bundle, tiny_weights_dir):
    dataset, _ = bundle
    files = sorted(p.name for p in dataset.iterdir())
    assert all((dataset / f).is_file() for f in files), "flat: the uploader skips sub-folders"
    wheels = {canonical(f.split("-")[0]): f for f in files if f.endswith(".whl")}
    assert set(wheels) == {"dfd-kit", *KAGGLE_LACKS}, "no DALI with --no-dali, nothing else"
    assert wheels["dfd-kit"] == f"dfd_kit-{__version__}-py3-none-any.whl"
    assert wheels["facenet-pytorch"].startswith("facenet_pytorch-2.5.3-")
    assert not set(wheels) & PROTECTED
    lines = (dataset / "requirements.txt").read_text().splitlines()
    assert len(lines) == len(wheels), "one pinned line per wheel of the dataset"
    for line in lines:  # name==version --hash=sha256:<hex of that wheel>
        spec, digest = re.fullmatch(r"(\S+==\S+) --hash=sha256:([0-9a-f]{64})", line).groups()
        wheel = wheels[canonical(spec.split("==")[0])]
        assert wheel.split("-")[1] == spec.split("==")[1] and sha256(dataset / wheel) == digest
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest == json.loads((tiny_weights_dir / "manifest.json").read_text())
    assert sha256(dataset / "tiny.weights.h5") == manifest["files"]["tiny.weights.h5"]["sha256"]
    with zipfile.ZipFile(dataset / wheels["dfd-kit"]) as zf:  # the package carries its notebooks and weights
        assert {"dfd_kit/_notebooks/inference.ipynb", "dfd_kit/_weights/manifest.json"} <= set(zf.namelist())


def test_dataset_metadata_is_what_the_kaggle_cli_reads(bundle):
    dataset, _ = bundle
    meta = json.loads((dataset / "dataset-metadata.json").read_text())
    jsonschema.validate(meta, DATASET_SCHEMA)
    assert meta["id"] == DATASET_ID
    for name in os.listdir(dataset):
        if name != "dataset-metadata.json":
            assert name in meta["description"], "the description lists every file"


def test_kernel_folder_is_what_the_kaggle_cli_reads(bundle, demo_videos):
    dataset, kernel = bundle
    meta, nb = check_kernel_folder(kernel, DATASET_ID)
    assert meta["id"] == KERNEL_ID and meta["enable_gpu"] is True and meta["is_private"] is True
    assert injected(nb) == {
        "wheels_dir": str(dataset),
        "weights": str(dataset / "tiny.weights.h5"),
        "videos_dir": str(demo_videos),
        "sample_submission": str(demo_videos / "sample_submission.csv"),
        "frames": 4,
        "device": "cpu",
    }


def test_kernel_for_kaggle_reads_the_dataset_under_kaggle_input(tmp_path):
    dataset = Dataset(tmp_path, "someone/my-weights", [], "best.weights.h5")
    params = kernel_parameters(dataset)
    assert params == {"wheels_dir": "/kaggle/input/my-weights", "weights": "/kaggle/input/my-weights/best.weights.h5"}
    build_kernel(tmp_path / "kernel", "someone/deepfake-scorer", dataset.dataset_id, params, enable_gpu=False)
    meta, nb = check_kernel_folder(tmp_path / "kernel", "someone/my-weights")
    assert meta["enable_gpu"] is False and meta["title"] == "deepfake scorer"
    assert injected(nb) == params
    assert kernel_parameters(Dataset(tmp_path, "someone/no-weights", [], None)) == {"wheels_dir": "/kaggle/input/no-weights"}
    ensemble = kernel_parameters(Dataset(tmp_path, "someone/two", [], ["a.weights.h5", "b.weights.h5"]))
    assert ensemble["weights"] == "/kaggle/input/two/a.weights.h5,/kaggle/input/two/b.weights.h5"


@pytest.mark.parametrize(
    "dataset_id, kernel_id, title",
    [("nouser", KERNEL_ID, None), ("u/short", "u/abc", None), ("u/Has_Caps", KERNEL_ID, None), (DATASET_ID, KERNEL_ID, "Other title")],
)
def test_bad_ids_and_titles_are_refused(tmp_path, dataset_id, kernel_id, title):
    with pytest.raises(BundleError):
        build_kernel(tmp_path, kernel_id, dataset_id, {}, title=title)


def test_a_foreign_output_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="neither empty nor an earlier bundle"):
        build_dataset(tmp_path, DATASET_ID, with_dali=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def fake_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal valid pure-Python wheel of ``name`` (no code), for pip to find with --find-links."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


@pytest.mark.slow
def test_rebuild_works_offline_from_local_wheels_and_drops_protected_ones(bundle, tiny_weights_dir, tmp_path, monkeypatch):
    dataset, _ = bundle
    local = tmp_path / "wheels"
    # The build backend is the one wheel the earlier bundle cannot supply: fetch it while online.
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--dest", str(local), "hatchling"], check=True)
    fake_wheel(local, "numpy", "99.0")
    again = tmp_path / "again"
    shutil.copytree(dataset, again)
    (again / "stale-0.1-py3-none-any.whl").write_bytes(b"")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, NOWHERE)
    rebuilt = build_dataset(
        again, DATASET_ID, weights=tiny_weights_dir, with_dali=False, extra=["numpy==99.0"], wheels_from=[local], offline=True
    )
    assert sorted(rebuilt.wheels) == sorted(p.name for p in dataset.glob("*.whl"))  # numpy dropped
    assert not (again / "stale-0.1-py3-none-any.whl").exists() and not list(again.glob("numpy-*"))
    assert json.loads((again / "dataset-metadata.json").read_text())["id"] == DATASET_ID


@pytest.fixture(scope="module")
def kaggle_image(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A fresh venv that sees this interpreter's site-packages minus what the Kaggle image lacks (:func:`make_image`)."""
    return make_image(tmp_path_factory.mktemp("image"))


def make_image(root: Path) -> tuple[Path, Path, dict]:
    """A fresh venv in ``root`` that sees this interpreter's site-packages minus what the Kaggle image lacks.

    Returns the venv, the folder that stands in for the image's site-packages, and the environment
    to run it in (no pip index, no pip configuration, no network, no PYTHONPATH).
    """
    root.mkdir(parents=True, exist_ok=True)
    site = Path(importlib.util.find_spec("torch").origin).parents[1]
    assert Path(importlib.util.find_spec("tensorflow").origin).parents[1] == site
    absent = {"dfd-kit", *KAGGLE_LACKS}
    hidden = set()
    for dist in importlib.metadata.distributions(path=[str(site)]):
        if canonical(dist.metadata["Name"]) in absent:
            hidden |= {PurePath(f).parts[0] for f in dist.files or [] if PurePath(f).parts[0] != ".."}
    image = root / "image-site-packages"
    image.mkdir()
    for entry in site.iterdir():
        if entry.name not in hidden and entry.suffix != ".pth":
            (image / entry.name).symlink_to(entry)
    venv = root / "venv"
    # Without its own pip and setuptools: like the image's, they come from the image's site-packages.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    (purelib / "kaggle_image.pth").write_text(f"{image}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
    env.update({var: NOWHERE for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")})
    subprocess.run([python, "-m", "ipykernel", "install", "--prefix", str(venv), "--name", OFFLINE_KERNEL], env=env, check=True, capture_output=True)
    return venv, image, env


def where(python: Path, env: dict, *modules: str) -> dict[str, Path]:
    """The folder each module would be imported from in ``python`` (found, not imported)."""
    code = "import importlib.util, sys; print('\\n'.join(importlib.util.find_spec(m).origin for m in sys.argv[1:]))"
    out = subprocess.check_output([python, "-c", code, *modules], env=env, text=True, cwd=python.parent)
    return {m: Path(line).parents[1] for m, line in zip(modules, out.split())}


@pytest.mark.slow
def test_baked_kernel_installs_offline_and_writes_the_submission(bundle, kaggle_image, demo_videos, tmp_path):
    dataset, kernel = bundle
    venv, image, env = kaggle_image
    python = venv / "bin" / "python"
    before = {name: importlib.metadata.version(name) for name in ("torch", "keras")}
    notebook = kernel / json.loads((kernel / "kernel-metadata.json").read_text())["code_file"]
    work = tmp_path / "working"  # Kaggle's /kaggle/working
    work.mkdir()
    run = subprocess.run(
        [python, "-m", "papermill", str(notebook), str(tmp_path / "out.ipynb"), "-k", OFFLINE_KERNEL, "--cwd", str(work)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-5000:]
    check_submission(work / "submission.csv", demo_videos / "sample_submission.csv")

    text = outputs_text(nbformat.read(tmp_path / "out.ipynb", as_version=4))
    installed = re.search(r"Successfully installed (.*)", text).group(1).split()
    assert sorted(canonical(p.rsplit("-", 1)[0]) for p in installed) == sorted({"dfd-kit", *KAGGLE_LACKS})
    assert "Uninstalling" not in text
    # The frameworks are the image's own builds, untouched; dfd_kit and the rest come from the bundle.
    purelib = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env=env, text=True).strip())
    found = where(python, env, "torch", "tensorflow", "keras", "numpy", "dfd_kit", "facenet_pytorch", "av")
    assert {found[m] for m in ("torch", "tensorflow", "keras", "numpy")} == {image}
    assert {found[m] for m in ("dfd_kit", "facenet_pytorch", "av")} == {purelib}
    assert not [p.name for p in purelib.iterdir() if canonical(p.name.split("-")[0]) in PROTECTED]
    assert before == {name: importlib.metadata.version(name) for name in ("torch", "keras")}
    assert "wrote 4 rows to submission.csv" in text and "tiny.weights.h5" in text
    assert pd.read_csv(work / "submission.csv").set_index("filename").loc["corrupt.mp4", "label"] == 0.5


def test_without_a_checkout_the_package_wheel_comes_from_the_local_wheels(bundle, tiny_weights_dir, tmp_path, monkeypatch):
    dataset, _ = bundle
    monkeypatch.setattr("dfd_kit.kaggle.bundle._project_root", lambda: None)  # as when dfd_kit runs from a wheel
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, NOWHERE)
    built = build_dataset(tmp_path / "ds", DATASET_ID, weights=tiny_weights_dir, with_dali=False, wheels_from=[dataset], offline=True)
    assert sorted(built.wheels) == sorted(p.name for p in dataset.glob("*.whl"))
    wheel = f"dfd_kit-{__version__}-py3-none-any.whl"
    assert (tmp_path / "ds" / wheel).read_bytes() == (dataset / wheel).read_bytes()


def test_weights_without_a_default_are_refused_before_any_download(tiny_weights, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy2(tiny_weights, folder / tiny_weights.name)
    manifest = json.loads((tiny_weights.parent / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "default": None}))
    with pytest.raises(BundleError, match="names no default"):
        build_dataset(tmp_path / "ds", DATASET_ID, weights=folder, with_dali=False, wheels_from=[tmp_path / "nothing"], offline=True)


@pytest.mark.slow
def test_kernel_refuses_a_tampered_wheel_before_scoring(bundle, demo_videos, tmp_path):
    """A wheel of the dataset changed after `dfd bundle`: the kernel's install, in an image where nothing of the
    bundle is installed yet (as every Kaggle run starts), stops on its sha256 and nothing is scored."""
    dataset, _ = bundle
    venv, _, env = make_image(tmp_path / "image")
    python = venv / "bin" / "python"
    tampered = tmp_path / "dataset"
    shutil.copytree(dataset, tampered)
    victim = next(tampered.glob("pebble-*.whl"))
    with zipfile.ZipFile(victim, "a") as zf:  # still a valid wheel, other bytes: what a swap or a damaged upload gives
        zf.writestr("pebble/extra.py", "print('not what was bundled')\n")
    built = Dataset(tampered, DATASET_ID, sorted(p.name for p in tampered.glob("*.whl")), "tiny.weights.h5")
    params = {**kernel_parameters(built, tampered), "videos_dir": str(demo_videos), "frames": 4, "device": "cpu",
              "sample_submission": str(demo_videos / "sample_submission.csv")}  # fmt: skip
    kernel = build_kernel(tmp_path / "kernel", KERNEL_ID, DATASET_ID, params).parent
    notebook = kernel / json.loads((kernel / "kernel-metadata.json").read_text())["code_file"]
    work = tmp_path / "working"
    work.mkdir()
    run = subprocess.run([python, "-m", "papermill", str(notebook), str(tmp_path / "out.ipynb"), "-k", OFFLINE_KERNEL, "--cwd", str(work)],
                         env=env, capture_output=True, text=True)  # fmt: skip
    assert run.returncode != 0
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    text = outputs_text(executed)
    assert "DO NOT MATCH THE HASHES" in text and "pebble-" in text
    (error,) = [o for cell in executed.cells for o in cell.get("outputs", []) if o.output_type == "error"]
    assert error.ename == "RuntimeError" and "nothing was scored" in error.evalue and "damaged or swapped" in error.evalue
    assert not (work / "submission.csv").exists()
    assert "dfd_kit" not in where_installed(python, env)


def where_installed(python: Path, env: dict) -> set[str]:
    """Top-level names importable from the venv's own site-packages (what pip put there)."""
    purelib = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env=env, text=True).strip())
    return {p.name for p in purelib.iterdir()}

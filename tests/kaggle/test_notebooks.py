"""The notebooks: valid, thin, parameterised, and run for real with papermill on generated data."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest
from nb_checks import check_submission, outputs_text

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
INFERENCE_PARAMETERS = {
    "videos_dir", "sample_submission", "weights", "frames", "device", "time_budget_s", "wheels_dir", "output", "report", "explain", "gallery",
}
FAST = {"frames": 4, "device": "cpu"}


def output_types(nb) -> set[str]:
    return {mime for cell in nb.cells for out in cell.get("outputs", []) for mime in out.get("data", {})}


@pytest.mark.parametrize("name", ["inference.ipynb", "extract_faces.ipynb", "train.ipynb"])
def test_notebook_is_valid_and_thin(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one papermill parameters cell"
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    # Logic lives in dfd_kit: no function or class is defined in a notebook.
    assert not any(line.lstrip().startswith(("def ", "class ")) for c in code for line in c.source.splitlines())
    # papermill reads every parameter (a comment it cannot parse hides the parameter from --help-notebook).
    inferred = pm.inspect_notebook(str(NOTEBOOKS / name))
    assert len(inferred) == len([ln for ln in tagged[0].source.splitlines() if ln and not ln.startswith("#")])


def test_inference_notebook_parameters_default_to_kaggle():
    params = pm.inspect_notebook(str(NOTEBOOKS / "inference.ipynb"))
    assert INFERENCE_PARAMETERS <= set(params)
    default = {name: ast.literal_eval(p["default"]) for name, p in params.items()}
    assert default["videos_dir"].startswith("/kaggle/input/deepfake-detection-challenge/")
    assert default["sample_submission"] == "/kaggle/input/deepfake-detection-challenge/sample_submission.csv"
    assert default["wheels_dir"] == "/kaggle/input/dfd-kit"
    assert default["output"] == "submission.csv"
    assert default["weights"] == ""


@pytest.fixture(scope="module")
def inference_run(tmp_path_factory, demo_videos, tiny_weights):
    """inference.ipynb executed by papermill on the demo videos with the tiny model; the work dir and notebook."""
    work = tmp_path_factory.mktemp("inference")
    nb = pm.execute_notebook(
        str(NOTEBOOKS / "inference.ipynb"),
        str(work / "inference.out.ipynb"),
        parameters={
            "videos_dir": str(demo_videos),
            "sample_submission": str(demo_videos / "sample_submission.csv"),
            "weights": str(tiny_weights),
            "wheels_dir": "",
            "explain": 1,
            "gallery": 3,
            **FAST,
        },
        cwd=str(work),
        kernel_name="python3",
        progress_bar=False,
    )
    return work, nb


def test_inference_notebook_writes_submission_in_its_working_dir(inference_run, demo_videos):
    work, _ = inference_run
    sub = check_submission(work / "submission.csv", demo_videos / "sample_submission.csv")
    assert sub.loc["corrupt.mp4", "label"] == 0.5 and sub.loc["no_face.mp4", "label"] == 0.5
    assert not (work / "submission.csv.partial").exists()


def test_inference_notebook_ends_with_a_summary(inference_run):
    _, nb = inference_run
    text = outputs_text(nb)
    assert "wrote 4 rows to submission.csv" in text
    assert "DecodeError" in text and "NoFaceError" in text  # fallbacks and why
    for stage in ("install", "load", "predict", "predict/detect", "total (wall)"):
        assert stage in text  # time per stage
    assert "tiny.weights.h5" in text and "UNTRAINED PLACEHOLDER" in text
    assert "image/png" in output_types(nb)  # the label histogram
    assert not any(out.output_type == "error" for c in nb.cells for out in c.get("outputs", []))


def test_inference_notebook_shows_the_most_suspicious_videos(inference_run):
    work, nb = inference_run
    gallery = [out["data"]["text/html"] for c in nb.cells for out in c.get("outputs", []) if "text/html" in out.get("data", {})]
    gallery = [g for g in gallery if "dfd-report" in g]
    assert len(gallery) == 1 and (work / "report.html").is_file()
    labels = pd.read_csv(work / "submission.csv")["label"]
    shown = [float(x) for x in re.findall(r'data-label="([^"]+)"', gallery[0])]
    assert shown == sorted(labels, reverse=True)[:3]  # the three highest P(FAKE), the submission's numbers
    assert gallery[0].count("data:image/jpeg") >= 1 and "Grad-CAM" in gallery[0]


@pytest.mark.slow
def test_extract_and_train_notebooks_run(tmp_path):
    from dfdc_folder import make_dfdc_folder

    videos = make_dfdc_folder(tmp_path / "dfdc_part", n_real=3, fakes_per_real=1, frames=6, extras=False)
    faces = tmp_path / "faces"
    extract_nb = pm.execute_notebook(
        str(NOTEBOOKS / "extract_faces.ipynb"),
        str(tmp_path / "extract.out.ipynb"),
        parameters={"videos_dirs": [str(videos)], "out_dir": str(faces), "config": "xception_96", "frames": 3, "workers": 0, "val_fraction": 0.34},
        cwd=str(tmp_path),
        kernel_name="python3",
        progress_bar=False,
    )
    table = pd.read_parquet(faces / "faces.parquet")
    assert set(table["split"]) == {"train", "val"} and (faces / "videos.parquet").is_file()
    assert f"{len(table)} faces from 6 videos" in outputs_text(extract_nb)
    weights_out = tmp_path / "weights" / "trained.weights.h5"
    train_nb = pm.execute_notebook(
        str(NOTEBOOKS / "train.ipynb"),
        str(tmp_path / "train.out.ipynb"),
        parameters={
            "faces_dir": str(faces),
            "weights_out": str(weights_out),
            "run_dir": str(tmp_path / "run"),
            "config": "xception_96",
            "init": "none",
            "epochs": 1,
            "steps_per_epoch": 2,
            "batch_size": 4,
        },
        cwd=str(tmp_path),
        kernel_name="python3",
        progress_bar=False,
    )
    assert weights_out.is_file()
    manifest = json.loads((weights_out.parent / "manifest.json").read_text())
    assert manifest["default"] == "trained.weights.h5" and manifest["files"]["trained.weights.h5"]["config"]["input_size"] == 96
    assert "best epoch 1" in outputs_text(train_nb) and "image/png" in output_types(train_nb)

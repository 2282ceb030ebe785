"""Shared fixtures: generated media (made once per session) and small real models."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import torch  # noqa: E402,F401  (torch and torchvision before TensorFlow, always)
import torchvision  # noqa: E402,F401
import pytest  # noqa: E402

from media import make_clip  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CLIPS = SHARED / "clips"
REPORTS: list[str] = []  # tables tests want a person to read, printed at the end of the session


@pytest.fixture
def report(request):
    """``report(text)``: print ``text`` at the end of the session. It travels as a user property of the
    test's report, so it reaches the terminal from pytest-xdist's workers too."""
    return lambda text: request.node.user_properties.append(("report", text))


def pytest_runtest_logreport(report):
    if report.when == "call":  # every phase's report carries the properties: take them once
        REPORTS.extend(text for key, text in report.user_properties if key == "report")


def pytest_terminal_summary(terminalreporter):
    for text in REPORTS:
        terminalreporter.write_sep("=", "report")
        terminalreporter.write_line(text)


def pytest_collection_modifyitems(config, items):
    # Files holding a slow test first (a stable sort keeps the order within and among files): pytest-xdist's
    # loadfile hands out whole files in this order, so the run ends on short files, not on one long one.
    files_with_slow = {item.path for item in items if "slow" in item.keywords}
    items.sort(key=lambda item: item.path not in files_with_slow)
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA; none is visible on this machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def cache_home(tmp_path_factory):
    """Caches (the ONNX model cache) go to a folder of this session, not the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def shared_clips() -> Path:
    if not (CLIPS / "metadata.json").is_file():
        pytest.skip(f"real clips not found at {CLIPS} (../shared is beside the checkout in CI)")
    return CLIPS


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Generated clips: H.264 1080p (GOP 12), portrait 1080x1920, H.264 4:4:4 odd size, no face, two faces,
    and B-frames as DFDC's encoder makes them (3 between P frames, the middle one a reference) with an
    IDR frame every 20 frames."""
    d = tmp_path_factory.mktemp("media")
    fast = ("-preset", "ultrafast", "-crf", "23", "-g", "12")
    bframes = ("-preset", "veryfast", "-crf", "23", "-bf", "3", "-b-pyramid", "normal", "-g", "20", "-keyint_min", "20")
    return {
        "bframes": make_clip(d / "bframes.mp4", n=60, height=240, width=320, extra=bframes),
        "h264_1080p": make_clip(d / "h264_1080p.mp4", n=48, height=1080, width=1920, extra=fast),
        "portrait": make_clip(d / "portrait.mp4", n=24, height=1920, width=1080, extra=fast),
        "yuv444_odd": make_clip(d / "yuv444_odd.mp4", n=24, height=481, width=645, pix_fmt="yuv444p", extra=fast),
        "small": make_clip(d / "small.mp4", n=20, height=360, width=640, extra=fast),
        "no_face": make_clip(d / "no_face.mp4", n=20, height=360, width=640, face=False, extra=fast),
        "two_faces": make_clip(d / "two_faces.mp4", n=20, height=480, width=960, faces=2, face_scale=0.8, extra=fast),
    }


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A real Keras Xception at 96 px (random init, seed 0) saved with a manifest, as a bundle would be."""
    import keras

    from dfd_kit.models import create_model, get_config
    from dfd_kit.models.weights import save_weights

    keras.utils.set_random_seed(0)
    cfg = get_config("xception_96")
    return save_weights(create_model(cfg), tmp_path_factory.mktemp("weights") / "tiny.weights.h5", cfg, trained=False)


@pytest.fixture(scope="session")
def tiny_weights_dir(tiny_weights) -> Path:
    """The folder of :func:`tiny_weights`: the weights file plus its manifest (the folder's default)."""
    return tiny_weights.parent


@pytest.fixture(scope="session")
def ensemble_dir(tiny_weights, tmp_path_factory) -> Path:
    """Two members of different input sizes and framings in one folder whose manifest's default is both:
    ``tiny.weights.h5`` (Xception 96 px, uncalibrated) and ``lite64.weights.h5`` (EfficientNet-Lite0 64 px,
    margin 0.1, shift 0.05, random init, with a calibration and flip in its entry)."""
    import json
    import shutil

    import keras
    from configs import LITE_64

    from dfd_kit.models import create_model
    from dfd_kit.models.weights import save_weights

    folder = tmp_path_factory.mktemp("ensemble")
    shutil.copy2(tiny_weights, folder / tiny_weights.name)
    keras.utils.set_random_seed(1)
    save_weights(create_model(LITE_64), folder / "lite64.weights.h5", LITE_64, trained=False,
                 calibration={"a": 0.8, "b": 0.3}, inference={"frames": 4, "rule": "mean", "flip": True})  # fmt: skip
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][tiny_weights.name] = json.loads((tiny_weights.parent / "manifest.json").read_text())["files"][tiny_weights.name]
    manifest["default"] = [tiny_weights.name, "lite64.weights.h5"]
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


@pytest.fixture(scope="session")
def demo_videos(tmp_path_factory) -> Path:
    """The 4-video DFDC-style demo folder (real, fake, no face, corrupt) with its sample_submission.csv."""
    from dfd_kit.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("demo") / "videos", frames_per_video=12)


@pytest.fixture(scope="session")
def predictor(tiny_weights):
    from dfd_kit.inference.predict import Predictor

    return Predictor(weights=tiny_weights, device="cpu", frames=8, precision="float32")

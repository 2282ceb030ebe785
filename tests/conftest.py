"""Session fixtures: media and a tiny model, made once and shared by the tests that need them."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_videos(tmp_path_factory) -> Path:
    """The 4-video DFDC-style demo folder (real, fake, no face, corrupt) with its sample_submission.csv."""
    from dfd_kit.demo import make_demo

    return make_demo(tmp_path_factory.mktemp("demo") / "videos", frames_per_video=12)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A weights folder: an untrained 96-px Xception saved with its manifest (the folder's default)."""
    from dfd_kit.models import create_model, get_config
    from dfd_kit.weights import save_weights

    folder = tmp_path_factory.mktemp("weights")
    config = get_config("xception_96")
    save_weights(create_model(config), folder / "tiny.weights.h5", config, trained=False)
    return folder

"""dfd_kit: deepfake video detection for DFDC-format folders.

One folder per part of the work; imports run down this list, never up::

    cli.py, __main__.py                        the command line
    kaggle/                                    the offline Kaggle bundle, the notebooks' helpers
    training/                                  face crops, training, calibration, metrics
    inference/                                 video → row: sampling → decode → faces → scores → P(FAKE) → submission
    models/                                    model configs, backbones, the classifier, weights, ONNX, Grad-CAM
    errors, atomic, device, console, metadata  the floor every part may use
    demo.py, synth.py                          the demo folder and synthetic clips (``dfd demo``, tests, bench/)

The names of :data:`__all__` are the public API: each is imported from its module on first use, so
``import dfd_kit`` loads no framework. Heavy frameworks (torch, TensorFlow) are imported only by the
modules that need them, torch first.
"""

import importlib

__version__ = "0.1.0"

#: public name -> the module that defines it
_API = {
    **dict.fromkeys(("Predictor", "predict_folder", "Summary", "VideoResult"), "dfd_kit.inference.predict"),
    **dict.fromkeys(("Sampling", "Frames", "make_decoder"), "dfd_kit.inference.decode"),
    **dict.fromkeys(("FaceSampler", "Faces", "Framing"), "dfd_kit.inference.faces"),
    "sample_indices": "dfd_kit.inference.sampling",
    "aggregate": "dfd_kit.inference.aggregate",
    "SubmissionWriter": "dfd_kit.inference.submission",
    **dict.fromkeys(("Classifier", "create_model", "build_classifier", "preprocess_for"), "dfd_kit.models.classifier"),
    "Ensemble": "dfd_kit.models.ensemble",
    **dict.fromkeys(("ModelConfig", "get_config", "register_model"), "dfd_kit.models.registry"),
    **dict.fromkeys(("resolve_weights", "resolve_members", "save_weights"), "dfd_kit.models.weights"),
    "GradCam": "dfd_kit.models.gradcam",
    "ExtractSettings": "dfd_kit.training.extract",
    "extract_folders": "dfd_kit.training.dispatch",
    "TrainSettings": "dfd_kit.training.train",
    "DFDError": "dfd_kit.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})

"""The face classifier and what it is made of: named configs, backbones, weights, runtimes.

``registry.py`` names the configs (architecture, input size, crop framing); ``xception.py`` and
``efficientnet_lite.py`` build the backbones; ``classifier.py`` puts the sigmoid head on them and
scores face crops (:class:`Classifier`), on TensorFlow or ONNX Runtime (``onnx_backend.py``);
``ensemble.py`` combines several classifiers' scores of the same faces (:class:`Ensemble`), ``soup.py``
averages several files of one config into one model;
``weights.py`` finds weights files and keeps their manifest; ``gradcam.py`` shows where a model
looks. Nothing here imports inference, training or Kaggle code.
"""

from .classifier import (
    BACKENDS,
    INITS,
    PRECISIONS,
    Classifier,
    architecture,
    build_classifier,
    create_model,
    imagenet_classifier,
    last_features_layer,
    load_weights,
    preprocess_for,
)
from .ensemble import COMBINES, Ensemble
from .registry import MODEL_CONFIGS, ModelConfig, get_config, register_model

__all__ = [
    "ModelConfig", "MODEL_CONFIGS", "register_model", "get_config", "INITS", "architecture", "preprocess_for", "build_classifier",
    "create_model", "imagenet_classifier", "last_features_layer", "load_weights", "Classifier", "PRECISIONS", "BACKENDS",
    "Ensemble", "COMBINES",
]  # fmt: skip

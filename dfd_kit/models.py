"""The face classifier: a Keras Xception with a one-unit sigmoid head, and a registry of configs.

- :func:`build_xception` is a Keras-applications-style builder (``keras.applications.Xception`` with
  ``weights=None``, global average pooling, dropout, ``Dense(1, sigmoid)``).
- :func:`preprocess_input` owns the pixel convention: uint8 RGB → float32 in ``[-1, 1]``.
- :data:`MODEL_CONFIGS` names configs (input size, crop margin) the way timm names models; a
  weights manifest says which config its file fits, so the two travel together.
- :class:`Classifier` loads a config and its weights once and scores batches of face crops.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .device import import_tensorflow
from .errors import WeightsError

__all__ = [
    "ModelConfig",
    "MODEL_CONFIGS",
    "register_model",
    "get_config",
    "build_xception",
    "preprocess_input",
    "create_model",
    "Classifier",
    "PRECISIONS",
    "BACKENDS",
]

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
BACKENDS = ("tf", "onnx")


@dataclass(frozen=True)
class ModelConfig:
    """A named model recipe; weights are only valid for the config they were trained with.

    Attributes:
        name: registry key.
        input_size: side of the square RGB input in pixels.
        margin: relative crop margin the model was trained with (see :class:`dfd_kit.faces.FaceSampler`).
        dropout: dropout rate before the head.
    """

    name: str
    input_size: int = 299
    margin: float = 0.3
    dropout: float = 0.2

    def to_dict(self) -> dict:
        return asdict(self)


MODEL_CONFIGS: dict[str, ModelConfig] = {}


def register_model(config: ModelConfig) -> ModelConfig:
    """Add ``config`` to :data:`MODEL_CONFIGS` (re-registering an identical config is a no-op)."""
    known = MODEL_CONFIGS.get(config.name)
    if known is not None and known != config:
        raise ValueError(f"model config {config.name!r} is already registered as {known}")
    MODEL_CONFIGS[config.name] = config
    return config


register_model(ModelConfig("xception", input_size=299))
register_model(ModelConfig("xception_224", input_size=224))
register_model(ModelConfig("xception_160", input_size=160))
register_model(ModelConfig("xception_128", input_size=128))
register_model(ModelConfig("xception_96", input_size=96))


def get_config(name: str | ModelConfig) -> ModelConfig:
    """Look a config up by name (a :class:`ModelConfig` is returned as is)."""
    if isinstance(name, ModelConfig):
        return name
    if name not in MODEL_CONFIGS:
        raise KeyError(f"unknown model config {name!r}; registered: {sorted(MODEL_CONFIGS)}")
    return MODEL_CONFIGS[name]


def preprocess_input(x):
    """uint8 (or float) RGB pixels in ``[0, 255]`` → float32 in ``[-1, 1]`` (Xception's convention).

    Accepts a numpy array or a TensorFlow tensor of shape ``[..., H, W, 3]``.
    """
    if isinstance(x, np.ndarray):
        return x.astype(np.float32) / 127.5 - 1.0
    tf = import_tensorflow()
    return tf.cast(x, tf.float32) / 127.5 - 1.0


def build_xception(input_size: int = 299, dropout: float = 0.2, precision: str = "float32"):
    """Xception backbone (random init) + global average pooling + dropout + ``Dense(1, sigmoid)``.

    Args:
        input_size: side of the square input in pixels (at least 71).
        dropout: dropout rate before the head.
        precision: a Keras dtype policy from :data:`PRECISIONS`; the head always outputs float32.

    Returns:
        A ``keras.Model`` mapping float32 ``[B, S, S, 3]`` in ``[-1, 1]`` to float32 ``[B, 1]``, P(FAKE).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    import_tensorflow()
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        backbone = keras.applications.Xception(
            include_top=False, weights=None, input_shape=(input_size, input_size, 3), pooling="avg"
        )
        x = keras.layers.Dropout(dropout, name="head_dropout")(backbone.output)
        out = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="head")(x)
    finally:
        keras.config.set_dtype_policy(previous)
    return keras.Model(backbone.input, out, name=f"xception_{input_size}")


def create_model(config: str | ModelConfig, weights: str | Path | None = None, precision: str = "float32"):
    """Build the model for ``config`` and load ``weights`` (a ``.weights.h5`` file) if given."""
    cfg = get_config(config)
    model = build_xception(cfg.input_size, cfg.dropout, precision)
    if weights is not None:
        load_weights(model, weights, cfg)
    return model


def load_weights(model, path: str | Path, config: ModelConfig) -> None:
    """Load a ``.weights.h5`` file into ``model``; raise :class:`WeightsError` with the reason."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with warnings.catch_warnings():
            # Keras 3 warns about a Functional model's internal bookkeeping container, which holds no
            # variables; every variable is loaded (tests/test_models.py checks them one by one).
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
            :mod:`dfd_kit.onnx_backend`).
        threads: ONNX Runtime intra-op threads (0 lets it choose); TensorFlow keeps its own.
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
    ) -> None:
        tf = import_tensorflow()
        import keras

        self.config = get_config(config)
        self.weights = Path(weights) if weights is not None else None
        self.precision = precision
        self.batch_size = batch_size
        if weights is None:
            keras.utils.set_random_seed(seed)
        self.model = create_model(self.config, weights, precision)
        size = self.config.input_size
        model = self.model

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)], reduce_retracing=True)
        def forward(crops):
            return tf.reshape(model(preprocess_input(crops), training=False), [-1])

        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        if backend == "onnx":
            from .onnx_backend import OnnxForward
            from .weights import sha256

            self._forward = OnnxForward(model, size, sha256(self.weights) if self.weights else None, threads)
        else:
            self._forward = lambda crops: forward(crops).numpy()

    @property
    def input_size(self) -> int:
        return self.config.input_size

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Score crops.

        Args:
            crops: uint8 ``[K, S, S, 3]`` RGB with ``S == input_size`` (or one ``[S, S, 3]`` crop).

        Returns:
            float32 ``[K]``, P(FAKE) of each crop.
        """
        crops = np.asarray(crops, dtype=np.uint8)
        if crops.ndim == 3:
            crops = crops[None]
        s = self.config.input_size
        if crops.shape[1:] != (s, s, 3):
            raise ValueError(f"crops must be [K, {s}, {s}, 3], got {list(crops.shape)}")
        if not len(crops):
            return np.zeros(0, np.float32)
        parts = [self._forward(crops[i : i + self.batch_size]) for i in range(0, len(crops), self.batch_size)]
        return np.concatenate(parts).astype(np.float32)

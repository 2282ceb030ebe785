"""Where the classifier looks: Grad-CAM heat maps over face crops (Selvaraju et al., ICCV 2017).

The heat map of a crop is the ReLU of the backbone's last convolutional feature map weighted, channel
by channel, by the spatial mean of the gradient of the score with respect to it, upsampled to the
crop. The score is the logit of P(FAKE) when the head is a ``Dense`` layer with a sigmoid (as in
:func:`dfd_kit.models.classifier.build_classifier`): a confident P(FAKE) rounds to 1.0 in float32, where the
sigmoid's gradient is zero; otherwise it is the model's output.
The feature map is found generically, as the output of the model's last layer whose output is rank 4
(``[B, H, W, C]``, before global pooling): ``block14_sepconv2_act`` in Xception, ``top_activation`` in
Keras' EfficientNets and dfd_kit's EfficientNet-Lite (:func:`dfd_kit.models.classifier.last_features_layer` names
the same layers). It always runs on the Keras model with TensorFlow (a backward pass), also when the
classifier scores with ONNX Runtime, and takes its input through the config's own preprocessing
(:func:`dfd_kit.models.classifier.preprocess_for`), as the classifier does.
"""

from __future__ import annotations

import numpy as np

from typing import Callable

from ..device import import_tensorflow

__all__ = ["feature_layer", "GradCam", "overlay"]


def feature_layer(model) -> str:
    """Name of the last layer of ``model`` (a Keras model) whose output is rank 4, not the input."""
    import keras

    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        output = layer.output
        if not isinstance(output, (list, tuple)) and len(output.shape) == 4:
            return layer.name
    raise ValueError(f"model {model.name!r} has no layer with a [B, H, W, C] output to explain")


class GradCam:
    """Grad-CAM of one Keras model, built once.

    Args:
        model: a Keras model mapping preprocessed float32 ``[B, S, S, 3]`` to ``[B, 1]``, P(FAKE)
            (``Classifier.model``).
        preprocess: uint8 RGB ``[B, S, S, 3]`` → the model's float32 input
            (``preprocess_for(classifier.config)``).
        layer: the feature map's layer name (default: :func:`feature_layer`).
    """

    def __init__(self, model, preprocess: Callable, layer: str | None = None) -> None:
        import_tensorflow()
        import keras

        self.layer = layer or feature_layer(model)
        self._preprocess = preprocess
        head = model.layers[-1]
        self._head = head if isinstance(head, keras.layers.Dense) and getattr(head.activation, "__name__", "") == "sigmoid" else None
        score = head.input if self._head is not None else model.outputs[0]
        self._model = keras.Model(model.inputs, [model.get_layer(self.layer).output, score])

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """Heat maps of ``crops``.

        Args:
            crops: uint8 ``[K, S, S, 3]`` RGB face crops.

        Returns:
            float32 ``[K, S, S]`` in ``[0, 1]``, each map scaled so that its peak is 1 (all zero where
            no feature raises the score).
        """
        tf = import_tensorflow()
        crops = np.asarray(crops, np.uint8)
        if not len(crops):
            return np.zeros(crops.shape[:3], np.float32)
        x = tf.convert_to_tensor(self._preprocess(crops))
        with tf.GradientTape() as tape:
            features, output = self._model(x, training=False)
            output = tf.cast(output, tf.float32)
            if self._head is not None:  # the logit: the head without its sigmoid
                output = tf.matmul(output, tf.cast(self._head.kernel, tf.float32)) + tf.cast(self._head.bias, tf.float32)
            score = tf.reduce_sum(output)
        grads = tf.cast(tape.gradient(score, features), tf.float32)  # [K, h, w, C]
        features = tf.cast(features, tf.float32)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # [K, 1, 1, C]
        cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1, keepdims=True))  # [K, h, w, 1]
        cam = tf.image.resize(cam, crops.shape[1:3], method="bilinear")[..., 0].numpy()
        peak = cam.reshape(len(cam), -1).max(axis=1)
        return (cam / np.where(peak > 0, peak, 1.0)[:, None, None]).astype(np.float32)


def overlay(crops: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Heat maps drawn over their crops with the JET colour map (blue: cold, red: hot).

    Args:
        crops: uint8 ``[K, S, S, 3]`` RGB.
        heat: float ``[K, S, S]`` in ``[0, 1]``.
        alpha: weight of the colour map.

    Returns:
        uint8 ``[K, S, S, 3]`` RGB.
    """
    import cv2

    out = np.empty_like(crops)
    for k, (crop, h) in enumerate(zip(crops, heat)):
        colour = cv2.applyColorMap(np.uint8(np.clip(h, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
        out[k] = cv2.addWeighted(crop, 1.0 - alpha, np.ascontiguousarray(colour), alpha, 0.0)
    return out

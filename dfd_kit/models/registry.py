"""Named model configs, the way timm names models: an architecture, its input size and the crop framing.

A weights manifest says which config its file fits, so the two travel together. This module
depends on nothing else in the package: the architectures (:mod:`dfd_kit.models.xception`,
:mod:`dfd_kit.models.efficientnet_lite`), :mod:`dfd_kit.models.classifier` and :mod:`dfd_kit.models.weights` all read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["ARCHITECTURES", "ModelConfig", "MODEL_CONFIGS", "register_model", "get_config"]

#: Backbones :func:`dfd_kit.models.classifier.create_model` can build.
ARCHITECTURES = ("xception", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@dataclass(frozen=True)
class ModelConfig:
    """A named model recipe; weights are only valid for the config they were trained with.

    Attributes:
        name: registry key.
        arch: backbone, one of :data:`ARCHITECTURES`.
        input_size: side of the square RGB input in pixels.
        margin: relative crop margin: the crop's side is ``(1 + margin)`` times the face box's longer
            side (see :func:`dfd_kit.inference.faces.square_box`; negative crops inside the box).
        shift: vertical shift of the crop's centre below the box's centre, in crop sides.
        dropout: dropout rate before the one-unit head.
    """

    name: str
    arch: str = "xception"
    input_size: int = 299
    margin: float = 0.3
    shift: float = 0.0
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; known: {ARCHITECTURES}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """A config from a manifest entry (entries written before ``arch``/``shift`` existed are Xception, unshifted)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


MODEL_CONFIGS: dict[str, ModelConfig] = {}


def register_model(config: ModelConfig) -> ModelConfig:
    """Add ``config`` to :data:`MODEL_CONFIGS` (re-registering an identical config is a no-op)."""
    known = MODEL_CONFIGS.get(config.name)
    if known is not None and known != config:
        raise ValueError(f"model config {config.name!r} is already registered as {known}")
    MODEL_CONFIGS[config.name] = config
    return config


def get_config(name: "str | ModelConfig") -> ModelConfig:
    """Look a config up by name (a :class:`ModelConfig` is returned as is)."""
    if isinstance(name, ModelConfig):
        return name
    if name not in MODEL_CONFIGS:
        raise KeyError(f"unknown model config {name!r}; registered: {sorted(MODEL_CONFIGS)}")
    return MODEL_CONFIGS[name]


for _size in (299, 224, 160, 128, 96):
    register_model(ModelConfig("xception" if _size == 299 else f"xception_{_size}", "xception", _size))

# EfficientNet-Lite framed like the DFDC face crops they are trained on (one per video, tight boxes;
# measured on 300 of them, padded with black, by facenet-pytorch's MTCNN: weights/README.md): the
# crop's side is 0.91 of the MTCNN box's longer side (median), its centre 0.044 of a side below the
# box's centre. Input sizes are the variants' native resolutions, and 192 px for
# a Lite0 that trains 2.5x faster on CPU (DFDC faces are ~155 px in the source video).
_DFDC_FRAMING = dict(margin=-0.09, shift=0.044)
register_model(ModelConfig("efficientnet_lite0", "efficientnet_lite0", 224, dropout=0.2, **_DFDC_FRAMING))
register_model(ModelConfig("efficientnet_lite0_192", "efficientnet_lite0", 192, dropout=0.2, **_DFDC_FRAMING))
register_model(ModelConfig("efficientnet_lite1", "efficientnet_lite1", 240, dropout=0.2, **_DFDC_FRAMING))
register_model(ModelConfig("efficientnet_lite2", "efficientnet_lite2", 260, dropout=0.3, **_DFDC_FRAMING))

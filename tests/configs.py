"""Model configs registered for the tests: the real architectures at a small input size."""

from dfd_kit.models.registry import ModelConfig, register_model

#: EfficientNet-Lite0 (real architecture, real ImageNet weights) at 96 px, framed like the test extractions
LITE_96 = register_model(ModelConfig("test_efficientnet_lite0_96", "efficientnet_lite0", 96, margin=0.3))
#: a second member for ensembles: another input size and another framing
LITE_64 = register_model(ModelConfig("test_efficientnet_lite0_64", "efficientnet_lite0", 64, margin=0.1, shift=0.05))

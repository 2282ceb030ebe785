"""The learning-rate schedule of a training stage: linear warmup, then cosine decay to zero.

The values are those of ``keras.optimizers.schedules.CosineDecay(0.0, decay_steps,
warmup_target=peak, warmup_steps=warmup)``, computed without a branch. Keras' optimizers evaluate
the schedule once per variable when the train step is traced (AdamW twice: the update and the weight
decay), and ``CosineDecay`` builds a ``cond`` subgraph each time: for Xception's 312 variables
that was most of the first step's tracing time. Here both sides are computed and one is picked
with ``where``, a few ops per evaluation.
"""

from __future__ import annotations

import math

from ..device import import_tensorflow

import_tensorflow()  # torch and torchvision before TensorFlow, TensorFlow before Keras
import keras  # noqa: E402
from keras import ops  # noqa: E402

__all__ = ["WarmupCosine"]


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate at optimizer step ``step``: ``peak * step / warmup_steps`` while ``step <
    warmup_steps``, then ``peak * (1 + cos(pi * min(step - warmup_steps, decay_steps) / decay_steps)) / 2``.

    Args:
        peak: the learning rate at the end of the warmup.
        decay_steps: steps of the cosine decay after the warmup (at least 1); it ends at 0.
        warmup_steps: steps of the linear warmup from 0 (0: none, the decay starts at ``peak``).
    """

    def __init__(self, peak: float, decay_steps: int, warmup_steps: int = 0) -> None:
        if decay_steps < 1 or warmup_steps < 0:
            raise ValueError(f"need decay_steps >= 1 and warmup_steps >= 0, got {decay_steps} and {warmup_steps}")
        self.peak, self.decay_steps, self.warmup_steps = float(peak), int(decay_steps), int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = self.peak * step / max(1, self.warmup_steps)
        done = ops.minimum(ops.maximum(step - self.warmup_steps, 0.0), float(self.decay_steps)) / self.decay_steps
        decay = self.peak * 0.5 * (1.0 + ops.cos(math.pi * done))
        return ops.where(step < self.warmup_steps, warmup, decay)

    def get_config(self) -> dict:
        return {"peak": self.peak, "decay_steps": self.decay_steps, "warmup_steps": self.warmup_steps}

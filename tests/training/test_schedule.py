"""The stage's learning-rate schedule: CosineDecay's values, without its per-call branch."""

from __future__ import annotations

import numpy as np
import pytest

from dfd_kit.training.schedule import WarmupCosine

import keras  # noqa: E402  (after dfd_kit: torch before TensorFlow)


@pytest.mark.parametrize(("warmup", "decay"), [(0, 1), (0, 7), (1, 10), (5, 20), (50, 250)])
def test_same_rates_as_keras_cosine_decay_with_warmup(warmup, decay):
    ours = WarmupCosine(3e-4, decay, warmup_steps=warmup)
    keras_schedule = keras.optimizers.schedules.CosineDecay(0.0, decay, warmup_target=3e-4, warmup_steps=warmup)
    steps = np.arange(warmup + decay + 5)
    got = np.array([float(ours(s)) for s in steps])
    want = np.array([float(keras_schedule(s)) for s in steps])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12)
    assert got.max() == pytest.approx(3e-4) and got[-1] == pytest.approx(0.0, abs=1e-12)


def test_traced_without_a_branch():
    import tensorflow as tf

    graph = tf.function(WarmupCosine(1e-3, 100, warmup_steps=10)).get_concrete_function(tf.TensorSpec([], tf.int64)).graph
    ops = {op.type for op in graph.get_operations()}
    assert not ops & {"If", "StatelessIf", "Case", "StatelessCase"}, ops


def test_rejects_an_empty_decay():
    with pytest.raises(ValueError, match="decay_steps >= 1"):
        WarmupCosine(1e-3, 0)
    assert WarmupCosine(1e-3, 10, 2).get_config() == {"peak": 1e-3, "decay_steps": 10, "warmup_steps": 2}

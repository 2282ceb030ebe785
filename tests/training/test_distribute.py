"""tf.distribute: a MirroredStrategy training step on CPU with two logical devices, in a fresh process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
from dfdc_folder import make_dfdc_folder

from dfd_kit.training.dispatch import extract_folders
from dfd_kit.training.extract import ExtractSettings
from dfd_kit.training.split import split_file

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from dfd_kit.device import import_tensorflow
    tf = import_tensorflow()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from dfd_kit.training.train import TrainSettings, choose_strategy, train
    strategy = choose_strategy()
    settings = TrainSettings(config="xception_96", epochs=1, steps_per_epoch=2, batch_size=4, warmup_steps=1, sbi="mix", seed=0)
    state = train(sys.argv[1], sys.argv[2], sys.argv[3], settings, progress=False)
    print(json.dumps({"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync, "state": state}))
    """
)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    videos = make_dfdc_folder(tmp_path_factory.mktemp("dfdc") / "part", n_real=3, fakes_per_real=1, frames=6, extras=False)
    out = tmp_path_factory.mktemp("faces")
    extract_folders([videos], out, ExtractSettings(image_size=96, margin=0.3, frames=3), workers=0, progress=False)
    split_file(out / "faces.parquet", val_fraction=0.34, seed=0)
    return out / "faces.parquet"


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(table, tmp_path):
    weights, run_dir = tmp_path / "w" / "m.weights.h5", tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(table), str(weights), str(run_dir)], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["strategy"] == "MirroredStrategy" and result["replicas"] == 2
    assert result["state"]["best_epoch"] == 1 and weights.is_file()
    assert len((run_dir / "log.csv").read_text().splitlines()) == 2  # header + the one epoch


WORKER = textwrap.dedent(
    """
    import json
    import numpy as np
    from dfd_kit.training.train import choose_strategy
    strategy = choose_strategy()
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build(model.trainable_variables)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    batches = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()))

    @tf.function
    def step(batch):
        def replica(xb, yb):
            with tf.GradientTape() as tape:
                loss = tf.nn.compute_average_loss(keras.losses.binary_crossentropy(yb, model(xb, training=True)), global_batch_size=8)
            grads = tape.gradient(loss, model.trainable_variables)
            grads = tf.distribute.get_replica_context().all_reduce("sum", grads)
            optimizer.apply(grads, model.trainable_variables)
        strategy.run(replica, args=batch)

    for _ in range(3):
        step(next(batches))
    w = np.concatenate([v.numpy().ravel() for v in model.weights])
    print(json.dumps({"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync, "weights": w.tolist()}))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_strategy_from_tf_config():
    """Two worker processes on loopback, configured by TF_CONFIG, train in sync: equal weights after.

    A custom step (``strategy.run`` + an all-reduce of the gradients), since Keras 3's ``fit`` does not
    run under MultiWorkerMirroredStrategy (keras-team/keras#20585).
    """
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    procs = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "TF_CPP_MIN_LOG_LEVEL": "2"}
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-3000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    assert [o["strategy"] for o in outs] == ["CollectiveAllReduceStrategy"] * 2  # = MultiWorkerMirroredStrategy
    assert [o["replicas"] for o in outs] == [2, 2]
    assert outs[0]["weights"] == pytest.approx(outs[1]["weights"], abs=1e-6)


@pytest.mark.gpu
def test_dali_training_input_on_gpu(table, tmp_path):
    pytest.importorskip("nvidia.dali.plugin.tf", reason="needs nvidia-dali-tf-plugin")
    from dfd_kit.training.train import TrainSettings, train

    settings = TrainSettings(config="xception_96", epochs=1, steps_per_epoch=2, batch_size=4, warmup_steps=1, sbi="off", input="dali")
    state = train(table, tmp_path / "m.weights.h5", tmp_path / "run", settings, progress=False)
    assert state["best_epoch"] == 1

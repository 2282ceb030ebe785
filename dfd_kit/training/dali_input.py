"""Training input on the GPU: a DALI pipeline per replica, fed to ``model.fit`` under ``tf.distribute``.

``crops_pipeline`` reads the extracted face crops (JPEG files + labels), decodes them on the GPU
(nvJPEG, ``mixed``), augments them the way :mod:`dfd_kit.training.augment` does on the CPU (flip, JPEG
re-compression, blur, brightness/contrast, scale) and normalises to Xception's ``[-1, 1]``.
:func:`distributed_dataset` builds one pipeline per replica, each reading its own shard, through
``nvidia.dali.plugin.tf.DALIDataset`` and ``strategy.distribute_datasets_from_function`` (the pattern
of DALI's multi-GPU TensorFlow example). Needs ``nvidia-dali-cuda120`` and ``nvidia-dali-tf-plugin``
and a GPU per replica; pseudo-fakes must already be files (DALI does not run the numpy self-blend).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["crops_pipeline", "distributed_dataset"]


def crops_pipeline(files: list[str], labels: list[int], size: int, shard_id: int, num_shards: int, augment: bool = True, **pipeline_args):
    """A DALI pipeline of (float32 ``[B, size, size, 3]`` in ``[-1, 1]`` on GPU, int32 ``[B, 1]``) batches.

    Args:
        files, labels: crop JPEG paths and their labels (1 = FAKE).
        size: model input side in pixels.
        shard_id, num_shards: this replica's shard of the files.
        augment: random flip, JPEG quality 30–95, blur, brightness/contrast, 85–115 % rescale.
        **pipeline_args: ``batch_size``, ``num_threads``, ``device_id``, ``seed`` (DALI's own).
    """
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(**pipeline_args)
    def pipeline():
        jpegs, label = fn.readers.file(
            files=files, labels=labels, shard_id=shard_id, num_shards=num_shards, random_shuffle=True, name="reader"
        )
        images = fn.decoders.image(jpegs, device="mixed", output_type=types.RGB)
        if augment:
            images = fn.flip(images, horizontal=fn.random.coin_flip())
            images = fn.jpeg_compression_distortion(images, quality=fn.random.uniform(range=(30, 95), dtype=types.INT32))
            images = fn.gaussian_blur(images, sigma=fn.random.uniform(range=(0.1, 1.2)))
            images = fn.brightness_contrast(
                images, brightness=fn.random.uniform(range=(0.8, 1.2)), contrast=fn.random.uniform(range=(0.8, 1.2))
            )
            side = fn.random.uniform(range=(0.85 * size, 1.15 * size))
            images = fn.resize(images, resize_x=side, resize_y=side)
        images = fn.resize(images, resize_x=size, resize_y=size)
        images = fn.cast(images, dtype=types.FLOAT) / 127.5 - 1.0
        return images, fn.reshape(fn.cast(label, dtype=types.INT32), shape=[1]).gpu()

    return pipeline()


def distributed_dataset(strategy, table, size: int, batch_size: int, seed: int = 0):
    """One DALI dataset per replica of ``strategy`` over the crops of ``table`` (``path``, ``label``).

    Args:
        strategy: the ``tf.distribute`` strategy (one GPU per replica).
        table: rows with an absolute ``path`` (:func:`dfd_kit.training.tables.read_table`) and ``label`` (``"REAL"``/``"FAKE"``).
        size: model input side in pixels.
        batch_size: global batch size (split evenly over the replicas).
        seed: DALI's random seed (offset per replica).

    Returns:
        A distributed dataset for ``model.fit`` (infinite; pass ``steps_per_epoch``).
    """
    import nvidia.dali.plugin.tf as dali_tf
    import tensorflow as tf

    files = list(table["path"])
    labels = [int(v == "FAKE") for v in table["label"]]
    replicas = strategy.num_replicas_in_sync
    per_replica = batch_size // replicas

    def dataset_fn(context: tf.distribute.InputContext):
        device_id = context.input_pipeline_id
        with tf.device(f"/gpu:{device_id}"):
            pipe = crops_pipeline(
                files, labels, size, device_id, replicas,
                batch_size=per_replica, num_threads=4, device_id=device_id, seed=seed + device_id,
            )  # fmt: skip
            return dali_tf.DALIDataset(
                pipeline=pipe,
                batch_size=per_replica,
                output_shapes=((per_replica, size, size, 3), (per_replica, 1)),
                output_dtypes=(tf.float32, tf.int32),
                device_id=device_id,
            )

    options = tf.distribute.InputOptions(
        experimental_place_dataset_on_device=True,
        experimental_fetch_to_device=False,
        experimental_replication_mode=tf.distribute.InputReplicationMode.PER_REPLICA,
    )
    return strategy.distribute_datasets_from_function(dataset_fn, options)

"""Train the face classifier from an extracted, split faces table (see :mod:`dfd_kit.training.extract`, :mod:`dfd_kit.training.split`).

The run, top to bottom (:func:`train`)::

    table  = read_table(faces.parquet, ...)            # one row per face crop, with split; several tables concatenate
    train  = train_dataset(table[split == train])      # tf.data: JPEG → pseudo-fakes → augment → batch
    val    = validation_set(table[split == val])       # fixed crops, pseudo-fakes made with fixed seeds
    model  = build_classifier(config, init) in choose_strategy().scope()   # random, ImageNet or a file
    for stage in stages(settings):                     # head → top → all (fine-tuning a pretrained backbone)
        set_trainable(model, stage); model.compile(...)
        model.fit(train, callbacks=[BackupAndRestore, VideoCheckpoint, CSVLogger, TensorBoard])

- **Balanced sampling** handles the class imbalance (DFDC is ~84 % FAKE): every batch draws REAL
  and FAKE crops with probability 1/2 each, whatever the counts in the table. With
  ``source_weights`` each label is drawn per **source** (the table's ``folder``: DFDC crops,
  FF++ crops, talking-head videos ...) with the given shares, not in proportion to the sources'
  sizes, so that a source of 5,000 crops is not drowned by one of 90,000.
- **Pseudo-fakes** (``sbi``): ``"off"`` uses the table's FAKE crops only; ``"only"`` uses self-blended
  REAL crops only (:mod:`dfd_kit.training.selfblend`; how the default weights are trained, with no fakes at
  hand); ``"mix"`` draws a fake from either, a share ``sbi_fraction`` of them self-blended.
- **Model selection** is by video-level validation log loss: the scores of a video's faces are
  averaged and clipped as inference does (:func:`dfd_kit.inference.aggregate.aggregate`), then scored with
  scikit-learn; per source as well (:func:`dfd_kit.training.evaluate.source_log_losses`), so that
  ``select="source_log_loss"`` (the mean over sources) or ``"worst_source_log_loss"`` trades no
  source for another. The best epoch is saved with :func:`dfd_kit.models.weights.save_weights` (fp16,
  manifest). Training stops after ``patience`` epochs without improvement.
- **Initialisation and stages** (``init``): ``"none"`` trains every layer from random numbers;
  ``"imagenet"`` (or a weights file of the same config) starts from a trained backbone and follows
  the Keras transfer-learning recipe: ``head_epochs`` with the backbone frozen (only the head
  learns, at ``head_learning_rate``), then ``top_epochs`` with the top of the backbone (its last
  ``TOP_FRACTION`` of layers) unfrozen, then the rest of ``epochs`` with every layer unfrozen, at
  the lower ``learning_rate``. BatchNormalization layers of a pretrained backbone stay frozen in
  every stage, so they run in inference mode on their ImageNet statistics.
- **Resumable**: ``keras.callbacks.BackupAndRestore`` keeps the model, optimizer and epoch of the
  running stage in ``run_dir/backup_<stage>`` after every epoch, a finished stage leaves its weights
  in ``run_dir/<stage>.npz``, and :class:`VideoCheckpoint` keeps its best score and patience
  count in ``run_dir/state.json``; running the same command again continues an interrupted run
  from its last finished epoch (the data stream restarts from its seed).
- Logs: ``run_dir/log.csv`` (one row per epoch) and, when the ``tensorboard`` package is installed,
  TensorBoard events in ``run_dir/tensorboard``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_atomic
from ..device import import_tensorflow
from ..inference.aggregate import aggregate
from ..models.classifier import INITS, build_classifier, load_weights, preprocess_for
from ..models.registry import ModelConfig, get_config
from ..models.weights import save_weights
from .evaluate import binary_metrics, calibrated_log_loss, source_log_losses
from .schedule import WarmupCosine
from .selfblend import box_in_crop, self_blend_seeded
from .tables import read_table

import_tensorflow()  # torch and torchvision before TensorFlow, TensorFlow before Keras
import keras  # noqa: E402

log = logging.getLogger(__name__)

__all__ = [
    "TrainSettings",
    "SBI_MODES",
    "choose_strategy",
    "crop_boxes",
    "train_dataset",
    "validation_set",
    "video_metrics",
    "VideoCheckpoint",
    "train",
]

SBI_MODES = ("off", "mix", "only")
SELECTIONS = ("log_loss", "calibrated_log_loss", "source_log_loss", "worst_source_log_loss")
#: the source name of the validation pseudo-fakes (FAKE only: reported, left out of the per-source selection)
SBI_SOURCE = "sbi"
#: share of a pretrained backbone's layers (from the top) that the ``top`` stage unfreezes
TOP_FRACTION = 0.25


@dataclass(frozen=True)
class TrainSettings:
    """Everything a training run depends on (written into the weights manifest).

    Attributes:
        config: registered model config (input size, margin, dropout).
        init: ``"none"`` (random), ``"imagenet"`` or the path of a ``.weights.h5`` file of the same config.
        epochs: most epochs to run, all stages together.
        head_epochs: first epochs with the backbone frozen (only with a pretrained ``init``).
        top_epochs: next epochs with only the top ``TOP_FRACTION`` of the backbone unfrozen.
        head_learning_rate: peak learning rate while the backbone is frozen.
        steps_per_epoch: batches per epoch (the input stream repeats forever).
        batch_size: crops per batch (global, over all replicas).
        learning_rate: peak learning rate (AdamW), reached after ``warmup_steps``, then cosine decay
            to zero over ``epochs * steps_per_epoch`` steps.
        warmup_steps: linear warm-up steps.
        weight_decay: AdamW weight decay.
        sbi: pseudo-fake mode, one of :data:`SBI_MODES`.
        sbi_fraction: with ``sbi="mix"``, the share of fakes that are self-blended.
        sbi_lower: the share of pseudo-fakes blended over the lower face only (mouth, jaw, chin:
            what reenactment and lip-sync edits change; :func:`dfd_kit.training.selfblend.face_mask`).
        source_weights: how each label's crops are drawn from the sources (the ``folder`` column):
            ``""`` in proportion to their rows (one stream), ``"equal"`` the same share for every
            source that has the label, or ``"dfdc=2,ffpp=1,..."`` shares by name (sources not named get 0).
        degrade: augmentation strength, ``"video"``, ``"c40"``, ``"h264"`` or ``"h264c40"`` (:data:`dfd_kit.training.augment.STRENGTHS`).
        patience: epochs without a better video-level validation log loss before stopping.
        select: the validation metric that picks the best epoch (:data:`SELECTIONS`): ``"log_loss"``
            (video level, raw), ``"calibrated_log_loss"`` (after Platt scaling, class-balanced: for a
            validation set whose class mix is not the test's, and for weights that ``dfd calibrate``
            will calibrate), ``"source_log_loss"`` or ``"worst_source_log_loss"`` (the mean or the
            largest of the per-source calibrated log losses: :func:`video_metrics`).
        val_augment: degrade the validation crops with the training augmentation (fixed seeds), so
            that model selection sees video-like crops (useful when the crops are clean photos).
        bn_momentum: momentum of every BatchNormalization layer's moving averages. Keras'
            Xception uses 0.99, which lags far behind the weights of a network trained from scratch
            for a few hundred steps: its inference-mode outputs collapse to one value (seen here:
            every validation score 0.4993 after 120 steps, while training-mode scores separated
            the classes). 0.9 tracks them within ~20 steps.
        clip: video probability clip used for the validation log loss (as inference).
        seed: seed of initialisation, data order, pseudo-fakes and augmentation.
        input: ``"tfdata"`` (CPU decoding and augmentation, any device) or ``"dali"`` (GPU decoding
            and augmentation, one DALI pipeline per replica: :mod:`dfd_kit.training.dali_input`; needs
            ``sbi="off"``, pseudo-fakes then come from files).
    """

    config: str = "xception"
    init: str = "none"
    epochs: int = 30
    head_epochs: int = 0
    top_epochs: int = 0
    head_learning_rate: float = 1e-3
    steps_per_epoch: int = 200
    batch_size: int = 32
    learning_rate: float = 5e-4
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    sbi: str = "mix"
    sbi_fraction: float = 0.5
    sbi_lower: float = 0.0
    source_weights: str = ""
    degrade: str = "video"
    patience: int = 5
    select: str = "log_loss"
    val_augment: bool = False
    bn_momentum: float = 0.9
    clip: tuple[float, float] = (0.01, 0.99)
    seed: int = 0
    input: str = "tfdata"


def choose_strategy():
    """The ``tf.distribute`` strategy for the devices present.

    - ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names more than one worker (several
      machines; each runs the same command with its own ``task.index``);
    - ``MirroredStrategy`` over all GPUs when there are several, ``OneDeviceStrategy`` on the one GPU;
    - ``MirroredStrategy`` over the logical CPU devices when several are configured
      (``tf.config.set_logical_device_configuration``), else TensorFlow's default strategy (CPU).
    """
    tf = import_tensorflow()
    workers = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {}).get("worker", [])
    if len(workers) > 1:  # before anything else touches the TF context (collectives are set at start-up)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        log.info("strategy: %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
        return strategy
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy([g.name for g in gpus])
    elif gpus:
        strategy = tf.distribute.OneDeviceStrategy(gpus[0].name)
    elif len(cpus) > 1:
        strategy = tf.distribute.MirroredStrategy([c.name for c in cpus])
    else:
        strategy = tf.distribute.get_strategy()
    log.info("strategy: %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def crop_boxes(table: pd.DataFrame, size: int) -> np.ndarray:
    """Each row's face box in the pixels of its ``size``-square crop: float32 ``[N, 4]``."""
    return box_in_crop(
        table[["x1", "y1", "x2", "y2"]].to_numpy(np.float32), table[["crop_x1", "crop_y1", "crop_x2", "crop_y2"]].to_numpy(np.float32), size
    )


def _load(size: int):
    """A tf.data map: JPEG path → uint8 ``[size, size, 3]`` RGB."""
    tf = import_tensorflow()

    def load(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        image = tf.round(tf.image.resize(image, [size, size], method="area"))
        return tf.ensure_shape(tf.cast(image, tf.uint8), [size, size, 3])

    return load


def _blend(image, box, seed, lower: float):
    tf = import_tensorflow()
    fake = tf.numpy_function(self_blend_seeded, [image, box, seed, lower], tf.uint8, stateful=False)
    return tf.ensure_shape(fake, image.shape)


def source_shares(table: pd.DataFrame, spec: str) -> dict[str, float]:
    """Sampling shares per source (``folder``) of ``table``'s rows, summing to 1; ``{}`` for ``spec=""`` (in proportion).

    Args:
        table: the rows of one label.
        spec: ``""``, ``"equal"`` or ``"name=share,..."`` (:class:`TrainSettings`.source_weights).
    """
    present = sorted(table["folder"].astype(str).unique())
    if not spec or not present:
        return {}
    if spec == "equal":
        named = {s: 1.0 for s in present}
    else:
        named = {}
        for part in spec.split(","):
            name, _, share = part.partition("=")
            if not share:
                raise ValueError(f"source_weights must be 'equal' or 'name=share,...', got {spec!r}")
            named[name.strip()] = float(share)
        unknown = set(named) - set(present)
        if unknown and not set(named) & set(present):
            raise ValueError(f"source_weights names {sorted(unknown)}, but the sources are {present}")
    shares = {s: named.get(s, 0.0) for s in present if named.get(s, 0.0) > 0}
    total = sum(shares.values())
    if total <= 0:
        raise ValueError(f"source_weights {spec!r} gives no share to any of {present}")
    return {s: w / total for s, w in shares.items()}


def _rows(table: pd.DataFrame, size: int):
    tf = import_tensorflow()
    return tf.data.Dataset.from_tensor_slices((table["path"].to_numpy(str), crop_boxes(table, size)))


def train_dataset(table: pd.DataFrame, size: int, settings: TrainSettings):
    """The training stream: balanced REAL/FAKE, pseudo-fakes on the fly, augmented, batched.

    Args:
        table: training rows (``label`` REAL/FAKE, absolute ``path``, boxes: :func:`~dfd_kit.training.tables.read_table`).
        size: model input size in pixels.
        settings: batch size, pseudo-fake mode and seed.

    Returns:
        ``tf.data.Dataset`` of ``(float32 [B, size, size, 3] in [-1, 1], float32 [B, 1])``, infinite.
    """
    from .augment import augment

    tf = import_tensorflow()
    if settings.sbi not in SBI_MODES:
        raise ValueError(f"sbi must be one of {SBI_MODES}, got {settings.sbi!r}")
    reals, fakes = table[table["label"] == "REAL"], table[table["label"] == "FAKE"]
    if reals.empty:
        raise ValueError("no REAL rows to train on")
    load, auto, seed = _load(size), tf.data.AUTOTUNE, settings.seed
    preprocess = preprocess_for(settings.config)

    def one_stream(rows: pd.DataFrame, offset: int):
        ds = _rows(rows, size).shuffle(len(rows), seed=seed + offset, reshuffle_each_iteration=True).repeat()
        return ds.map(lambda p, b: (load(p), b), num_parallel_calls=auto)

    def stream(rows: pd.DataFrame, offset: int):
        shares = source_shares(rows, settings.source_weights)
        if len(shares) <= 1:
            return one_stream(rows if not shares else rows[rows["folder"].astype(str) == next(iter(shares))], offset)
        folder = rows["folder"].astype(str)
        parts = [one_stream(rows[folder == s], offset + 100 * (i + 1)) for i, s in enumerate(shares)]
        return tf.data.Dataset.sample_from_datasets(parts, list(shares.values()), seed=seed + offset + 50)

    real_ds = stream(reals, 1).map(lambda image, box: image)
    fake_sources, weights = [], []
    if settings.sbi in ("mix", "only"):
        numbered = tf.data.Dataset.zip(stream(reals, 2), tf.data.Dataset.random(seed=seed + 3))
        fake_sources.append(numbered.map(lambda pair, k: _blend(pair[0], pair[1], k, settings.sbi_lower), num_parallel_calls=auto))
        weights.append(settings.sbi_fraction if settings.sbi == "mix" and not fakes.empty else 1.0)
    if settings.sbi in ("mix", "off") and not fakes.empty:
        fake_sources.append(stream(fakes, 4).map(lambda image, box: image))
        weights.append(1.0 - settings.sbi_fraction if settings.sbi == "mix" else 1.0)
    if not fake_sources:
        raise ValueError("no FAKE rows to train on: use sbi='mix' or 'only' to make pseudo-fakes")
    fake_ds = fake_sources[0] if len(fake_sources) == 1 else tf.data.Dataset.sample_from_datasets(fake_sources, weights, seed=seed + 5)
    real_xy = real_ds.map(lambda x: (x, 0.0))
    fake_xy = fake_ds.map(lambda x: (x, 1.0))
    labelled = tf.data.Dataset.sample_from_datasets([real_xy, fake_xy], [0.5, 0.5], seed=seed + 6)
    seeds = tf.data.Dataset.random(seed=seed + 7).batch(2)
    ds = tf.data.Dataset.zip(labelled, seeds).map(lambda xy, s: (augment(xy[0], s, settings.degrade), xy[1]), num_parallel_calls=auto)
    ds = ds.batch(settings.batch_size, drop_remainder=True)
    return ds.map(lambda x, y: (preprocess(x), tf.reshape(y, [-1, 1])), num_parallel_calls=auto).prefetch(auto)


def validation_set(table: pd.DataFrame, size: int, settings: TrainSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed validation crops: the table's rows, plus a self-blended copy of every REAL row.

    Pseudo-fakes (when ``settings.sbi`` is not ``"off"``) are made with seeds fixed by the row
    order and count as their own video, ``<video>#sbi``, of the source :data:`SBI_SOURCE`. With
    ``settings.val_augment`` every crop is degraded by :func:`dfd_kit.training.augment.augment` with a fixed seed.

    Returns:
        ``(crops, labels, videos, sources)``: uint8 ``[N, size, size, 3]``, float32 ``[N]`` (1 = FAKE),
        str ``[N]`` video keys (``folder/video``) to average faces over and str ``[N]`` sources (``folder``).
    """
    tf = import_tensorflow()
    load = _load(size)
    crops = np.stack([load(p).numpy() for p in table["path"]]) if len(table) else np.zeros((0, size, size, 3), np.uint8)
    labels = (table["label"] == "FAKE").to_numpy(np.float32)
    videos = (table["folder"].astype(str) + "/" + table["video"].astype(str)).to_numpy(str)
    sources = table["folder"].astype(str).to_numpy(str)
    if settings.sbi != "off":
        real = (table["label"] == "REAL").to_numpy()
        boxes = crop_boxes(table[real], size)
        blended = [self_blend_seeded(c, b, [settings.seed, 1_000_003, i], settings.sbi_lower) for i, (c, b) in enumerate(zip(crops[real], boxes))]
        if blended:
            crops = np.concatenate([crops, np.stack(blended)])
            labels = np.concatenate([labels, np.ones(len(blended), np.float32)])
            videos = np.concatenate([videos, np.char.add(videos[real], "#sbi")])
            sources = np.concatenate([sources, np.full(len(blended), SBI_SOURCE)])
    if settings.val_augment and len(crops):
        from .augment import augment

        crops = np.stack([augment(tf.constant(c), tf.constant([settings.seed + 2_000_003, i], tf.int64)).numpy() for i, c in enumerate(crops)])
    return crops, labels, videos, sources


def video_metrics(scores: np.ndarray, labels: np.ndarray, videos: np.ndarray, clip: tuple[float, float] = (0.01, 0.99),
                  sources: np.ndarray | None = None) -> dict:  # fmt: skip
    """Video-level metrics: face scores averaged per video and clipped, as :mod:`dfd_kit.inference.predict` does.

    Args:
        scores: float ``[N]`` face P(FAKE).
        labels: float ``[N]`` face labels (1 = FAKE); constant within a video.
        videos: ``[N]`` video keys.
        clip: bounds of the video probability.
        sources: ``[N]`` source names (constant within a video), for the per-source metrics.

    Returns:
        ``{"video_log_loss", "video_auc", "video_accuracy", "video_calibrated_log_loss", "videos"}``
        (AUC is NaN with one class). ``video_calibrated_log_loss`` is the class-balanced log loss
        after Platt scaling fitted on these videos (:func:`dfd_kit.training.evaluate.fit_platt`), what the
        weights score once ``dfd calibrate`` has run: unlike the raw log loss, it does not move with
        the validation set's class mix or with an offset that calibration removes. With
        ``sources``: ``per_source`` (:func:`dfd_kit.training.evaluate.source_log_losses`: one Platt fit with
        every source and label weighted alike, then each source's class-balanced log loss and AUC;
        :data:`SBI_SOURCE` and one-label sources left out), and their mean and largest log loss as
        ``video_source_log_loss`` and ``video_worst_source_log_loss``.
    """
    frame = pd.DataFrame({"video": videos, "score": scores, "label": labels, "source": sources if sources is not None else ""})
    per_video = frame.groupby("video", sort=True).agg(
        label=("label", "first"), source=("source", "first"), p=("score", lambda s: aggregate(s.to_numpy(), "mean", clip))
    )
    y, p = per_video["label"].to_numpy(), per_video["p"].to_numpy()
    metrics = {f"video_{k}": v for k, v in binary_metrics(y, p).items()}
    metrics["video_calibrated_log_loss"] = calibrated_log_loss(p, y) if len(set(y)) == 2 else metrics["video_log_loss"]
    if sources is not None:
        real_sources = (per_video["source"] != SBI_SOURCE).to_numpy()
        per_source = source_log_losses(p[real_sources], y[real_sources], per_video["source"].to_numpy(str)[real_sources])
        losses = [m["log_loss"] for m in per_source.values()] or [metrics["video_calibrated_log_loss"]]
        metrics.update(per_source=per_source, video_source_log_loss=float(np.mean(losses)), video_worst_source_log_loss=float(np.max(losses)))
    return {**metrics, "videos": int(len(per_video))}


class VideoCheckpoint(keras.callbacks.Callback):
    """After each epoch: video-level validation metrics, the best weights saved, early stopping.

    The metrics go into the epoch's logs as ``val_video_log_loss``, ``val_video_auc`` and
    ``val_video_accuracy`` (so CSVLogger and TensorBoard record them; list this callback before
    them). The best score, its epoch and the epochs since are kept in ``state_path`` so that a
    resumed run goes on where it stopped.

    Args:
        crops, labels, videos: the validation set (:func:`validation_set`).
        sources: its per-crop sources (``None``: no per-source metrics).
        out: the ``.weights.h5`` file the best weights are saved to (fp16, with a manifest entry).
        config: the model config, written into the manifest.
        state_path: JSON file holding the callback's state.
        patience: epochs without improvement before ``model.stop_training`` is set.
        clip: video probability clip (as inference).
        batch_size: crops per forward pass.
        manifest: extra manifest fields (``training``, ``command`` ...).
        resume: load the state from ``state_path`` (else start afresh).
        select: the metric to minimise, one of :data:`SELECTIONS` (see :func:`video_metrics`).
    """

    def __init__(self, crops, labels, videos, out: Path, config: ModelConfig, state_path: Path, patience: int,
                 clip: tuple[float, float], batch_size: int, manifest: dict, resume: bool, select: str = "log_loss",
                 sources=None) -> None:  # fmt: skip
        super().__init__()
        self.select = select
        self.crops, self.labels, self.videos, self.sources = crops, labels, videos, sources
        self.out, self.config, self.state_path = Path(out), config, Path(state_path)
        self.patience, self.clip, self.batch_size, self.manifest = patience, clip, batch_size, manifest
        self.state = {"best": None, "best_epoch": None, "wait": 0, "metrics": {}}
        if resume and self.state_path.is_file():
            self.state = json.loads(self.state_path.read_text())
            log.info("resuming: best video log loss %s at epoch %s", self.state["best"], self.state["best_epoch"])

    def scores(self) -> np.ndarray:
        """The model's face scores on the validation crops: float32 ``[N]``.

        The crops are padded to whole batches: under a multi-replica strategy a short last batch
        leaves a replica with no input, which Keras 3.15's distributed predict step rejects.
        """
        tf = import_tensorflow()
        n = len(self.crops)
        padded = np.concatenate([self.crops, np.zeros(((-n) % self.batch_size, *self.crops.shape[1:]), self.crops.dtype)])
        ds = tf.data.Dataset.from_tensor_slices(padded).batch(self.batch_size).map(preprocess_for(self.config))
        return self.model.predict(ds, verbose=0).reshape(-1)[:n].astype(np.float32)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        metrics = video_metrics(self.scores(), self.labels, self.videos, self.clip, self.sources)
        logs.update({f"val_{k}": v for k, v in metrics.items() if k not in ("videos", "per_source")})
        for source, m in metrics.get("per_source", {}).items():
            logs.update({f"val_{source}_log_loss": m["log_loss"], f"val_{source}_auc": m["auc"]})
            log.info("epoch %d: %s: calibrated video log loss %.4f, AUC %.3f (%d videos)", epoch + 1, source, m["log_loss"], m["auc"], m["videos"])
        loss = metrics[f"video_{self.select}"]
        if self.state["best"] is None or loss < self.state["best"]:
            self.state.update(best=loss, best_epoch=epoch + 1, wait=0, metrics=metrics)
            save_weights(self.model, self.out, self.config, trained=True, epoch=epoch + 1, metrics={"validation": metrics}, **self.manifest)
            log.info("epoch %d: video %s %.4f (AUC %.3f): best so far, saved %s", epoch + 1, self.select, loss, metrics["video_auc"], self.out)
        else:
            self.state["wait"] += 1
            log.info("epoch %d: video %s %.4f (AUC %.3f), best %.4f at epoch %d", epoch + 1, self.select, loss, metrics["video_auc"],
                     self.state["best"], self.state["best_epoch"])  # fmt: skip
            if self.state["wait"] >= self.patience:
                log.info("early stop: no better video log loss for %d epochs", self.patience)
                self.state["stopped"] = True
        if self.state.get("stopped"):
            self.model.stop_training = True
        write_atomic(self.state_path, json.dumps(self.state, indent=1).encode())


def stages(settings: TrainSettings) -> list[tuple[str, int, int]]:
    """The run's stages as ``(name, first epoch, end epoch)``: ``head``, ``top``, ``all`` (empty ones left out).

    From random numbers (``init="none"``) there is one stage, ``all``: a frozen random backbone
    learns nothing.
    """
    if settings.init == "none":
        return [("all", 0, settings.epochs)]
    head = min(settings.head_epochs, settings.epochs)
    top = min(head + settings.top_epochs, settings.epochs)
    plan = [("head", 0, head), ("top", head, top), ("all", top, settings.epochs)]
    return [stage for stage in plan if stage[2] > stage[1]]


def set_trainable(model, stage: str, pretrained: bool) -> None:
    """Freeze ``model`` for ``stage``: ``head`` trains the head only, ``top`` the head and the top
    :data:`TOP_FRACTION` of the backbone's layers, ``all`` everything. BatchNormalization layers of a
    ``pretrained`` backbone stay frozen (inference mode, ImageNet statistics) in every stage."""
    layers = [layer for layer in model.layers if layer.weights]
    backbone = [layer for layer in layers if not layer.name.startswith("head")]
    first_trainable = {"head": len(backbone), "top": int(len(backbone) * (1 - TOP_FRACTION)), "all": 0}[stage]
    for i, layer in enumerate(backbone):
        frozen_bn = pretrained and isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = i >= first_trainable and not frozen_bn
    for layer in layers[len(backbone) :]:
        layer.trainable = True


def _compile(model, stage: str, steps: int, settings: TrainSettings, precision: str) -> None:
    peak = settings.head_learning_rate if stage == "head" else settings.learning_rate
    warmup = min(settings.warmup_steps, steps - 1)
    schedule = WarmupCosine(peak, max(1, steps - warmup), warmup_steps=warmup)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=settings.weight_decay)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
    )


def _initial_model(cfg: ModelConfig, settings: TrainSettings, precision: str):
    """The model a run starts from: random (``none``), ImageNet backbone, or a weights file of ``cfg``."""
    if settings.init in INITS:
        model = build_classifier(cfg, precision, init=settings.init)
    else:
        model = build_classifier(cfg, precision)
        load_weights(model, settings.init, cfg)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = settings.bn_momentum
    return model


def train(table_path: str | Path | list, out: str | Path, run_dir: str | Path, settings: TrainSettings, command: str | None = None, progress: bool = True) -> dict:
    """Train (or resume training) and save the best weights to ``out``.

    Args:
        table_path: the split faces table (``faces.parquet``), or a list of them (concatenated).
        out: ``.weights.h5`` path for the best weights; its folder's ``manifest.json`` gets an entry
            (config, init, training settings and data, validation metrics, command, sha256) and the
            file becomes its default.
        run_dir: folder for the backups, the stage weights, the state, ``log.csv`` and TensorBoard
            events; an unfinished run there is resumed.
        settings: see :class:`TrainSettings`.
        command: the command line, recorded in the manifest.
        progress: Keras progress bars.

    Returns:
        The callback state: ``{"best", "best_epoch", "wait", "metrics", "stages_done"}``.
    """
    tf = import_tensorflow()
    strategy = choose_strategy()  # first: a multi-worker strategy must be set up before any TF op
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        raise RuntimeError(
            "TF_CONFIG names several workers, but Keras 3's fit() does not run under MultiWorkerMirroredStrategy "
            "(keras-team/keras#20585): train on one machine (MirroredStrategy over its GPUs) or unset TF_CONFIG"
        )
    if settings.input == "dali" and settings.sbi != "off":
        raise ValueError("input='dali' reads pseudo-fakes from files: train with sbi='off' (or input='tfdata')")
    if settings.select not in SELECTIONS:
        raise ValueError(f"select must be one of {SELECTIONS}, got {settings.select!r}")
    if settings.init not in INITS and not Path(settings.init).is_file():
        raise ValueError(f"init must be one of {INITS} or a weights file, got {settings.init!r}")
    cfg = get_config(settings.config)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.json"
    resume = state_path.is_file() or any(run_dir.glob("backup_*"))
    tables = [table_path] if isinstance(table_path, (str, Path)) else list(table_path)
    table = read_table(*tables)
    train_rows, val_rows = table[table["split"] == "train"], table[table["split"] == "val"]
    if val_rows.empty:
        raise ValueError("the validation split is empty: model selection needs validation videos")
    size = cfg.input_size
    keras.utils.set_random_seed(settings.seed)
    crops, labels, videos, sources = validation_set(val_rows, size, settings)
    log.info(
        "train: %d crops (%d REAL, %d FAKE), val: %d crops of %d videos; init=%s, sbi=%s; %s",
        len(train_rows), int((train_rows["label"] == "REAL").sum()), int((train_rows["label"] == "FAKE").sum()),
        len(crops), len(set(videos)), settings.init, settings.sbi, "resuming" if resume else "new run",
    )  # fmt: skip
    precision = "mixed_float16" if tf.config.list_logical_devices("GPU") else "float32"
    with strategy.scope():
        model = _initial_model(cfg, settings, precision)
    manifest = {
        "init": settings.init if settings.init in INITS else Path(settings.init).name,
        "training": {
            "settings": asdict(settings),
            "data": {
                "tables": [str(Path(t).resolve()) for t in tables],
                "folders": sorted(table["folder"].astype(str).unique()),
                "train_crops": int(len(train_rows)),
                "train_groups": int(train_rows["group"].nunique()) if "group" in train_rows else None,
                "val_crops": int(len(crops)),
                "val_videos": int(len(set(videos))),
                "train_crops_per_source": {str(k): int(v) for k, v in train_rows["folder"].astype(str).value_counts().sort_index().items()},
            },
        },
        "command": command,
    }
    checkpoint = VideoCheckpoint(crops, labels, videos, Path(out), cfg, state_path, settings.patience, settings.clip, settings.batch_size, manifest, resume,
                                 settings.select, sources)  # fmt: skip
    if settings.input == "dali":
        from .dali_input import distributed_dataset

        ds = distributed_dataset(strategy, train_rows, size, settings.batch_size, settings.seed)
    else:
        ds = train_dataset(train_rows, size, settings)
    done = checkpoint.state.setdefault("stages_done", [])
    pretrained = settings.init != "none"
    for name, first, end in stages(settings):
        stage_weights = run_dir / f"{name}.npz"
        if name in done:
            with np.load(stage_weights) as stored:
                model.set_weights([stored[f"arr_{i}"] for i in range(len(stored.files))])
            continue
        if checkpoint.state.get("stopped"):
            break
        log.info("stage %s: epochs %d-%d", name, first + 1, end)
        with strategy.scope():
            set_trainable(model, name, pretrained)
            _compile(model, name, (end - first) * settings.steps_per_epoch, settings, precision)
        callbacks = [
            keras.callbacks.BackupAndRestore(str(run_dir / f"backup_{name}")),
            checkpoint,
            keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=True),
        ]
        if importlib.util.find_spec("tensorboard") is not None:
            callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False, profile_batch=0))
        model.fit(ds, initial_epoch=first, epochs=end, steps_per_epoch=settings.steps_per_epoch, callbacks=callbacks,
                  shuffle=False, verbose=1 if progress else 2)  # fmt: skip
        stored = io.BytesIO()
        np.savez(stored, *model.get_weights())
        write_atomic(stage_weights, stored.getvalue())
        done.append(name)
        write_atomic(state_path, json.dumps(checkpoint.state, indent=1).encode())
    return checkpoint.state

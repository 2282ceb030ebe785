"""Training augmentation towards real video frames, as TensorFlow ops for a ``tf.data`` pipeline.

:func:`augment` is a pure function of an image and a stateless seed: the same ``(image, seed)``
gives the same output, so a validation set can be degraded reproducibly with fixed seeds and the
training stream is reproducible from the run's seed. In order:

1. geometry: horizontal flip, scale (0.9–1.1), rotation (±8°), shift (±4 %), mirrored borders;
2. colour: brightness, contrast, saturation, hue;
3. motion: with probability 0.2, a linear motion blur 2–8 % of the side long in any direction
   (panning cameras, moving heads: a real frame's smear must not read as a fake's blur);
4. resolution: with probability 0.5, down to 30–90 % of the side and back up (small faces);
5. blur: with probability 0.3, a Gaussian of sigma 0.3–1.5 px;
6. compression: with probability 0.8, JPEG at quality 30–95 (DFDC/FF++ frames are H.264-compressed).

``strength="c40"`` goes down to FaceForensics++ c40 quality (H.264 at a constant rate factor of 40,
480p): the resolution drop reaches 25 % of the side (probability 0.6), JPEG quality 15–95
(probability 0.9), and with probability 0.35 a **blocking** step first codes the crop at half size
at JPEG quality 10–35 and scales it back up: 16-pixel blocks with flattened detail inside, the
look of heavily quantised H.264 macroblocks. ``strength="h264"`` is ``"video"`` whose last step,
with probability 0.6, is real H.264 instead of JPEG: the crop is scaled to 0.5–1.5 of its side (a
face smaller or larger in the frame than the model's input, as in 480p FF++ or 1080p DFD video),
coded as one intra frame by libx264 (PyAV, yuv420p, constant rate factor 23–45: FF++ c23 to below
c40, deblocking filter on) and scaled back, so the model sees the codec's own blocking, ringing and
chroma loss on REAL and FAKE faces alike. ``strength="h264c40"`` weights that step towards c40 and
the clips' two kinds of video: with probability 0.8, CRF 32–45, the face 0.4–2.0 x the crop's side
(480p FF++ faces and 1080p DFD faces), and half of the time in yuv444p, the chroma format of FF++'s
c40 videos (:data:`H264_STEPS`). The default ``"video"`` is unchanged by these options (the same seed
gives the same output as before they existed), and so is ``"h264"`` by ``"h264c40"``.

Every step is applied to REAL and FAKE crops alike, so none of them is a cue for the label.
"""

from __future__ import annotations

import io
import math

import numpy as np

from ..device import import_tensorflow

__all__ = ["H264_STEPS", "STRENGTHS", "augment", "h264_code", "motion_blur"]

#: per strength: (probability and lowest side of the resolution drop, probability and lowest JPEG quality,
#: blocking probability, H.264 probability)
STRENGTHS = {
    "video": (0.5, 0.3, 0.8, 30, 0.0, 0.0),
    "c40": (0.6, 0.25, 0.9, 15, 0.35, 0.0),
    "h264": (0.5, 0.3, 0.8, 30, 0.0, 0.6),
    "h264c40": (0.5, 0.3, 0.8, 30, 0.0, 0.8),
}
#: per strength with an H.264 step: the side of the coded face relative to the crop (lowest, highest),
#: libx264's constant rate factor (lowest, highest; FF++ c23 is 23, c40 is 40) and the probability of
#: yuv444p chroma (FF++'s c40 videos) instead of yuv420p
H264_STEPS = {"h264": ((0.5, 1.5), (23, 45), 0.0), "h264c40": ((0.4, 2.0), (32, 45), 0.5)}


def _uniform(seed, low: float, high: float):
    tf = import_tensorflow()
    return tf.random.stateless_uniform([], seed, low, high)


def _geometry(image, seed, size: int):
    tf = import_tensorflow()
    seeds = tf.random.split(seed, 5)
    image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    scale = _uniform(seeds[1], 0.9, 1.1)
    angle = _uniform(seeds[2], -8.0, 8.0) * math.pi / 180.0
    shift = tf.random.stateless_uniform([2], seeds[3], -0.04, 0.04) * size
    c = (size - 1) / 2.0
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2): rotate/scale about the centre
    a2 = c - cos * c + sin * c - shift[0]
    b2 = c - sin * c - cos * c - shift[1]
    transform = tf.stack([cos, -sin, a2, sin, cos, b2, 0.0, 0.0])[None]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform, output_shape=[size, size], fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT"
    )[0]


def _blur(image, sigma):
    tf = import_tensorflow()
    x = tf.range(-3, 4, dtype=tf.float32)
    k = tf.exp(-(x**2) / (2.0 * sigma**2))
    k = k / tf.reduce_sum(k)
    kernel_h = tf.tile(tf.reshape(k, [1, 7, 1, 1]), [1, 1, 3, 1])
    kernel_v = tf.tile(tf.reshape(k, [7, 1, 1, 1]), [1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [3, 3], [3, 3], [0, 0]], mode="REFLECT")
    out = tf.nn.depthwise_conv2d(padded, kernel_h, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(out, kernel_v, [1, 1, 1, 1], "VALID")[0]


MOTION_TAPS = 9  # samples along a motion-blur path


def motion_blur(image, length, angle):
    """Smear an image along a straight path, as a camera or head moving during the exposure does.

    Args:
        image: float32 ``[S, S, 3]``.
        length: path length in pixels (scalar tensor).
        angle: path direction in radians (scalar tensor).

    Returns:
        float32 ``[S, S, 3]``: the mean of ``MOTION_TAPS`` copies shifted evenly along the path
        (bilinear, mirrored borders).
    """
    tf = import_tensorflow()
    size = int(image.shape[0])
    steps = tf.linspace(-0.5, 0.5, MOTION_TAPS) * length
    dx, dy = steps * tf.cos(angle), steps * tf.sin(angle)
    ones, zeros = tf.ones_like(dx), tf.zeros_like(dx)
    transforms = tf.stack([ones, zeros, dx, zeros, ones, dy, zeros, zeros], axis=1)
    copies = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.repeat(image[None], MOTION_TAPS, axis=0), transforms=transforms, output_shape=[size, size],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT",
    )
    return tf.reduce_mean(copies, axis=0)


def _blocking(x, seed, size: int):
    """Code ``x`` at half size at JPEG quality 10–35 and scale it back up (H.264-like macroblocks)."""
    tf = import_tensorflow()
    seeds = tf.random.split(seed, 2)
    half = tf.image.resize(x, [size // 2, size // 2], method="area")
    coded = tf.image.stateless_random_jpeg_quality(tf.clip_by_value(half, 0.0, 1.0), 10, 35, seeds[0])
    return tf.image.resize(coded, [size, size], method="bilinear")


def h264_code(image: np.ndarray, crf: int, chroma: str = "yuv420p") -> np.ndarray:
    """Code an image as one H.264 intra frame and decode it again.

    Args:
        image: uint8 ``[H, W, 3]`` RGB; with ``yuv420p``, ``H`` and ``W`` even (it halves the chroma planes).
        crf: libx264's constant rate factor, 0–51 (higher: coarser quantisation).
        chroma: ``"yuv420p"`` (most video: DFDC, DFD) or ``"yuv444p"`` (full-resolution chroma: FF++'s c40 videos).

    Returns:
        uint8 ``[H, W, 3]`` RGB as a decoder shows it. One thread, so the same input gives the same output.
    """
    import av

    if chroma not in ("yuv420p", "yuv444p"):
        raise ValueError(f"chroma must be yuv420p or yuv444p, got {chroma!r}")
    height, width = image.shape[:2]
    if chroma == "yuv420p" and (height % 2 or width % 2):
        raise ValueError(f"H.264 (yuv420p) needs an even width and height, got {width}x{height}")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, chroma
        stream.thread_count = 1
        stream.options = {"crf": str(int(crf)), "preset": "medium"}
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer, "r", format="h264") as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _code(image: np.ndarray, crf: np.ndarray, yuv444: np.ndarray) -> np.ndarray:
    return h264_code(image, crf, "yuv444p" if yuv444 else "yuv420p")


def _h264(x, seed, size: int, strength: str):
    """Scale ``x`` (float ``[S, S, 3]`` in [0, 1]) as :data:`H264_STEPS` draws for ``strength``, code it
    with :func:`h264_code`, scale it back."""
    tf = import_tensorflow()
    (low, high), crfs, p444 = H264_STEPS[strength]
    seeds = tf.random.split(seed, 2)
    coded = tf.cast(tf.round(_uniform(seeds[0], low, high) * size / 2.0), tf.int32) * 2
    crf = tf.cast(tf.round(_uniform(seeds[1], *crfs)), tf.int32)
    scaled = tf.image.resize(x, tf.stack([coded, coded]), method="bilinear", antialias=True)
    pixels = tf.cast(tf.round(tf.clip_by_value(scaled, 0.0, 1.0) * 255.0), tf.uint8)
    # a seed of its own, drawn only where yuv444p can be chosen, so that "h264" keeps its stream
    yuv444 = _uniform(seed + 3, 0.0, 1.0) < p444 if p444 > 0 else tf.constant(False)
    out = tf.numpy_function(_code, [pixels, crf, yuv444], tf.uint8, stateful=False)
    out = tf.reshape(out, tf.shape(pixels))
    return tf.image.resize(tf.cast(out, tf.float32) / 255.0, [size, size], method="bilinear", antialias=True)


def augment(image, seed, strength: str = "video"):
    """Degrade a face crop the way video frames are degraded.

    Args:
        image: uint8 ``[S, S, 3]`` RGB tensor (``S`` static).
        seed: int ``[2]`` stateless seed.
        strength: a key of :data:`STRENGTHS`: ``"video"``, ``"c40"`` (down to FF++ c40 quality),
            ``"h264"`` (``"video"`` with real H.264 coding in place of most of its JPEG) or ``"h264c40"``
            (that coding, more often and nearer c40: :data:`H264_STEPS`).

    Returns:
        uint8 ``[S, S, 3]`` RGB tensor.
    """
    tf = import_tensorflow()
    if strength not in STRENGTHS:
        raise ValueError(f"strength must be one of {sorted(STRENGTHS)}, got {strength!r}")
    p_low, lowest, p_jpeg, min_quality, p_block, p_h264 = STRENGTHS[strength]
    size = int(image.shape[0])
    seeds = tf.random.split(tf.cast(seed, tf.int64), 14)
    x = _geometry(tf.cast(image, tf.float32) / 255.0, seeds[0], size)
    x = tf.image.stateless_random_brightness(x, 0.08, seeds[1])
    x = tf.image.stateless_random_contrast(x, 0.8, 1.2, seeds[2])
    x = tf.image.stateless_random_saturation(x, 0.8, 1.2, seeds[3])
    x = tf.image.stateless_random_hue(x, 0.03, seeds[4])
    x = tf.clip_by_value(x, 0.0, 1.0)
    x = tf.cond(
        _uniform(seeds[11], 0.0, 1.0) < 0.2,
        lambda: motion_blur(x, _uniform(seeds[12], 0.02, 0.08) * size, _uniform(seeds[13], 0.0, math.pi)),
        lambda: x,
    )

    def low_res():
        small = tf.cast(tf.round(size * _uniform(seeds[6], lowest, 0.9)), tf.int32)
        down = tf.image.resize(x, tf.stack([small, small]), method="area")
        return tf.image.resize(down, [size, size], method="bilinear")

    x = tf.cond(_uniform(seeds[5], 0.0, 1.0) < p_low, low_res, lambda: x)
    x = tf.cond(_uniform(seeds[7], 0.0, 1.0) < 0.3, lambda: _blur(x, _uniform(seeds[8], 0.3, 1.5)), lambda: x)
    x = tf.clip_by_value(x, 0.0, 1.0)
    if p_block > 0:  # seeds of their own, so that "video" keeps its stream
        block_seeds = tf.random.split(seeds[0] + 1, 2)
        x = tf.cond(_uniform(block_seeds[0], 0.0, 1.0) < p_block, lambda: _blocking(x, block_seeds[1], size), lambda: x)
        x = tf.clip_by_value(x, 0.0, 1.0)

    def jpeg():
        return tf.cond(
            _uniform(seeds[9], 0.0, 1.0) < p_jpeg,
            lambda: tf.image.stateless_random_jpeg_quality(x, min_quality, 95, seeds[10]),
            lambda: x,
        )

    if p_h264 > 0:  # seeds of their own, as for the blocking
        h264_seeds = tf.random.split(seeds[0] + 2, 2)
        x = tf.cond(_uniform(h264_seeds[0], 0.0, 1.0) < p_h264, lambda: _h264(x, h264_seeds[1], size, strength), jpeg)
    else:
        x = jpeg()
    x = tf.ensure_shape(x, [size, size, 3])
    return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)

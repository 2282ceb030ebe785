"""Pseudo-fakes from real faces by self-blending ("Self-Blended Images", Shiohara & Yamasaki, CVPR 2022).

A face crop is blended onto itself: one copy (the source) gets a colour and geometry change — RGB
and brightness/contrast shifts, a blur or sharpening, a resolution drop, a slight scale and shift —
and is pasted back onto the other (the target) through a soft, randomly deformed mask over the face
region, with a random blend ratio. The result keeps identity, pose and expression, so the only
thing that tells it from the real crop is what every face swap leaves behind: a blending boundary,
a colour or sharpness mismatch between the inner face and its surroundings, a slight misalignment.
A classifier trained on these generalises to manipulations it never saw (the paper's result).

Everything is a pure function of the inputs and a ``numpy.random.Generator``; :func:`self_blend_seeded`
takes an integer seed so that ``tf.data`` can call it through ``tf.numpy_function`` reproducibly.
The face region comes from the detector box (in crop pixels), so it works on any crop that
:mod:`dfd_kit.training.extract` writes; no landmarks are needed. A share ``lower`` of the blends can cover
the lower face only (below a cut between 45 and 65 % of the box's height): the mouth, jaw and chin
that expression reenactment (Face2Face, NeuralTextures) and lip-sync edits re-render.
"""

from __future__ import annotations


import cv2
import numpy as np

__all__ = ["BLEND_RATIOS", "REGIONS", "box_in_crop", "face_mask", "source_transform", "self_blend", "self_blend_seeded"]

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
REGIONS = ("face", "lower")
LOWER_CUT = (0.45, 0.65)  # top of a lower-face mask, as a share of the box's height from its top


def box_in_crop(box: np.ndarray, window: np.ndarray, size: int) -> np.ndarray:
    """Map detector boxes from frame pixels into the pixels of their ``size``-square crops.

    Args:
        box: float ``[..., 4]`` ``x1, y1, x2, y2`` in frame pixels.
        window: ``[..., 4]`` the crop windows ``x1, y1, x2, y2`` in frame pixels (square).
        size: side of the saved crop in pixels.

    Returns:
        float32 ``[..., 4]`` in crop pixels.
    """
    box = np.asarray(box, np.float32)
    window = np.asarray(window, np.float32)
    scale = size / (window[..., 2:3] - window[..., 0:1])
    origin = np.concatenate([window[..., 0:2], window[..., 0:2]], axis=-1)
    return (box - origin) * scale


def face_mask(size: int, box: np.ndarray, rng: np.random.Generator, region: str = "face") -> np.ndarray:
    """A soft mask over the face: a randomly deformed ellipse in ``box``, eroded or dilated, blurred.

    Args:
        size: side of the square crop in pixels.
        box: ``x1, y1, x2, y2`` of the face in crop pixels.
        rng: random source.
        region: ``"face"`` (the whole ellipse) or ``"lower"`` (the ellipse below a random cut in
            :data:`LOWER_CUT`: mouth, jaw and chin).

    Returns:
        float32 ``[size, size]`` in ``[0, 1]``, 1 well inside the face, falling off smoothly.
    """
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = max(x2 - x1, 2.0), max(y2 - y1, 2.0)
    cx = (x1 + x2) / 2 + rng.uniform(-0.03, 0.03) * w
    cy = (y1 + y2) / 2 + rng.uniform(0.0, 0.08) * h
    ax, ay = w / 2 * rng.uniform(0.75, 1.0), h / 2 * rng.uniform(0.75, 1.0)
    n = 24
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 2 * np.pi / n)
    radial = np.clip(1.0 + np.convolve(rng.normal(0, 0.08, n + 4), np.ones(5) / 5, mode="valid"), 0.75, 1.2)
    points = np.stack([cx + ax * radial * np.cos(angles), cy + ay * radial * np.sin(angles)], axis=1)
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 255)
    if region == "lower":
        mask[: int(round(y1 + rng.uniform(*LOWER_CUT) * h))] = 0
    k = int(rng.integers(1, max(2, int(0.08 * w))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    mask = cv2.erode(mask, kernel) if rng.random() < 0.5 else cv2.dilate(mask, kernel)
    sigma = rng.uniform(0.02, 0.1) * w
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma)
    peak = float(soft.max())
    return soft / peak if peak > 0 else soft


def source_transform(image: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Change one copy of the crop so it no longer matches the other: colour, sharpness, resolution, geometry.

    Args:
        image: uint8 ``[S, S, 3]`` RGB.
        box: face box in crop pixels (sets the size of the shift).
        rng: random source.

    Returns:
        float32 ``[S, S, 3]`` in ``[0, 255]``.
    """
    s = image.shape[0]
    out = image.astype(np.float32)
    out = out * rng.uniform(0.9, 1.1) + rng.uniform(-20, 20, 3)
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.85, 1.15) + mean
    if rng.random() < 0.5:
        hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-5, 5)) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.8, 1.2), 0, 255)
        out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    pick = rng.random()
    if pick < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    elif pick < 0.6:
        blurred = cv2.GaussianBlur(out, (0, 0), 1.0)
        out = out + rng.uniform(0.3, 1.0) * (out - blurred)
    if rng.random() < 0.5:
        small = max(8, int(round(s * rng.uniform(0.4, 0.85))))
        out = cv2.resize(cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA), (s, s), interpolation=cv2.INTER_LINEAR)
    w = max(float(box[2] - box[0]), 1.0)
    zoom = rng.uniform(0.95, 1.05)
    shift = rng.uniform(-0.03, 0.03, 2) * w
    matrix = cv2.getRotationMatrix2D((s / 2, s / 2), 0.0, zoom)
    matrix[:, 2] += shift
    out = cv2.warpAffine(out, matrix, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return np.clip(out, 0, 255)


def self_blend(image: np.ndarray, box: np.ndarray, rng: np.random.Generator, lower: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Blend a transformed copy of a face crop onto the crop itself.

    Args:
        image: uint8 ``[S, S, 3]`` RGB, a real face crop.
        box: float ``[4]`` face box ``x1, y1, x2, y2`` in crop pixels (:func:`box_in_crop`).
        rng: random source.
        lower: probability that the blend covers the lower face only (``face_mask`` region
            ``"lower"``); at 0 the random stream is the whole-face blends' alone.

    Returns:
        ``(fake, mask)``: uint8 ``[S, S, 3]`` RGB pseudo-fake and the float32 ``[S, S]`` blend weights
        actually used (mask times blend ratio, in ``[0, 1]``).
    """
    image = np.asarray(image, np.uint8)
    region = "lower" if lower > 0 and rng.random() < lower else "face"
    changed = source_transform(image, box, rng)
    plain = image.astype(np.float32)
    source, target = (changed, plain) if rng.random() < 0.5 else (plain, changed)
    weight = face_mask(image.shape[0], box, rng, region) * rng.choice(BLEND_RATIOS)
    fake = source * weight[..., None] + target * (1.0 - weight[..., None])
    return np.clip(np.round(fake), 0, 255).astype(np.uint8), weight.astype(np.float32)


def self_blend_seeded(image: np.ndarray, box: np.ndarray, seed: np.ndarray | int, lower: float = 0.0) -> np.ndarray:
    """:func:`self_blend`'s image from an integer seed (``tf.numpy_function``-friendly): uint8 ``[S, S, 3]``."""
    entropy = np.atleast_1d(np.asarray(seed, np.int64)).view(np.uint64).tolist()
    return self_blend(image, box, np.random.default_rng(entropy), float(lower))[0]

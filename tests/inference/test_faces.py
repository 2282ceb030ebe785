import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dfd_kit.inference.decode import OpenCVDecoder, Sampling, make_decoder
from dfd_kit.errors import NoFaceError
from dfd_kit.inference.faces import FaceSampler, square_box


@pytest.fixture(scope="module")
def sampler():
    return FaceSampler(image_size=96, device="cpu")


def _frames(path, n):
    return OpenCVDecoder().read(path, Sampling(n)).frames


def test_batched_detect_with_faceless_frames(media, sampler):
    faces = _frames(media["small"], 4)
    empty = _frames(media["no_face"], 4)
    batch = np.concatenate([empty[:2], faces[:2], empty[2:], faces[2:]])  # [8, 360, 640, 3]
    boxes = sampler.detect(batch)
    assert len(boxes) == 8
    counts = [len(sampler.select([b])[0]) for b in boxes]
    assert counts[0] == counts[1] == counts[4] == counts[5] == 0
    assert all(c >= 1 for c in (counts[2], counts[3], counts[6], counts[7]))
    assert all(b.shape[1] == 5 and b.dtype == np.float32 for b in boxes)
    assert all(len(b) == 0 for b in sampler.detect(empty))  # a batch with no face at all


def test_boxes_are_mapped_back_to_full_resolution(media):
    frames = _frames(media["h264_1080p"], 3)
    half = FaceSampler(scale=0.5).select(FaceSampler(scale=0.5).detect(frames))
    full = FaceSampler(scale=1.0).select(FaceSampler(scale=1.0).detect(frames))
    for a, b in zip(half, full):
        assert len(a) == len(b) == 1
        side = b[0, 2] - b[0, 0]
        assert side > 120  # the synthetic head is ~380 px tall at 1080p, its face ~170 px
        assert np.abs(a[0, :4] - b[0, :4]).max() < 0.1 * side


def test_two_people(media, sampler):
    faces = sampler(make_decoder("cpu").read(media["two_faces"], Sampling(6)))
    per_frame = np.bincount(faces.frame_of, minlength=6)
    assert (per_frame == 2).sum() >= 5
    assert faces.crops.shape[1:] == (96, 96, 3) and faces.crops.dtype == np.uint8
    assert faces.boxes.shape == (len(faces), 4) and faces.probs.min() >= 0.9


def test_no_face_raises(media, sampler):
    with pytest.raises(NoFaceError):
        sampler(make_decoder("cpu").read(media["no_face"], Sampling(4)))


def test_margin_is_relative_to_face_size():
    x1, y1, x2, y2 = square_box(np.array([100, 100, 200, 180]), margin=0.5, height=1000, width=1000)
    assert x2 - x1 == y2 - y1 == 150
    assert (x1 + x2) / 2 == pytest.approx(150, abs=1) and (y1 + y2) / 2 == pytest.approx(140, abs=1)


def test_tight_shifted_framing_of_the_dfdc_crops():
    # margin -0.09: the crop is 0.91 of the box's longer side; shift 0.044: its centre 0.044 of a side lower
    x1, y1, x2, y2 = square_box(np.array([100, 100, 200, 220]), margin=-0.09, height=1000, width=1000, shift=0.044)
    side = round(120 * 0.91)
    assert x2 - x1 == y2 - y1 == side
    assert (x1 + x2) / 2 == pytest.approx(150, abs=1) and (y1 + y2) / 2 == pytest.approx(160 + 0.044 * side, abs=1)


def test_crop_at_the_frame_edge_stays_inside(sampler):
    frame = np.zeros((1, 200, 300, 3), np.uint8)
    frame[0, :, :200] = 255  # left two thirds white
    boxes = [np.array([[-40, -30, 60, 90, 0.99]], np.float32)]  # face cut by the top-left corner
    faces = sampler.crop(frame, boxes)
    assert faces.crops.shape == (1, 96, 96, 3)
    assert faces.crops.min() == 255  # window shifted inside: all of it from the white half


box_st = st.tuples(st.floats(-500, 2500), st.floats(-500, 2500), st.floats(1, 1500), st.floats(1, 1500))


@given(box=box_st, margin=st.floats(-0.3, 1), h=st.integers(16, 2160), w=st.integers(16, 3840), shift=st.floats(-0.2, 0.2))
def test_square_box_is_square_and_inside(box, margin, h, w, shift):
    x, y, bw, bh = box
    x1, y1, x2, y2 = square_box(np.array([x, y, x + bw, y + bh]), margin, h, w, shift)
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert x2 - x1 == y2 - y1


@pytest.mark.slow
def test_real_clips_have_faces_in_most_sampled_frames(shared_clips):
    meta = json.loads((shared_clips / "metadata.json").read_text())
    sampler = FaceSampler(image_size=64, device="cpu")
    decoder = make_decoder("cpu")
    found = {}
    for name in sorted(meta):
        frames = decoder.read(shared_clips / name, Sampling(17))
        faces = sampler(frames)
        found[name] = len(np.unique(faces.frame_of))
    assert all(n >= 12 for n in found.values()), found


def test_frames_smaller_than_the_smallest_face(sampler):
    boxes = sampler.detect(np.full((3, 16, 16, 3), 128, np.uint8))
    assert [b.shape for b in boxes] == [(0, 5)] * 3


def test_one_set_of_boxes_cut_at_two_framings(media, sampler):
    import cv2

    from dfd_kit.inference.faces import Framing

    frames = _frames(media["small"], 3)
    boxes = sampler.select(sampler.detect(frames))
    own, other = sampler.crop(frames, boxes), sampler.crop(frames, boxes, Framing(64, 0.1, 0.05))
    assert own.crops.shape[1:] == (96, 96, 3) and other.crops.shape[1:] == (64, 64, 3) and len(own) == len(other) > 0
    np.testing.assert_array_equal(own.boxes, other.boxes)
    np.testing.assert_array_equal(own.frame_of, other.frame_of)
    x1, y1, x2, y2 = square_box(other.boxes[0], 0.1, *frames.shape[1:3], 0.05)
    expected = cv2.resize(frames[other.frame_of[0], y1:y2, x1:x2], (64, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(other.crops[0], expected)
    assert sampler.framing == Framing(96, 0.3, 0.0)

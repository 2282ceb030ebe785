import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media import read_index

from dfd_kit.inference.decode import DALIDecoder, FallbackDecoder, OpenCVDecoder, PyAVDecoder, Sampling, make_decoder
from dfd_kit.errors import DecodeError

CPU_DECODERS = [OpenCVDecoder, PyAVDecoder]


@pytest.mark.parametrize("decoder_cls", CPU_DECODERS, ids=lambda c: c.name)
@pytest.mark.parametrize(
    "clip, shape",
    [("h264_1080p", (1080, 1920)), ("portrait", (1920, 1080)), ("yuv444_odd", (481, 645)), ("small", (360, 640))],
)
def test_decodes_exactly_the_sampled_frames(media, decoder_cls, clip, shape):
    frames = decoder_cls().read(media[clip], Sampling(7))
    n_total = frames.n_total
    expected = np.unique(np.linspace(0, n_total - 1, 7).round().astype(int))
    assert frames.frames.dtype == np.uint8
    assert frames.frames.shape == (len(expected), *shape, 3)
    assert frames.indices.tolist() == expected.tolist()
    assert [read_index(f) for f in frames.frames] == expected.tolist()


@pytest.mark.parametrize("decoder_cls", CPU_DECODERS, ids=lambda c: c.name)
def test_explicit_indices_and_rgb_order(media, decoder_cls):
    frames = decoder_cls().read(media["small"], [19, 3, 3, 400, -1])
    assert frames.indices.tolist() == [3, 19]  # sorted, unique, out-of-range dropped
    assert [read_index(f) for f in frames.frames] == [3, 19]
    # the synthetic background is blue 90 and red rising left to right: check channel order is RGB
    corner = frames.frames[0, -20:, -20:].reshape(-1, 3).mean(0)
    assert corner[0] > corner[2] > 60


def test_decoders_agree(media):
    a = OpenCVDecoder().read(media["h264_1080p"], Sampling(5))
    b = PyAVDecoder().read(media["h264_1080p"], Sampling(5))
    assert a.indices.tolist() == b.indices.tolist()
    assert np.abs(a.frames.astype(int) - b.frames.astype(int)).mean() < 2.0


@pytest.mark.parametrize("decoder_cls", CPU_DECODERS, ids=lambda c: c.name)
def test_bad_files_raise_decode_error(tmp_path, decoder_cls):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    for path in (empty, junk, tmp_path / "missing.mp4"):
        with pytest.raises(DecodeError):
            decoder_cls().read(path, Sampling(5))


def test_truncated_file_decodes_what_is_there_or_raises(media, tmp_path):
    data = media["small"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 9 // 10])
    decoder = make_decoder("cpu")
    try:
        frames = decoder.read(cut, Sampling(5))
    except DecodeError:
        return
    assert len(frames) >= 1 and frames.frames.dtype == np.uint8


def test_fallback_decoder_logs_and_falls_back(media, caplog):
    class Broken:
        name = "broken"

        def read(self, path, select):
            raise DecodeError("always broken")

    decoder = FallbackDecoder(Broken(), PyAVDecoder())
    with caplog.at_level("WARNING"):
        frames = decoder.read(media["small"], Sampling(3))
    assert frames.decoder == "pyav" and len(frames) == 3
    assert "always broken" in caplog.text


def test_real_clips_decode(shared_clips):
    meta = json.loads((shared_clips / "metadata.json").read_text())
    decoder = make_decoder("cpu")
    for name in ["widuwuoiur.mp4", "ffpp40_183.mp4"]:  # DFDC 1080p yuv420p; FF++ H.264 High 4:4:4
        frames = decoder.read(shared_clips / name, Sampling(4))
        assert name in meta
        assert len(frames) == 4 and frames.frames.ndim == 4 and frames.frames.shape[-1] == 3
        assert frames.indices[-1] == frames.n_total - 1


@pytest.mark.gpu
def test_dali_decodes_exactly_the_sampled_frames(media):
    frames = DALIDecoder().read(media["h264_1080p"], Sampling(7))
    assert frames.frames.shape[1:] == (1080, 1920, 3)
    assert [read_index(f) for f in frames.frames] == frames.indices.tolist()


@pytest.fixture(scope="module")
def clip_bytes(media) -> bytes:
    return media["small"].read_bytes()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_corrupted_bytes_give_frames_or_decode_error(clip_bytes, tmp_path, data):
    raw = bytearray(clip_bytes)
    for _ in range(data.draw(st.integers(1, 40), label="flips")):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)), label="truncate at")
    path = tmp_path / "fuzz.mp4"
    path.write_bytes(bytes(raw[:cut]))
    try:
        frames = make_decoder("cpu").read(path, Sampling(5))
    except DecodeError:
        return
    assert frames.frames.dtype == np.uint8 and frames.frames.ndim == 4 and frames.frames.shape[-1] == 3
    assert len(frames.indices) == len(frames.frames) >= 1


@pytest.mark.gpu
def test_cuda_decoder_handles_variable_frame_rate(tmp_path, media):
    """DALI's file reader rejects VFR clips; decoding from memory by index (or the CPU fallback) must not."""
    from media import ffmpeg

    import subprocess

    vfr = tmp_path / "vfr.mp4"
    subprocess.run(
        [ffmpeg(), "-y", "-loglevel", "error", "-i", str(media["small"]), "-vf", "setpts='N/(30*TB)+if(mod(N\\,3)\\,0\\,0.02/TB)'",
         "-fps_mode", "vfr", "-c:v", "libx264", str(vfr)],
        check=True,
    )  # fmt: skip
    frames = make_decoder("cuda").read(vfr, Sampling(5))
    assert [read_index(f) for f in frames.frames] == frames.indices.tolist()
